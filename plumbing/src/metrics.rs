//! Metrics registry passed in (never global), rendered as Prometheus text format 0.0.4.
//!
//! A [`Registry`] is cheap to clone (shared). [`Registry::counter`] and [`Registry::gauge`]
//! return handles to an atomic cell; asking again for the same name and label set returns a
//! handle to the same cell, so components may create handles wherever convenient. Handles are
//! cheap clones; updating one is a single relaxed atomic operation.
//!
//! Rendering sorts families by name and series by label set, so output is stable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::Mutex;

/// Monotonic counter handle (clone freely).
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// A counter not attached to any registry (useful as a default or in tests).
    pub fn detached() -> Self {
        Counter::default()
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Gauge handle (clone freely).
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// A gauge not attached to any registry.
    pub fn detached() -> Self {
        Gauge::default()
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// Adds `d` (may be negative).
    #[inline]
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

#[derive(Debug, Clone)]
enum Cell {
    Counter(Counter),
    Gauge(Gauge),
}

type Labels = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    help: String,
    kind: Kind,
    series: BTreeMap<Labels, Cell>,
}

/// Shared set of metric families. Clone to share; pass it to each component.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

impl Registry {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Returns the counter `name` with `labels` (created on first use).
    ///
    /// Names and label names are sanitised to the Prometheus alphabet (`[a-zA-Z_:][a-zA-Z0-9_:]*`,
    /// other characters become `_`). If `name` was already registered as a gauge, the counter
    /// is registered under `name` with the suffix `_total` instead of panicking.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        match self.cell(name, help, labels, Kind::Counter) {
            Cell::Counter(c) => c,
            Cell::Gauge(_) => self.counter(&format!("{name}_total"), help, labels),
        }
    }

    /// Returns the gauge `name` with `labels` (created on first use). See [`Registry::counter`]
    /// for name rules; a clash with a counter registers `<name>_gauge`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        match self.cell(name, help, labels, Kind::Gauge) {
            Cell::Gauge(g) => g,
            Cell::Counter(_) => self.gauge(&format!("{name}_gauge"), help, labels),
        }
    }

    fn cell(&self, name: &str, help: &str, labels: &[(&str, &str)], kind: Kind) -> Cell {
        let name = sanitize_name(name);
        let mut key: Labels = labels
            .iter()
            .map(|(k, v)| (sanitize_name(k), (*v).to_owned()))
            .collect();
        key.sort();
        key.dedup_by(|a, b| a.0 == b.0);
        let mut families = self.families.lock();
        let family = families.entry(name).or_insert_with(|| Family {
            help: help.to_owned(),
            kind,
            series: BTreeMap::new(),
        });
        if family.kind != kind {
            // Report the existing kind so the caller can pick another name.
            return match family.kind {
                Kind::Counter => Cell::Counter(Counter::detached()),
                Kind::Gauge => Cell::Gauge(Gauge::detached()),
            };
        }
        family
            .series
            .entry(key)
            .or_insert_with(|| match kind {
                Kind::Counter => Cell::Counter(Counter::default()),
                Kind::Gauge => Cell::Gauge(Gauge::default()),
            })
            .clone()
    }

    /// Renders every family in Prometheus text format 0.0.4, sorted by name and label set.
    pub fn render(&self) -> String {
        let families = self.families.lock();
        let mut out = String::with_capacity(families.len() * 128);
        for (name, family) in families.iter() {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape_help(&family.help, &mut out);
            out.push('\n');
            let _ = writeln!(out, "# TYPE {name} {}", family.kind.as_str());
            for (labels, cell) in &family.series {
                out.push_str(name);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(k);
                        out.push_str("=\"");
                        escape_label_value(v, &mut out);
                        out.push('"');
                    }
                    out.push('}');
                }
                let _ = match cell {
                    Cell::Counter(c) => writeln!(out, " {}", c.get()),
                    Cell::Gauge(g) => writeln!(out, " {}", g.get()),
                };
            }
        }
        out
    }

    /// Current value of a counter series, if registered (for tests and reports).
    pub fn counter_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        match self.lookup(name, labels)? {
            Cell::Counter(c) => Some(c.get()),
            Cell::Gauge(_) => None,
        }
    }

    /// Current value of a gauge series, if registered (for tests and reports).
    pub fn gauge_value(&self, name: &str, labels: &[(&str, &str)]) -> Option<i64> {
        match self.lookup(name, labels)? {
            Cell::Gauge(g) => Some(g.get()),
            Cell::Counter(_) => None,
        }
    }

    fn lookup(&self, name: &str, labels: &[(&str, &str)]) -> Option<Cell> {
        let mut key: Labels = labels
            .iter()
            .map(|(k, v)| (sanitize_name(k), (*v).to_owned()))
            .collect();
        key.sort();
        key.dedup_by(|a, b| a.0 == b.0);
        let families = self.families.lock();
        families
            .get(&sanitize_name(name))?
            .series
            .get(&key)
            .cloned()
    }
}

