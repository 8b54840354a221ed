//! The `cf logs` line format (reference §20.1), exactly as the current cf CLI prints it.
//!
//! Each line of a message is `"   " + TIMESTAMP + " [" + SOURCE_TYPE + "/" + INSTANCE + "] " +
//! OUT|ERR + " " + text`, where TIMESTAMP is Go's `2006-01-02T15:04:05.00-0700` in the local
//! time zone (hundredths truncated, offset without a colon). A multi-line message is split on
//! `\n` and every line gets the full header; trailing `\r`/`\n` are trimmed from each line.
//! ERR lines (header included, the three leading spaces not) are red when colour is on.

use std::fmt::Write as _;

use chrono::{DateTime, Local, TimeZone};

/// Start of the red colour sequence (fatih/color `FgRed`).
const RED: &str = "\x1b[31m";
/// Colour reset.
const RESET: &str = "\x1b[0m";

/// The parts of a log envelope the format shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogLine<'a> {
    /// Nanoseconds since the Unix epoch.
    pub(crate) timestamp: i64,
    /// v2 tag `source_type` (v1 `source_type`), e.g. `APP/PROC/WEB`.
    pub(crate) source_type: &'a str,
    /// v2 `instance_id` (v1 `source_instance`); may be empty.
    pub(crate) instance: &'a str,
    /// ERR rather than OUT.
    pub(crate) is_err: bool,
    /// The message bytes (invalid UTF-8 is shown with replacement characters).
    pub(crate) payload: &'a [u8],
}

/// Appends `line` in the `cf logs` format to `out`, in the local time zone.
pub(crate) fn format_local(out: &mut String, line: &LogLine<'_>, color: bool) {
    format_in(out, line, &Local, color);
}

