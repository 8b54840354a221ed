//! Go's float formatting, byte for byte, for the places where Loggregator's
//! output depends on it:
//!
//! | Go | here | used by |
//! |---|---|---|
//! | `strconv.FormatFloat(v, 'g', -1, 64)` = `fmt.Sprint(v)` = `%v` | [`format_g`], [`write_g`] | RLP tag convergence (§7.3), syslog gauge values |
//! | `strconv.FormatFloat(v, 'f', -1, 64)` | [`format_f_shortest`], [`write_f_shortest`] | the agent's tagger |
//! | `fmt.Sprintf("%f", v)` (six decimals) | [`format_f6`], [`write_f6`] | `ToV1` deprecated tags |
//! | protojson number (`'f'` or `'e'` shortest, JSON exponent form) | [`write_json_number`] | RLP gateway JSON |
//!
//! All of them start from the shortest decimal digits that round-trip (what
//! Go's `-1` precision means), which Rust's `{:e}` formatting also produces;
//! only the layout differs. Non-finite values render as Go does: `NaN`,
//! `+Inf`, `-Inf` (JSON: `"NaN"`, `"Infinity"`, `"-Infinity"`).
//!
//! The `write_*` forms append to a `String` without allocating anything else.

use std::fmt::Write as _;

/// Shortest round-trip decimal digits of a finite, non-negative value:
/// `digits` (no leading zeros, at least one digit) and the decimal exponent
/// of the first digit (`1.5` -> `("15", 0)`, `0.001` -> `("1", -3)`).
struct Digits {
    buf: [u8; 32],
    len: usize,
    exp: i32,
}

impl Digits {
    fn of(abs: f64) -> Self {
        // `{:e}` writes the shortest round-trip digits as `d.ddde<exp>`.
        let mut raw = StackBuf::default();
        // StackBuf holds 40 bytes; the longest `{:e}` output of an f64 is
        // 17 digits + '.' + 'e' + sign + 3 exponent digits = 23 bytes.
        let _ = write!(raw, "{abs:e}");
        let text = raw.as_bytes();
        let mut out = Digits {
            buf: [0; 32],
            len: 0,
            exp: 0,
        };
        let mut i = 0;
        while i < text.len() && text[i] != b'e' {
            if text[i].is_ascii_digit() && out.len < out.buf.len() {
                out.buf[out.len] = text[i];
                out.len += 1;
            }
            i += 1;
        }
        let mut exp: i32 = 0;
        let mut neg = false;
        for &b in text.get(i + 1..).unwrap_or(&[]) {
            match b {
                b'-' => neg = true,
                b'0'..=b'9' => exp = exp * 10 + i32::from(b - b'0'),
                _ => {}
            }
        }
        out.exp = if neg { -exp } else { exp };
        if out.len == 0 {
            out.buf[0] = b'0';
            out.len = 1;
        }
        out
    }