fn sanitize_name(name: &str) -> String {
    let mut s = String::with_capacity(name.len().max(1));
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit());
        s.push(if ok { c } else { '_' });
    }
    if s.is_empty() {
        s.push('_');
    }
    s
}

fn escape_help(help: &str, out: &mut String) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Sample = (String, Vec<(String, String)>, String);

    /// Minimal parser for the exposition format: (name, labels, value) per sample line.
    fn parse(text: &str) -> Vec<Sample> {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("value");
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Vec::new()),
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let mut labels = Vec::new();
                    let mut chars = body.chars().peekable();
                    while chars.peek().is_some() {
                        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                        assert_eq!(chars.next(), Some('"'));
                        let mut val = String::new();
                        while let Some(c) = chars.next() {
                            match c {
                                '\\' => match chars.next() {
                                    Some('n') => val.push('\n'),
                                    Some(o) => val.push(o),
                                    None => panic!("dangling escape"),
                                },
                                '"' => break,
                                c => val.push(c),
                            }
                        }
                        labels.push((key, val));
                        if chars.peek() == Some(&',') {
                            chars.next();
                        }
                    }
                    (name.to_owned(), labels)
                }
            };
            samples.push((name, labels, value.to_owned()));
        }
        samples
    }

    #[test]
    fn renders_sorted_with_help_and_type() {
        let reg = Registry::new();
        let c = reg.counter("ingress", "Envelopes received.", &[]);
        let d1 = reg.counter("dropped", "Envelopes dropped.", &[("direction", "ingress")]);
        let d0 = reg.counter("dropped", "Envelopes dropped.", &[("direction", "egress")]);
        let g = reg.gauge("subscriptions", "Active subscriptions.", &[]);
        c.add(5);
        d1.inc();
        d0.add(3);
        g.set(-2);
        let text = reg.render();
        assert_eq!(
            text,
            "# HELP dropped Envelopes dropped.\n\
             # TYPE dropped counter\n\
             dropped{direction=\"egress\"} 3\n\
             dropped{direction=\"ingress\"} 1\n\
             # HELP ingress Envelopes received.\n\
             # TYPE ingress counter\n\
             ingress 5\n\
             # HELP subscriptions Active subscriptions.\n\
             # TYPE subscriptions gauge\n\
             subscriptions -2\n"
        );
    }

    #[test]
    fn same_series_shares_cell_and_clones_share() {
        let reg = Registry::new();
        let a = reg.counter("x", "h", &[("b", "2"), ("a", "1")]);
        let b = reg.counter("x", "h", &[("a", "1"), ("b", "2")]);
        a.inc();
        b.clone().add(2);
        assert_eq!(a.get(), 3);
        assert_eq!(reg.counter_value("x", &[("a", "1"), ("b", "2")]), Some(3));
        let g = reg.gauge("y", "h", &[]);
        g.add(4);
        g.add(-1);
        assert_eq!(reg.gauge_value("y", &[]), Some(3));
        assert_eq!(reg.counter_value("y", &[]), None);
        assert_eq!(reg.counter_value("missing", &[]), None);
    }

    #[test]
    fn label_values_escaped_and_parse_back() {
        let reg = Registry::new();
        let nasty = "a\"b\\c\nd,e=f}";
        reg.counter("m", "help with \\ and\nnewline", &[("v", nasty)])
            .add(7);
        let text = reg.render();
        assert!(text.contains("# HELP m help with \\\\ and\\nnewline\n"));
        let samples = parse(&text);
        assert_eq!(
            samples,
            vec![(
                "m".to_owned(),
                vec![("v".to_owned(), nasty.to_owned())],
                "7".to_owned()
            )]
        );
    }

    #[test]
    fn names_sanitised_and_kind_clash_does_not_panic() {
        let reg = Registry::new();
        reg.counter("doppler.ingress-total", "h", &[("bad-label", "x")])
            .inc();
        let g = reg.gauge("doppler.ingress-total", "h", &[]);
        g.set(9);
        let samples = parse(&reg.render());
        let names: Vec<_> = samples.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            vec!["doppler_ingress_total", "doppler_ingress_total_gauge"]
        );
        assert_eq!(samples[0].1[0].0, "bad_label");
        assert_eq!(sanitize_name("9lives"), "_lives");
        assert_eq!(sanitize_name(""), "_");
    }

    #[test]
    fn multiple_labels_sorted_by_key() {
        let reg = Registry::new();
        reg.gauge("q", "h", &[("z", "1"), ("a", "2")]).set(1);
        assert!(reg.render().contains("q{a=\"2\",z=\"1\"} 1\n"));
    }
}
