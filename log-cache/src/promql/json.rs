//! The Prometheus-shaped JSON of upstream's `PromqlMarshaler`
//! (`src/pkg/marshaler/marshaler.go`), byte for byte: Go `encoding/json`
//! output (struct fields in declaration order, map keys sorted, HTML-safe
//! string escaping), point times as the raw `%.3f` text, values as
//! `strconv.FormatFloat(v, 'f', -1, 64)` strings, and the `\n` the gateway
//! appends to every body.

use envelope_proto::gofmt::write_f_shortest;
use envelope_proto::logcache_v1::prom_ql::{
    InstantQueryResult, Matrix, Point, RangeQueryResult, Scalar, Vector, instant_query_result,
    range_query_result,
};

use std::collections::BTreeMap;

/// The body for an instant query's result.
pub fn instant(r: &InstantQueryResult) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"status":"success","data":{"resultType":""#);
    match &r.result {
        Some(instant_query_result::Result::Scalar(s)) => scalar(&mut out, s),
        Some(instant_query_result::Result::Vector(v)) => vector(&mut out, v),
        Some(instant_query_result::Result::Matrix(m)) => matrix(&mut out, m),
        None => out.push('"'),
    }
    out.push_str("}}\n");
    out
}

/// The body for a range query's result.
pub fn range(r: &RangeQueryResult) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"status":"success","data":{"resultType":""#);
    match &r.result {
        Some(range_query_result::Result::Matrix(m)) => matrix(&mut out, m),
        None => out.push('"'),
    }
    out.push_str("}}\n");
    out
}

/// The gateway's error body: `{"status":"error","errorType":"internal","error":…}`.
pub fn error(message: &str) -> String {
    let mut out = String::with_capacity(64 + message.len());
    out.push_str(r#"{"status":"error","errorType":"internal","error":"#);
    write_go_str(&mut out, message);
    out.push_str("}\n");
    out
}

fn scalar(out: &mut String, s: &Scalar) {
    out.push_str(r#"scalar","result":"#);
    point(out, &s.time, s.value);
}

fn vector(out: &mut String, v: &Vector) {
    out.push_str(r#"vector","result":["#);
    for (i, s) in v.samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        metric(out, &s.metric);
        out.push_str(r#","value":"#);
        let p = s.point.clone().unwrap_or_default();
        point(out, &p.time, p.value);
        out.push('}');
    }
    out.push(']');
}

fn matrix(out: &mut String, m: &Matrix) {
    out.push_str(r#"matrix","result":["#);
    for (i, s) in m.series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        metric(out, &s.metric);
        out.push_str(r#","values":"#);
        // Upstream's `values` is a nil slice when a series has no points.
        if s.points.is_empty() {
            out.push_str("null");
        } else {
            out.push('[');
            for (j, Point { time, value }) in s.points.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                point(out, time, *value);
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push(']');
}

fn metric(out: &mut String, m: &BTreeMap<String, String>) {
    out.push('{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_go_str(out, k);
        out.push(':');
        write_go_str(out, v);
    }
    out.push('}');
}

/// `[<time as %.3f>,"<value>"]`. Times we produce are already `%.3f`
/// text; anything else is re-formatted as upstream does (`ParseFloat`,
/// then `%.3f`), `0.000` if it does not parse.
fn point(out: &mut String, time: &str, value: f64) {
    out.push('[');
    if is_three_decimals(time) {
        out.push_str(time);
    } else {
        let t = time.parse::<f64>().unwrap_or(0.0);
        out.push_str(&format!("{t:.3}"));
    }
    out.push_str(",\"");
    write_f_shortest(out, value);
    out.push_str("\"]");
}

fn is_three_decimals(t: &str) -> bool {
    let t = t.strip_prefix('-').unwrap_or(t);
    match t.split_once('.') {
        Some((int, frac)) => {
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && (int == "0" || !int.starts_with('0'))
                && frac.len() == 3
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A JSON string as Go's `encoding/json` writes it (HTML-safe: `<`, `>`,
/// `&`, U+2028 and U+2029 escaped as `\u….`).
pub fn write_go_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{8}' => Some("\\b"),
            '\u{c}' => Some("\\f"),
            '\u{2028}' => Some("\\u2028"),
            '\u{2029}' => Some("\\u2029"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope_proto::logcache_v1::prom_ql::{Sample, Series};

    #[test]
    fn go_string_escaping() {
        let mut s = String::new();
        write_go_str(&mut s, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001\u2028é""#);
    }

    #[test]
    fn shapes() {
        let v = InstantQueryResult {
            result: Some(instant_query_result::Result::Vector(Vector {
                samples: vec![Sample {
                    metric: [("source_id".to_owned(), "app".to_owned())].into(),
                    point: Some(Point {
                        time: "1537290750.000".into(),
                        value: 42.0,
                    }),
                }],
            })),
        };
        assert_eq!(
            instant(&v),
            "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"source_id\":\"app\"},\"value\":[1537290750.000,\"42\"]}]}}\n"
        );
        let empty = RangeQueryResult {
            result: Some(range_query_result::Result::Matrix(Matrix {
                series: vec![],
            })),
        };
        assert_eq!(
            range(&empty),
            "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}\n"
        );
        let m = RangeQueryResult {
            result: Some(range_query_result::Result::Matrix(Matrix {
                series: vec![Series {
                    metric: BTreeMap::new(),
                    points: vec![],
                }],
            })),
        };
        assert_eq!(
            range(&m),
            "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":null}]}}\n"
        );
        let s = InstantQueryResult {
            result: Some(instant_query_result::Result::Scalar(Scalar {
                time: "99".into(),
                value: 0.0,
            })),
        };
        assert_eq!(
            instant(&s),
            "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[99.000,\"0\"]}}\n"
        );
        assert_eq!(
            instant(&InstantQueryResult { result: None }),
            "{\"status\":\"success\",\"data\":{\"resultType\":\"\"}}\n"
        );
        assert_eq!(
            error("expected error"),
            "{\"status\":\"error\",\"errorType\":\"internal\",\"error\":\"expected error\"}\n"
        );
    }
}
