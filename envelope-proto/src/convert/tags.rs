//! Tag convergence at the RLP (reference §7.3).

use crate::gofmt;
use crate::loggregator_v2::{Envelope, Value, value::Data};

/// What the RLP does to every envelope before sending it to a client:
/// - `use_preferred_tags = true`: every deprecated tag is copied into `tags`
///   (text as is, integer in decimal, decimal with Go's `%v`, i.e.
///   [`gofmt::format_g`]; a Value with no member is dropped), overwriting a
///   tag of the same name, and `deprecated_tags` is cleared;
/// - `false`: every tag is copied into `deprecated_tags` as a text Value,
///   overwriting a deprecated tag of the same name, and `tags` is cleared.
pub fn converge_tags(env: &mut Envelope, use_preferred_tags: bool) {
    if use_preferred_tags {
        for (k, v) in std::mem::take(&mut env.deprecated_tags) {
            let rendered = match v.data {
                Some(Data::Text(t)) => t,
                Some(Data::Integer(i)) => i.to_string(),
                Some(Data::Decimal(d)) => gofmt::format_g(d),
                None => continue,
            };
            env.tags.insert(k, rendered);
        }
    } else {
        for (k, v) in std::mem::take(&mut env.tags) {
            env.deprecated_tags.insert(
                k,
                Value {
                    data: Some(Data::Text(v)),
                },
            );
        }
    }
}