    fn digits(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A fixed-size `fmt::Write` sink on the stack.
struct StackBuf {
    buf: [u8; 40],
    len: usize,
}

impl Default for StackBuf {
    fn default() -> Self {
        Self {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl StackBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn push_ascii(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(char::from(b));
    }
}

/// Writes `neg` sign, then the digits laid out as Go's `%e` with the given
/// digits (at least two exponent digits, explicit sign).
fn write_e_layout(out: &mut String, neg: bool, d: &Digits) {
    if neg {
        out.push('-');
    }
    let digits = d.digits();
    out.push(char::from(digits[0]));
    if digits.len() > 1 {
        out.push('.');
        push_ascii(out, &digits[1..]);
    }
    out.push('e');
    let exp = if d.digits() == b"0" { 0 } else { d.exp };
    out.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        out.push('0');
    }
    let _ = write!(out, "{abs}");
}

/// Writes the digits laid out as Go's `%f` with exactly the digits needed.
fn write_f_layout(out: &mut String, neg: bool, d: &Digits) {
    if neg {
        out.push('-');
    }
    let digits = d.digits();
    if digits == b"0" {
        out.push('0');
        return;
    }
    if d.exp >= 0 {
        let int_len = d.exp as usize + 1;
        if digits.len() <= int_len {
            push_ascii(out, digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            push_ascii(out, &digits[..int_len]);
            out.push('.');
            push_ascii(out, &digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-d.exp - 1) {
            out.push('0');
        }
        push_ascii(out, digits);
    }
}

/// Writes Go's non-finite spellings; returns false for finite values.
fn write_non_finite(out: &mut String, v: f64) -> bool {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        return false;
    }
    true
}

/// Appends `strconv.FormatFloat(v, 'g', -1, 64)` (also `fmt.Sprint(v)`):
/// shortest digits, in exponent form when the decimal exponent is < -4 or
/// >= 6 (`1e+08`, `1e-05`, `123456.5`, `1.2345675e+06`, `0.0001`, `-0`).
pub fn write_g(out: &mut String, v: f64) {
    if write_non_finite(out, v) {
        return;
    }
    let neg = v.is_sign_negative();
    let d = Digits::of(v.abs());
    if d.digits() != b"0" && (d.exp < -4 || d.exp >= 6) {
        write_e_layout(out, neg, &d);
    } else {
        write_f_layout(out, neg, &d);
    }
}

/// `strconv.FormatFloat(v, 'g', -1, 64)` as a new string; see [`write_g`].
pub fn format_g(v: f64) -> String {
    let mut s = String::with_capacity(24);
    write_g(&mut s, v);
    s
}

/// Appends `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, never an
/// exponent (`100000000`, `0.00001`, `-0`).
pub fn write_f_shortest(out: &mut String, v: f64) {
    if write_non_finite(out, v) {
        return;
    }
    let d = Digits::of(v.abs());
    write_f_layout(out, v.is_sign_negative(), &d);
}

/// `strconv.FormatFloat(v, 'f', -1, 64)` as a new string.
pub fn format_f_shortest(v: f64) -> String {
    let mut s = String::with_capacity(24);
    write_f_shortest(&mut s, v);
    s
}

/// Appends `fmt.Sprintf("%f", v)`: six decimals, correctly rounded (ties to
/// even on the exact binary value, as Go does): `2.500000`, `-0.000000`.
pub fn write_f6(out: &mut String, v: f64) {
    if write_non_finite(out, v) {
        return;
    }
    let _ = write!(out, "{v:.6}");
}

/// `fmt.Sprintf("%f", v)` as a new string.
pub fn format_f6(v: f64) -> String {
    let mut s = String::with_capacity(24);
    write_f6(&mut s, v);
    s
}

/// Appends a double the way protojson writes it: `"NaN"`, `"Infinity"`,
/// `"-Infinity"` as JSON strings; otherwise shortest digits in `'f'` form,
/// or `'e'` form when `|v| < 1e-6` or `|v| >= 1e21` with a one-digit negative
/// exponent shortened (`1e-7`, `1e+21`, `5e-324`, `-0`).
pub fn write_json_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("\"NaN\"");
        return;
    }
    if v == f64::INFINITY {
        out.push_str("\"Infinity\"");
        return;
    }
    if v == f64::NEG_INFINITY {
        out.push_str("\"-Infinity\"");
        return;
    }
    let abs = v.abs();
    let neg = v.is_sign_negative();
    let d = Digits::of(abs);
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let start = out.len();
        write_e_layout(out, neg, &d);
        // Go: "1e-07" -> "1e-7" (only a single leading zero of a negative exponent).
        let tail = &out.as_bytes()[start..];
        let n = tail.len();
        if n >= 4 && tail[n - 4] == b'e' && tail[n - 3] == b'-' && tail[n - 2] == b'0' {
            let last = char::from(tail[n - 1]);
            out.truncate(start + n - 2);
            out.push(last);
        }
    } else {
        write_f_layout(out, neg, &d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_matches_go_strconv_shortest() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1e20, "1e+20"),
            (1e21, "1e+21"),
            (1e8, "1e+08"),
            (2.5, "2.5"),
            (3.0, "3"),
            (123456789.125, "1.23456789125e+08"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (-0.0, "-0"),
            (0.0, "0"),
            (-1.5e300, "-1.5e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (12.75, "12.75"),
        ];
        for &(v, want) in cases {
            assert_eq!(format_g(v), want, "format_g({v:?})");
        }
    }

    #[test]
    fn f_shortest_never_uses_an_exponent() {
        assert_eq!(format_f_shortest(1e8), "100000000");
        assert_eq!(format_f_shortest(1e-5), "0.00001");
        assert_eq!(format_f_shortest(2.5), "2.5");
        assert_eq!(format_f_shortest(-0.0), "-0");
        assert_eq!(format_f_shortest(1e21), "1000000000000000000000");
        assert_eq!(format_f_shortest(f64::INFINITY), "+Inf");
    }

    #[test]
    fn f6_is_go_percent_f() {
        assert_eq!(format_f6(2.5), "2.500000");
        assert_eq!(format_f6(0.1), "0.100000");
        assert_eq!(format_f6(1e21), "1000000000000000000000.000000");
        assert_eq!(format_f6(123456789.125), "123456789.125000");
        assert_eq!(format_f6(0.0078125), "0.007812");
        assert_eq!(format_f6(-0.0), "-0.000000");
        assert_eq!(format_f6(f64::NAN), "NaN");
    }

    #[test]
    fn json_numbers_follow_protojson() {
        let cases: &[(f64, &str)] = &[
            (-0.0, "-0"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1e-7, "1e-7"),
            (1e-6, "0.000001"),
            (0.1, "0.1"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (123456789.125, "123456789.125"),
            (1e-10, "1e-10"),
            (f64::NAN, "\"NaN\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ];
        for &(v, want) in cases {
            let mut s = String::new();
            write_json_number(&mut s, v);
            assert_eq!(s, want, "json({v:?})");
        }
    }
}
