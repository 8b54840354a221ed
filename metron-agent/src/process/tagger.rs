//! v2 tagging (reference §8.3 step 4): deprecated tags are copied into
//! `tags`, then the agent's default tags are added where the key is absent.

use std::collections::BTreeMap;

use envelope_proto::loggregator_v2::{Envelope, Value, value::Data};

/// Copies every deprecated tag into `tags` (overwriting a same-named tag, as
/// upstream does), leaves `deprecated_tags` in place, then adds each default
/// tag whose key is absent.
pub fn tag_envelope(env: &mut Envelope, defaults: &BTreeMap<String, String>) {
    for (key, value) in &env.deprecated_tags {
        env.tags.insert(key.clone(), value_text(value));
    }
    for (key, value) in defaults {
        if !env.tags.contains_key(key) {
            env.tags.insert(key.clone(), value.clone());
        }
    }
}

/// Renders a deprecated `Value` the way the upstream tagger does: text as is,
/// integers in decimal, decimals like Go's `strconv.FormatFloat(v, 'f', -1, 64)`,
/// and a value with no member as the empty string.
pub fn value_text(value: &Value) -> String {
    match &value.data {
        Some(Data::Text(t)) => t.clone(),
        Some(Data::Integer(i)) => i.to_string(),
        Some(Data::Decimal(d)) => format_float_f(*d),
        None => String::new(),
    }
}

/// Go `strconv.FormatFloat(v, 'f', -1, 64)`: the shortest decimal that
/// round-trips, never in exponent form. Rust's `Display` for `f64` has exactly
/// that contract for finite values; only the special values are spelled
/// differently.
pub fn format_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_format_like_go_f_minus_one() {
        assert_eq!(format_float_f(1e21), "1000000000000000000000");
        assert_eq!(format_float_f(1e-7), "0.0000001");
        assert_eq!(format_float_f(0.1), "0.1");
        assert_eq!(format_float_f(2.5), "2.5");
        assert_eq!(format_float_f(-0.0), "-0");
        assert_eq!(format_float_f(1e8), "100000000");
        assert_eq!(format_float_f(f64::NAN), "NaN");
        assert_eq!(format_float_f(f64::INFINITY), "+Inf");
        assert_eq!(format_float_f(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn defaults_only_where_absent_and_deprecated_overwrites() {
        let mut env = Envelope::default();
        env.tags.insert("job".into(), "mine".into());
        env.tags.insert("ip".into(), "1.2.3.4".into());
        env.deprecated_tags.insert(
            "ip".into(),
            Value {
                data: Some(Data::Integer(7)),
            },
        );
        let defaults: BTreeMap<String, String> = [("job", "d-job"), ("ip", "d-ip"), ("x", "y")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        tag_envelope(&mut env, &defaults);
        assert_eq!(env.tags["job"], "mine");
        assert_eq!(env.tags["ip"], "7");
        assert_eq!(env.tags["x"], "y");
        assert_eq!(env.deprecated_tags.len(), 1);
    }
}
