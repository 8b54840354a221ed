//! Go's numeric conversions as compiled for amd64 (where the reference
//! fixtures were produced), so that out-of-range values convert the same way.

/// `strconv.ParseInt(s, 10, 64)`, returning 0 on any error (go-loggregator's
/// `atoi` helper and `strconv.Atoi` with its error ignored as 0).
pub(crate) fn atoi(s: &str) -> i64 {
    // Rust's i64 parser accepts the same syntax as Go's base-10 ParseInt:
    // optional '+'/'-' sign then ASCII digits; no spaces or underscores.
    s.parse::<i64>().unwrap_or(0)
}

/// Go `int64(f)` on amd64 (CVTTSD2SQ): truncation toward zero; NaN and
/// out-of-range values give `i64::MIN`.
pub(crate) fn f64_to_i64(f: f64) -> i64 {
    // 2^63 as f64 is exact; the valid range is [-2^63, 2^63).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() || !(-LIMIT..LIMIT).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// Go `uint64(f)` on amd64: values below 2^63 go through CVTTSD2SQ (so a
/// negative value wraps, e.g. -1.0 -> 2^64-1); larger ones subtract 2^63
/// first and set the top bit; NaN and overflow give `1 << 63`.
pub(crate) fn f64_to_u64(f: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f < TWO_63 {
        f64_to_i64(f) as u64
    } else {
        (f64_to_i64(f - TWO_63) as u64) | (1 << 63)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_follows_parse_int() {
        assert_eq!(atoi("42"), 42);
        assert_eq!(atoi("+7"), 7);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi(""), 0);
        assert_eq!(atoi("x"), 0);
        assert_eq!(atoi(" 1"), 0);
        assert_eq!(atoi("99999999999999999999"), 0);
    }

    #[test]
    fn float_conversions_match_amd64() {
        assert_eq!(f64_to_u64(1_900_000_000.99), 1_900_000_000);
        assert_eq!(f64_to_u64(-1.0), u64::MAX);
        assert_eq!(f64_to_u64(f64::NAN), 1 << 63);
        assert_eq!(f64_to_u64(1e30), 1 << 63);
        assert_eq!(f64_to_u64(1.5e19), 15_000_000_000_000_000_000);
        assert_eq!(f64_to_i64(9.7), 9);
        assert_eq!(f64_to_i64(f64::INFINITY), i64::MIN);
    }
}
