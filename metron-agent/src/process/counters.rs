//! Counter totals (reference §8.2 step 3 and §8.3 step 4).
//!
//! The agent owns the `total` of every counter it forwards. Totals are kept
//! per key: (name, source, SHA-256 of the sorted tags). The map is bounded the
//! way upstream bounds it: once it holds more than [`MAX_COUNTERS`] keys it is
//! cleared, so a flood of distinct counters costs memory only up to that bound
//! and the totals simply restart from the next delta.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

/// Number of distinct counter keys kept before the map is reset (upstream
/// value).
pub const MAX_COUNTERS: usize = 10_000;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Key {
    name: String,
    source: String,
    tags: [u8; 32],
}

/// Which upstream rule decides whether an incoming counter replaces the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// v1 (`MessageAggregator`): a non-zero incoming total replaces the stored
    /// total; otherwise the delta is added.
    V1,
    /// v2 (`CounterAggregator`): `total == 0 && delta != 0` adds the delta; any
    /// other counter replaces the stored total (so `0/0` resets it).
    V2,
}

/// Running counter totals for one path (v1 or v2).
#[derive(Debug)]
pub struct Totals {
    rule: Rule,
    totals: HashMap<Key, u64>,
    max: usize,
}

impl Totals {
    /// Empty totals applying `rule`, bounded by [`MAX_COUNTERS`].
    pub fn new(rule: Rule) -> Self {
        Self::with_max(rule, MAX_COUNTERS)
    }

    /// Empty totals with a custom bound (tests).
    pub fn with_max(rule: Rule, max: usize) -> Self {
        Self {
            rule,
            totals: HashMap::new(),
            max,
        }
    }

    /// Number of keys currently held.
    pub fn len(&self) -> usize {
        self.totals.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    /// Applies one counter and returns the total to write into it.
    pub fn apply(
        &mut self,
        name: &str,
        source: &str,
        tags: &BTreeMap<String, String>,
        delta: u64,
        total: u64,
    ) -> u64 {
        let key = Key {
            name: name.to_owned(),
            source: source.to_owned(),
            tags: hash_tags(tags),
        };
        if !self.totals.contains_key(&key) && self.totals.len() >= self.max {
            self.totals.clear();
        }
        let stored = self.totals.entry(key).or_insert(0);
        let replace = match self.rule {
            Rule::V1 => total != 0,
            Rule::V2 => !(total == 0 && delta != 0),
        };
        if replace {
            *stored = total;
        } else {
            *stored = stored.wrapping_add(delta);
        }
        *stored
    }
}

/// SHA-256 over the tags in key order, each key and value length-prefixed so
/// that different maps never produce the same byte stream.
fn hash_tags(tags: &BTreeMap<String, String>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (k, v) in tags {
        hasher.update((k.len() as u64).to_le_bytes());
        hasher.update(k.as_bytes());
        hasher.update((v.len() as u64).to_le_bytes());
        hasher.update(v.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn v2_rule_adds_deltas_replaces_totals_and_resets_on_zero() {
        let mut t = Totals::new(Rule::V2);
        let none = tags(&[]);
        assert_eq!(t.apply("c", "s", &none, 1, 0), 1);
        assert_eq!(t.apply("c", "s", &none, 2, 0), 3);
        assert_eq!(t.apply("c", "s", &none, 5, 100), 100);
        assert_eq!(t.apply("c", "s", &none, 1, 0), 101);
        assert_eq!(t.apply("c", "s", &none, 0, 0), 0);
        assert_eq!(t.apply("c", "s", &none, 4, 0), 4);
    }

    #[test]
    fn v1_rule_zero_delta_zero_total_keeps_total() {
        let mut t = Totals::new(Rule::V1);
        let none = tags(&[]);
        assert_eq!(t.apply("c", "o", &none, 3, 0), 3);
        assert_eq!(t.apply("c", "o", &none, 0, 0), 3);
        assert_eq!(t.apply("c", "o", &none, 2, 50), 50);
        assert_eq!(t.apply("c", "o", &none, 2, 0), 52);
    }

    #[test]
    fn keys_separate_by_name_source_and_tags() {
        let mut t = Totals::new(Rule::V2);
        assert_eq!(t.apply("c", "s", &tags(&[("a", "1")]), 1, 0), 1);
        assert_eq!(t.apply("c", "s", &tags(&[("a", "2")]), 1, 0), 1);
        assert_eq!(t.apply("c", "t", &tags(&[("a", "1")]), 1, 0), 1);
        assert_eq!(t.apply("d", "s", &tags(&[("a", "1")]), 1, 0), 1);
        assert_eq!(t.apply("c", "s", &tags(&[("a", "1")]), 1, 0), 2);
        // Length prefixes keep ("ab","") and ("a","b") apart.
        assert_eq!(t.apply("c", "s", &tags(&[("ab", "")]), 1, 0), 1);
        assert_eq!(t.apply("c", "s", &tags(&[("a", "b")]), 1, 0), 1);
    }

    #[test]
    fn map_is_reset_past_the_bound() {
        let mut t = Totals::with_max(Rule::V2, 3);
        let none = tags(&[]);
        for name in ["a", "b", "c"] {
            t.apply(name, "s", &none, 5, 0);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.apply("a", "s", &none, 1, 0),
            6,
            "existing key still counts"
        );
        assert_eq!(t.apply("d", "s", &none, 1, 0), 1);
        assert_eq!(t.len(), 1, "new key past the bound clears the map");
        assert_eq!(t.apply("a", "s", &none, 1, 0), 1);
    }
}