/// Appends `line` in the `cf logs` format to `out`, in time zone `tz`.
pub(crate) fn format_in<Tz: TimeZone>(out: &mut String, line: &LogLine<'_>, tz: &Tz, color: bool)
where
    Tz::Offset: std::fmt::Display,
{
    let mut header = String::with_capacity(64);
    write_timestamp(&mut header, line.timestamp, tz);
    header.push_str(" [");
    header.push_str(line.source_type);
    header.push('/');
    header.push_str(line.instance);
    header.push_str("] ");
    header.push_str(if line.is_err { "ERR " } else { "OUT " });

    let text = String::from_utf8_lossy(line.payload);
    for part in text.split('\n') {
        let part = part.trim_end_matches(['\r', '\n']);
        out.push_str("   ");
        if color && line.is_err {
            out.push_str(RED);
            out.push_str(&header);
            out.push_str(part);
            out.push_str(RESET);
        } else {
            out.push_str(&header);
            out.push_str(part);
        }
        out.push('\n');
    }
}

/// Writes `nanos` as Go's `2006-01-02T15:04:05.00-0700` in `tz`: hundredths truncated, not
/// rounded.
pub(crate) fn write_timestamp<Tz: TimeZone>(out: &mut String, nanos: i64, tz: &Tz)
where
    Tz::Offset: std::fmt::Display,
{
    let utc = DateTime::from_timestamp_nanos(nanos);
    let local = utc.with_timezone(tz);
    let hundredths = nanos.rem_euclid(1_000_000_000) / 10_000_000;
    let _ = write!(
        out,
        "{}.{hundredths:02}{}",
        local.format("%Y-%m-%dT%H:%M:%S"),
        local.format("%z")
    );
}

/// Whether ERR lines are coloured: `CF_COLOR=true|false` decides when set, else colour is on
/// exactly when stdout is a terminal.
pub(crate) fn color_enabled(cf_color: Option<&str>, stdout_is_terminal: bool) -> bool {
    match cf_color.map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        _ => stdout_is_terminal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    // 2016-07-19T23:08:12.129876543Z
    const TS: i64 = 1_468_969_692_129_876_543;

    fn line<'a>(
        source_type: &'a str,
        instance: &'a str,
        is_err: bool,
        payload: &'a str,
    ) -> LogLine<'a> {
        LogLine {
            timestamp: TS,
            source_type,
            instance,
            is_err,
            payload: payload.as_bytes(),
        }
    }

    fn pdt() -> FixedOffset {
        FixedOffset::west_opt(7 * 3600).expect("valid offset")
    }

    #[test]
    fn reference_example_line() {
        let mut out = String::new();
        let l = line("APP/PROC/WEB", "12", false, "This is a log message");
        format_in(&mut out, &l, &pdt(), false);
        assert_eq!(
            out,
            "   2016-07-19T16:08:12.12-0700 [APP/PROC/WEB/12] OUT This is a log message\n"
        );
    }

    #[test]
    fn utc_offset_is_plus_zero() {
        let mut out = String::new();
        format_in(&mut out, &line("RTR", "0", false, "x"), &chrono::Utc, false);
        assert_eq!(out, "   2016-07-19T23:08:12.12+0000 [RTR/0] OUT x\n");
    }

    #[test]
    fn hundredths_are_truncated_not_rounded() {
        let mut out = String::new();
        let mut l = line("APP", "0", false, "x");
        l.timestamp = 1_468_969_692_999_999_999;
        format_in(&mut out, &l, &chrono::Utc, false);
        assert_eq!(out, "   2016-07-19T23:08:12.99+0000 [APP/0] OUT x\n");
        out.clear();
        l.timestamp = 1_468_969_692_000_000_001;
        format_in(&mut out, &l, &chrono::Utc, false);
        assert_eq!(out, "   2016-07-19T23:08:12.00+0000 [APP/0] OUT x\n");
    }

    #[test]
    fn before_epoch_keeps_positive_hundredths() {
        let mut out = String::new();
        // 1969-12-31T23:59:59.75Z
        write_timestamp(&mut out, -250_000_000, &chrono::Utc);
        assert_eq!(out, "1969-12-31T23:59:59.75+0000");
    }

    #[test]
    fn empty_instance_keeps_the_slash() {
        let mut out = String::new();
        format_in(
            &mut out,
            &line("APP", "", true, "oops"),
            &chrono::Utc,
            false,
        );
        assert_eq!(out, "   2016-07-19T23:08:12.12+0000 [APP/] ERR oops\n");
    }

    #[test]
    fn multi_line_repeats_the_header_and_trims_cr() {
        let mut out = String::new();
        let l = line(
            "APP/PROC/WEB",
            "0",
            true,
            "panic: boom\r\ngoroutine 1 [running]:\r\n\tmain.main()",
        );
        format_in(&mut out, &l, &chrono::Utc, false);
        assert_eq!(
            out,
            "   2016-07-19T23:08:12.12+0000 [APP/PROC/WEB/0] ERR panic: boom\n\
             \x20  2016-07-19T23:08:12.12+0000 [APP/PROC/WEB/0] ERR goroutine 1 [running]:\n\
             \x20  2016-07-19T23:08:12.12+0000 [APP/PROC/WEB/0] ERR \tmain.main()\n"
        );
    }

    #[test]
    fn trailing_newline_gives_an_empty_line_like_the_cf_cli() {
        let mut out = String::new();
        format_in(
            &mut out,
            &line("APP", "1", false, "last\n"),
            &chrono::Utc,
            false,
        );
        assert_eq!(
            out,
            "   2016-07-19T23:08:12.12+0000 [APP/1] OUT last\n\
             \x20  2016-07-19T23:08:12.12+0000 [APP/1] OUT \n"
        );
    }

    #[test]
    fn err_is_red_when_colour_is_on_out_never() {
        let mut out = String::new();
        format_in(
            &mut out,
            &line("APP", "0", true, "a\nb"),
            &chrono::Utc,
            true,
        );
        assert_eq!(
            out,
            "   \x1b[31m2016-07-19T23:08:12.12+0000 [APP/0] ERR a\x1b[0m\n\
             \x20  \x1b[31m2016-07-19T23:08:12.12+0000 [APP/0] ERR b\x1b[0m\n"
        );
        out.clear();
        format_in(&mut out, &line("APP", "0", false, "a"), &chrono::Utc, true);
        assert_eq!(out, "   2016-07-19T23:08:12.12+0000 [APP/0] OUT a\n");
    }

    #[test]
    fn err_is_plain_when_colour_is_off() {
        let mut out = String::new();
        format_in(&mut out, &line("APP", "0", true, "a"), &chrono::Utc, false);
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn cf_color_overrides_terminal_detection() {
        assert!(color_enabled(Some("true"), false));
        assert!(color_enabled(Some("TRUE"), false));
        assert!(!color_enabled(Some("false"), true));
        assert!(color_enabled(None, true));
        assert!(!color_enabled(None, false));
        assert!(color_enabled(Some("maybe"), true));
        assert!(!color_enabled(Some(""), false));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        let mut out = String::new();
        let l = LogLine {
            timestamp: TS,
            source_type: "APP",
            instance: "0",
            is_err: false,
            payload: b"ok \xff end",
        };
        format_in(&mut out, &l, &chrono::Utc, false);
        assert_eq!(
            out,
            "   2016-07-19T23:08:12.12+0000 [APP/0] OUT ok \u{fffd} end\n"
        );
    }
}
