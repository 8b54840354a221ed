//! Environment-variable parsing with the upstream rules (upstream-config §1).
//!
//! | Rule | Behaviour here |
//! |---|---|
//! | Empty means unset | every getter returns `None` for an unset or empty variable |
//! | Required | [`EnvReader::require`] records missing names; [`EnvReader::finish`] reports them all, sorted: `missing required environment variables: A, B` |
//! | Booleans | only `true` and `1` are true; anything else is false, never an error |
//! | Integers | base 10, no sign, no spaces (Go `strconv.ParseUint`); garbage and negative values are errors (`strconv.ParseUint: parsing "abc": invalid syntax`); values beyond 64 bits are `value out of range`; values too large for a narrower field are **truncated like Go's conversion** (`70000` as `u16` is `4464`) |
//! | Durations | Go syntax ([`parse_go_duration`]): `15s`, `1m0s`, `1h2m3.5s`, `100ms`, `0`; a number without unit is `time: missing unit in duration "60"` |
//! | Lists | split on `,`, each item trimmed of spaces (empty items are kept, as upstream) |
//! | Maps | `k:v,k:v`, split at the first `:`; an item without `:` is an error; keys and values trimmed |
//!
//! Values come from the process environment ([`EnvReader::from_env`]) or, for tests, from an
//! injected map ([`EnvReader::from_map`]). Parse errors are collected like missing names;
//! [`EnvReader::finish`] reports missing names first, then the first parse error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// A configuration error from environment variables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Required variables that are unset or empty (sorted, deduplicated).
    #[error("missing required environment variables: {}", .0.join(", "))]
    Missing(Vec<String>),
    /// A variable whose value does not parse.
    #[error("{name}: {message}")]
    Invalid {
        /// The variable name.
        name: String,
        /// What is wrong, in upstream wording where upstream has one.
        message: String,
    },
}

/// Error parsing an unsigned integer (Go `strconv.ParseUint` wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntError {
    /// Not a base-10 unsigned number.
    #[error("strconv.ParseUint: parsing \"{0}\": invalid syntax")]
    Syntax(String),
    /// More than 64 bits.
    #[error("strconv.ParseUint: parsing \"{0}\": value out of range")]
    Range(String),
}

/// Error parsing a Go duration (Go `time.ParseDuration` wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Malformed or overflowing.
    #[error("time: invalid duration \"{0}\"")]
    Invalid(String),
    /// A number without a unit, e.g. `60`.
    #[error("time: missing unit in duration \"{0}\"")]
    MissingUnit(String),
    /// A unit Go does not know.
    #[error("time: unknown unit \"{unit}\" in duration \"{input}\"")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A negative duration (valid in Go, not representable as `std::time::Duration`).
    #[error("negative duration \"{0}\" is not allowed")]
    Negative(String),
}

/// Error parsing a `k:v,k:v` map.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("map item \"{0}\" has no ':' separating key and value")]
pub struct MapError(pub String);

/// Whether a value means true: only `true` and `1`.
pub fn parse_bool(v: &str) -> bool {
    v == "true" || v == "1"
}

/// Parses a base-10 unsigned integer like Go's `strconv.ParseUint(v, 10, 64)`.
pub fn parse_u64(v: &str) -> Result<u64, IntError> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IntError::Syntax(v.to_owned()));
    }
    let mut n: u64 = 0;
    for b in v.bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| IntError::Range(v.to_owned()))?;
    }
    Ok(n)
}

/// Parses like [`parse_u64`] then truncates to 16 bits like Go's `uint16(x)`: `70000` -> `4464`.
pub fn parse_u16_truncating(v: &str) -> Result<u16, IntError> {
    // Truncation is the documented upstream behaviour, not an accident.
    parse_u64(v).map(|n| n as u16)
}

/// Parses like [`parse_u64`] then truncates to 32 bits like Go's `uint32(x)`.
pub fn parse_u32_truncating(v: &str) -> Result<u32, IntError> {
    parse_u64(v).map(|n| n as u32)
}

