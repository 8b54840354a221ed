//! Times, steps and durations as upstream parses them
//! (`src/internal/promql/parsing.go`), and the `%.3f` seconds format.

use std::fmt::Write as _;

const NS_PER_MS: i64 = 1_000_000;

/// Prometheus' duration syntax (`model.ParseDuration`): one or more
/// `<digits><unit>` with units `y w d h m s ms` in that order, or `0`.
/// Returns milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {s:?} to a valid duration");
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(bad());
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let b = s.as_bytes();
    let mut i = 0;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let n: i64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[ustart..i];
        let Some(pos) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(bad());
        };
        let (_, mult) = UNITS[next_unit + pos];
        next_unit += pos + 1;
        total = n
            .checked_mul(mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// `ParseTime`: decimal Unix seconds (`"1537290750.000"`) or RFC 3339 with
/// optional fraction. Returns nanoseconds.
pub fn parse_time_ns(s: &str) -> Result<i64, String> {
    let bad = || format!("cannot parse {s:?} to a valid Unix or RFC3339 timestamp");
    if let Ok(secs) = parse_go_float(s) {
        let ns = secs * 1e9;
        if !ns.is_finite() || ns.abs() >= 9.2e18 {
            return Err(bad());
        }
        return Ok(ns as i64);
    }
    parse_rfc3339_ns(s).ok_or_else(bad)
}

/// `ParseStep`: seconds as a float (`"1"`, `"0.5"`), else a duration
/// (`"30s"`). Returns nanoseconds.
pub fn parse_step_ns(s: &str) -> Result<i64, String> {
    if let Ok(secs) = parse_go_float(s) {
        let ns = secs * 1e9;
        if !ns.is_finite() || ns.abs() >= 9.2e18 {
            return Err(format!(
                "cannot parse {s:?} to a valid step. It overflows int64"
            ));
        }
        return Ok(ns as i64);
    }
    parse_duration_ms(s)
        .ok()
        .and_then(|ms| ms.checked_mul(NS_PER_MS))
        .ok_or_else(|| format!("cannot parse {s:?} to a valid step"))
}

/// What Go's `strconv.ParseFloat` accepts, near enough: Rust's float
/// syntax (which also takes `inf`/`nan`, like Go).
fn parse_go_float(s: &str) -> Result<f64, ()> {
    if s.is_empty() || s.contains('_') {
        return Err(());
    }
    s.parse::<f64>().map_err(|_| ())
}

/// Nanoseconds to Prometheus milliseconds (`timestamp.FromTime`).
pub fn ns_to_ms(ns: i64) -> i64 {
    ns.div_euclid(NS_PER_MS)
}

/// Appends `fmt.Sprintf("%.3f", float64(ms)/1000)`.
pub fn write_time(out: &mut String, ms: i64) {
    let _ = write!(out, "{:.3}", ms as f64 / 1000.0);
}

/// `fmt.Sprintf("%.3f", float64(ms)/1000)`.
pub fn format_time(ms: i64) -> String {
    let mut s = String::with_capacity(20);
    write_time(&mut s, ms);
    s
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut frac_ns = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &s[start..i];
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        frac_ns = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    let offset_s = match s.get(i..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert!(parse_duration_ms("5").is_err());
        assert!(parse_duration_ms("m5").is_err());
        assert!(parse_duration_ms("5s1m").is_err());
        assert!(parse_duration_ms("").is_err());
        assert!(parse_duration_ms("99999999999999999y").is_err());
    }

    #[test]
    fn times_and_steps() {
        assert_eq!(parse_time_ns("1234.000"), Ok(1_234_000_000_000));
        assert_eq!(parse_time_ns("1537290750.5"), Ok(1_537_290_750_500_000_000));
        assert_eq!(
            parse_time_ns("2018-09-18T17:12:30Z"),
            Ok(1_537_290_750_000_000_000)
        );
        assert_eq!(
            parse_time_ns("2018-09-18T19:12:30.25+02:00"),
            Ok(1_537_290_750_250_000_000)
        );
        assert_eq!(
            parse_time_ns("409l"),
            Err("cannot parse \"409l\" to a valid Unix or RFC3339 timestamp".into())
        );
        assert!(parse_time_ns("1e300").is_err());
        assert_eq!(parse_step_ns("30s"), Ok(30_000_000_000));
        assert_eq!(parse_step_ns("1"), Ok(1_000_000_000));
        assert_eq!(parse_step_ns("0.5"), Ok(500_000_000));
        assert_eq!(
            parse_step_ns("x"),
            Err("cannot parse \"x\" to a valid step".into())
        );
    }

    #[test]
    fn time_format_is_three_decimals() {
        assert_eq!(format_time(1_537_290_750_000), "1537290750.000");
        assert_eq!(format_time(99_000), "99.000");
        assert_eq!(format_time(1_234_567), "1234.567");
        assert_eq!(format_time(-1_500), "-1.500");
        assert_eq!(ns_to_ms(-1), -1);
    }
}