/// Splits on `,` and trims each item of spaces. Empty items are kept (`a,,b` has three items).
pub fn parse_list(v: &str) -> Vec<String> {
    v.split(',').map(|s| s.trim().to_owned()).collect()
}

/// Parses `k:v,k:v`: items split on `,`, each at its first `:`; keys and values trimmed.
///
/// Empty items (e.g. a trailing comma) are skipped; an item without `:` is an error.
pub fn parse_map(v: &str) -> Result<BTreeMap<String, String>, MapError> {
    let mut out = BTreeMap::new();
    for item in v.split(',') {
        if item.trim().is_empty() {
            continue;
        }
        let (k, val) = item
            .split_once(':')
            .ok_or_else(|| MapError(item.to_owned()))?;
        out.insert(k.trim().to_owned(), val.trim().to_owned());
    }
    Ok(out)
}

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => NS,
        "us" | "\u{b5}s" | "\u{3bc}s" => US,
        "ms" => MS,
        "s" => SEC,
        "m" => 60 * SEC,
        "h" => 3600 * SEC,
        _ => return None,
    })
}

/// Parses a Go duration string (`time.ParseDuration` grammar): a sequence of decimal numbers
/// with optional fraction and a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `1h2m3.5s`.
/// `0` alone is zero. Negative results are rejected ([`DurationError::Negative`]).
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input;
    let mut neg = false;
    if let Some(rest) = s.strip_prefix('-') {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let pre = digits > 0;
        let mut v: u64 = 0;
        for b in s[..digits].bytes() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        s = &s[digits..];
        // Fraction.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let fdigits = s.bytes().take_while(u8::is_ascii_digit).count();
            post = fdigits > 0;
            let mut overflow = false;
            for b in s[..fdigits].bytes() {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(b - b'0')))
                    .filter(|f| *f <= LIMIT)
                {
                    Some(f) => {
                        frac = f;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &s[fdigits..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let ulen = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if ulen == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let unit = &s[..ulen];
        s = &s[ulen..];
        let unit_ns = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        if v > LIMIT / unit_ns {
            return Err(invalid());
        }
        v *= unit_ns;
        if frac > 0 {
            let add = (frac as f64 * (unit_ns as f64 / scale)) as u64;
            v = v
                .checked_add(add)
                .filter(|v| *v <= LIMIT)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(invalid)?;
    }
    if neg {
        if total == 0 {
            return Ok(Duration::ZERO);
        }
        return Err(DurationError::Negative(input.to_owned()));
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// Formats a duration the way Go's `time.Duration.String` does (`1m0s`, `1.5s`, `100ms`, `0s`).
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos().min(u128::from(u64::MAX)) as u64;
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < SEC {
        let (unit, div) = if nanos < US {
            ("ns", NS)
        } else if nanos < MS {
            ("µs", US)
        } else {
            ("ms", MS)
        };
        return format!("{}{unit}", frac_str(nanos, div));
    }
    let mut out = String::new();
    let h = nanos / (3600 * SEC);
    let m = (nanos / (60 * SEC)) % 60;
    let rem = nanos % (60 * SEC);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", frac_str(rem, SEC)));
    out
}

fn frac_str(v: u64, div: u64) -> String {
    let int = v / div;
    let frac = v % div;
    if frac == 0 {
        return int.to_string();
    }
    let width = div.ilog10() as usize;
    let f = format!("{frac:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

enum Source {
    Process,
    Map(BTreeMap<String, String>),
}

/// Reads variables with the upstream rules, collecting missing names and parse errors.
pub struct EnvReader {
    source: Source,
    missing: BTreeSet<String>,
    errors: Vec<EnvError>,
}

impl fmt::Debug for EnvReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvReader")
            .field("missing", &self.missing)
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl EnvReader {
    /// Reads from the process environment.
    pub fn from_env() -> Self {
        Self::with_source(Source::Process)
    }

    /// Reads from an injected map (tests).
    pub fn from_map(map: BTreeMap<String, String>) -> Self {
        Self::with_source(Source::Map(map))
    }

    /// Reads from `(name, value)` pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::from_map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    fn with_source(source: Source) -> Self {
        EnvReader {
            source,
            missing: BTreeSet::new(),
            errors: Vec::new(),
        }
    }

    /// The raw value; `None` when unset, empty, or not valid UTF-8.
    pub fn raw(&self, name: &str) -> Option<String> {
        let v = match &self.source {
            Source::Process => std::env::var(name).ok(),
            Source::Map(m) => m.get(name).cloned(),
        };
        v.filter(|v| !v.is_empty())
    }

    /// Marks `name` required: records it as missing when unset or empty. Returns whether set.
    pub fn require(&mut self, name: &str) -> bool {
        let set = self.raw(name).is_some();
        if !set {
            self.missing.insert(name.to_owned());
        }
        set
    }

    fn invalid(&mut self, name: &str, message: impl fmt::Display) {
        self.errors.push(EnvError::Invalid {
            name: name.to_owned(),
            message: message.to_string(),
        });
    }

    fn parsed<T, E: fmt::Display>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let raw = self.raw(name)?;
        match parse(&raw) {
            Ok(v) => Some(v),
            Err(e) => {
                self.invalid(name, e);
                None
            }
        }
    }

    /// A string value.
    pub fn string(&mut self, name: &str) -> Option<String> {
        self.raw(name)
    }

    /// A required string value (records `name` as missing and returns `""` when unset).
    pub fn required_string(&mut self, name: &str) -> String {
        self.require(name);
        self.raw(name).unwrap_or_default()
    }

    /// A boolean: `Some(true)` only for `true`/`1`, `Some(false)` for any other set value.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        self.raw(name).map(|v| parse_bool(&v))
    }

    /// A boolean with a default for unset.
    pub fn bool_or(&mut self, name: &str, default: bool) -> bool {
        self.bool(name).unwrap_or(default)
    }

    /// A 16-bit unsigned integer (truncated like Go when larger; see module doc).
    pub fn u16(&mut self, name: &str) -> Option<u16> {
        self.parsed(name, parse_u16_truncating)
    }

    /// A 32-bit unsigned integer (truncated like Go when larger).
    pub fn u32(&mut self, name: &str) -> Option<u32> {
        self.parsed(name, parse_u32_truncating)
    }

    /// A 64-bit unsigned integer.
    pub fn u64(&mut self, name: &str) -> Option<u64> {
        self.parsed(name, parse_u64)
    }

    /// A `usize` (64-bit platforms: same as [`EnvReader::u64`]; truncated on narrower ones).
    pub fn usize(&mut self, name: &str) -> Option<usize> {
        self.parsed(name, |v| parse_u64(v).map(|n| n as usize))
    }

    /// A Go duration.
    pub fn duration(&mut self, name: &str) -> Option<Duration> {
        self.parsed(name, parse_go_duration)
    }

    /// A comma-separated list (items trimmed).
    pub fn list(&mut self, name: &str) -> Option<Vec<String>> {
        self.raw(name).map(|v| parse_list(&v))
    }

    /// A `k:v,k:v` map.
    pub fn map(&mut self, name: &str) -> Option<BTreeMap<String, String>> {
        self.parsed(name, parse_map)
    }

    /// Records a custom validation error for `name` (reported by [`EnvReader::finish`]).
    pub fn error(&mut self, name: &str, message: impl fmt::Display) {
        self.invalid(name, message);
    }

    /// Reports missing required names (all, sorted) or else the first parse error.
    pub fn finish(self) -> Result<(), EnvError> {
        if !self.missing.is_empty() {
            return Err(EnvError::Missing(self.missing.into_iter().collect()));
        }
        match self.errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every problem found: the missing-names error (if any) followed by all parse errors.
    pub fn finish_all(self) -> Result<(), Vec<EnvError>> {
        let mut all = Vec::new();
        if !self.missing.is_empty() {
            all.push(EnvError::Missing(self.missing.into_iter().collect()));
        }
        all.extend(self.errors);
        if all.is_empty() { Ok(()) } else { Err(all) }
    }
}

/// Overlays one raw configuration on another: every field set (`Some`) in `$over` replaces the
/// one in `$base`. Written as an exhaustive destructuring of `$over`, so a field added to the
/// struct but not listed here is a compile error rather than a setting silently ignored when it
/// comes from one source (flags, environment, file) and not another.
///
/// ```
/// #[derive(Debug, Default, PartialEq)]
/// struct Raw { a: Option<u8>, b: Option<String> }
/// let file = Raw { a: Some(1), b: Some("file".into()) };
/// let flags = Raw { a: None, b: Some("flag".into()) };
/// let merged = plumbing::overlay!(file, flags, Raw { a, b });
/// assert_eq!(merged, Raw { a: Some(1), b: Some("flag".into()) });
/// ```
#[macro_export]
macro_rules! overlay {
    ($base:expr, $over:expr, $ty:ident { $($f:ident),* $(,)? }) => {{
        let $ty { $($f),* } = $over;
        let mut base = $base;
        $( if $f.is_some() { base.$f = $f; } )*
        base
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Result<Duration, String> {
        parse_go_duration(s).map_err(|e| e.to_string())
    }

    #[test]
    fn go_durations() {
        assert_eq!(d("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(d("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(d("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(d("1h2m3.5s"), Ok(Duration::from_millis(3_723_500)));
        assert_eq!(d("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("+5s"), Ok(Duration::from_secs(5)));
        assert_eq!(d("-0s"), Ok(Duration::ZERO));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(d("1.s"), Ok(Duration::from_secs(1)));
        assert_eq!(d("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(d("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(d("10μs"), Ok(Duration::from_micros(10)));
        assert_eq!(d("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(d("1.000000001s"), Ok(Duration::from_nanos(1_000_000_001)));
        assert_eq!(
            d("2562047h47m16.854775807s"),
            Ok(Duration::from_nanos(i64::MAX as u64))
        );
    }

    #[test]
    fn go_duration_errors() {
        assert_eq!(
            d("60"),
            Err(r#"time: missing unit in duration "60""#.into())
        );
        assert_eq!(d(""), Err(r#"time: invalid duration """#.into()));
        assert_eq!(d("s"), Err(r#"time: invalid duration "s""#.into()));
        assert_eq!(d("."), Err(r#"time: invalid duration ".""#.into()));
        assert_eq!(
            d("1.5"),
            Err(r#"time: missing unit in duration "1.5""#.into())
        );
        assert_eq!(
            d("1d"),
            Err(r#"time: unknown unit "d" in duration "1d""#.into())
        );
        assert_eq!(
            d("1s "),
            Err(r#"time: unknown unit "s " in duration "1s ""#.into())
        );
        assert_eq!(
            d("9223372036854775808ns"),
            Err(r#"time: invalid duration "9223372036854775808ns""#.into())
        );
        assert_eq!(
            d("3000000h"),
            Err(r#"time: invalid duration "3000000h""#.into())
        );
        assert_eq!(
            d("-1s"),
            Err(r#"negative duration "-1s" is not allowed"#.into())
        );
        assert_eq!(
            d("1s-1s"),
            Err(r#"time: unknown unit "s-" in duration "1s-1s""#.into())
        );
    }

    #[test]
    fn go_duration_format_round_trips() {
        for (s, want) in [
            ("1m", "1m0s"),
            ("1h2m3.5s", "1h2m3.5s"),
            ("100ms", "100ms"),
            ("0s", "0s"),
            ("15s", "15s"),
            ("1.5us", "1.5µs"),
            ("90m", "1h30m0s"),
        ] {
            let parsed = parse_go_duration(s).expect(s);
            assert_eq!(format_go_duration(parsed), want);
            assert_eq!(parse_go_duration(want).expect(want), parsed);
        }
    }

    #[test]
    fn integers_like_go() {
        assert_eq!(parse_u64("8082"), Ok(8082));
        assert_eq!(parse_u16_truncating("70000"), Ok(4464));
        assert_eq!(parse_u16_truncating("65536"), Ok(0));
        assert_eq!(parse_u32_truncating("4294967297"), Ok(1));
        assert_eq!(
            parse_u64("abc").map_err(|e| e.to_string()),
            Err(r#"strconv.ParseUint: parsing "abc": invalid syntax"#.into())
        );
        assert_eq!(parse_u64("-1"), Err(IntError::Syntax("-1".into())));
        assert_eq!(parse_u64("+1"), Err(IntError::Syntax("+1".into())));
        assert_eq!(parse_u64(" 1"), Err(IntError::Syntax(" 1".into())));
        assert_eq!(parse_u64("1_000"), Err(IntError::Syntax("1_000".into())));
        assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_u64("18446744073709551616").map_err(|e| e.to_string()),
            Err(r#"strconv.ParseUint: parsing "18446744073709551616": value out of range"#.into())
        );
    }

    #[test]
    fn bools_lists_maps() {
        assert!(parse_bool("true"));
        assert!(parse_bool("1"));
        for v in ["TRUE", "yes", "false", "0", "True", " true"] {
            assert!(!parse_bool(v), "{v}");
        }
        assert_eq!(parse_list(" a , b,c "), vec!["a", "b", "c"]);
        assert_eq!(parse_list("a,,b"), vec!["a", "", "b"]);
        let m = parse_map("deployment:cf, url:http://x:8080,empty:").expect("map");
        assert_eq!(m.get("deployment").map(String::as_str), Some("cf"));
        assert_eq!(m.get("url").map(String::as_str), Some("http://x:8080"));
        assert_eq!(m.get("empty").map(String::as_str), Some(""));
        assert_eq!(
            parse_map("a:b,oops").map_err(|e| e.to_string()),
            Err(r#"map item "oops" has no ':' separating key and value"#.into())
        );
    }

    #[test]
    fn reader_collects_missing_sorted_and_treats_empty_as_unset() {
        let mut env = EnvReader::from_pairs([
            ("ROUTER_PORT", "70000"),
            ("EMPTY", ""),
            ("FLAG", "yes"),
            ("TIMEOUT", "1m0s"),
            ("LIST", "a, b"),
            ("TAGS", "k:v"),
        ]);
        assert_eq!(env.u16("ROUTER_PORT"), Some(4464));
        assert_eq!(env.string("EMPTY"), None);
        assert_eq!(env.bool("FLAG"), Some(false));
        assert!(env.bool_or("NOPE", true));
        assert_eq!(env.duration("TIMEOUT"), Some(Duration::from_secs(60)));
        assert_eq!(env.list("LIST"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(env.map("TAGS").map(|m| m.len()), Some(1));
        assert_eq!(env.required_string("ZED_CA"), "");
        env.require("EMPTY");
        env.require("ROUTER_PORT");
        env.require("ZED_CA");
        assert_eq!(
            env.finish().map_err(|e| e.to_string()),
            Err("missing required environment variables: EMPTY, ZED_CA".into())
        );
    }

    #[test]
    fn reader_reports_parse_errors() {
        let mut env = EnvReader::from_pairs([("A", "abc"), ("B", "60")]);
        assert_eq!(env.u32("A"), None);
        assert_eq!(env.duration("B"), None);
        let all = env.finish_all().expect_err("errors");
        let msgs: Vec<_> = all.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                r#"A: strconv.ParseUint: parsing "abc": invalid syntax"#,
                r#"B: time: missing unit in duration "60""#,
            ]
        );
        let mut env = EnvReader::from_pairs([("A", "abc")]);
        env.usize("A");
        assert_eq!(
            env.finish(),
            Err(EnvError::Invalid {
                name: "A".into(),
                message: r#"strconv.ParseUint: parsing "abc": invalid syntax"#.into()
            })
        );
    }

    #[test]
    fn reader_from_process_env_reads_path() {
        // PATH is set in every test environment; empty-means-unset applies to it too.
        let mut env = EnvReader::from_env();
        assert_eq!(
            env.string("PATH"),
            std::env::var("PATH").ok().filter(|v| !v.is_empty())
        );
        assert!(env.finish().is_ok());
    }
}
