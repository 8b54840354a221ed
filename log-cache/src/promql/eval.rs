//! Evaluation of a parsed expression at one instant over loaded series,
//! with Prometheus 2.x semantics (5-minute lookback, inclusive windows,
//! extrapolated `rate`/`increase`/`delta`, incremental `avg`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::QueryError;
use super::parse::{AggOp, BinOp, Expr, Func, Grouping, MatchOp, Selector, VectorMatching};

/// How far back an instant vector selector looks for a sample, ms.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A label set (sorted by name).
pub type Labels = Arc<BTreeMap<String, String>>;

/// A series: labels and points `(ms, value)` ordered by time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels.
    pub labels: Labels,
    /// Points, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels.
    pub labels: Labels,
    /// Value.
    pub v: f64,
}

/// The value of an expression at an instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar.
    Scalar(f64),
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A range vector (only a bare range selector evaluates to one).
    Matrix(Vec<Series>),
}

/// Whether `labels` satisfy every matcher of `sel` (the metric name is
/// matched when the series is built). A `source_id=~"a|b"` matcher is the
/// set of ids read, as upstream treats it, so it is not re-applied.
pub fn selects(sel: &Selector, labels: &BTreeMap<String, String>) -> bool {
    sel.matchers.iter().all(|m| {
        if m.name == "source_id" && m.op == MatchOp::Regex {
            return true;
        }
        m.matches(labels.get(&m.name).map_or("", String::as_str))
    })
}

/// Evaluates expressions over the series loaded for each selector
/// (indexed by [`Selector::id`]).
pub struct Evaluator<'a> {
    /// Series of each selector.
    pub data: &'a [Vec<Series>],
    /// Past it, evaluation stops with the timeout error.
    pub deadline: Instant,
}

impl Evaluator<'_> {
    /// The value of `e` at `t` (ms).
    pub fn eval(&self, e: &Expr, t: i64) -> Result<Value, QueryError> {
        Ok(match e {
            Expr::Number(v) => Value::Scalar(*v),
            Expr::Vector(sel) => Value::Vector(self.instant(sel, t)?),
            Expr::Matrix(sel, range) => {
                let mut out = Vec::new();
                for s in self.series(sel)? {
                    let w = window(&s.points, t - range, t);
                    if !w.is_empty() {
                        out.push(Series {
                            labels: s.labels.clone(),
                            points: w.to_vec(),
                        });
                    }
                }
                Value::Matrix(out)
            }
            Expr::Call(f, arg) => {
                let Expr::Matrix(sel, range) = &**arg else {
                    return Err(QueryError::unknown(
                        "function argument is not a range vector",
                    ));
                };
                let mut out = Vec::new();
                for s in self.series(sel)? {
                    let w = window(&s.points, t - range, t);
                    if let Some(v) = call(*f, w, t - range, t, *range) {
                        out.push(Sample {
                            labels: s.labels.clone(),
                            v,
                        });
                    }
                }
                Value::Vector(out)
            }
            Expr::Aggregate(op, grouping, arg) => {
                let Value::Vector(v) = self.eval(arg, t)? else {
                    return Err(QueryError::unknown("aggregation over a non-vector"));
                };
                Value::Vector(aggregate(*op, grouping, v))
            }
            Expr::Neg(arg) => match self.eval(arg, t)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(mut v) => {
                    for s in &mut v {
                        s.v = -s.v;
                    }
                    Value::Vector(v)
                }
                Value::Matrix(_) => return Err(QueryError::unknown("negation of a range vector")),
            },
            Expr::Binary(op, l, r, matching) => {
                let (l, r) = (self.eval(l, t)?, self.eval(r, t)?);
                match (l, r) {
                    (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(op.apply(a, b)),
                    (Value::Vector(mut v), Value::Scalar(b)) => {
                        for s in &mut v {
                            s.v = op.apply(s.v, b);
                        }
                        Value::Vector(v)
                    }
                    (Value::Scalar(a), Value::Vector(mut v)) => {
                        for s in &mut v {
                            s.v = op.apply(a, s.v);
                        }
                        Value::Vector(v)
                    }
                    (Value::Vector(a), Value::Vector(b)) => {
                        Value::Vector(vector_binary(*op, a, b, matching)?)
                    }
                    _ => {
                        return Err(QueryError::unknown(
                            "binary expression must contain only scalar and instant vector types",
                        ));
                    }
                }
            }
        })
    }

    fn series(&self, sel: &Selector) -> Result<&[Series], QueryError> {
        if Instant::now() >= self.deadline {
            return Err(QueryError::timeout());
        }
        Ok(self.data.get(sel.id).map_or(&[][..], Vec::as_slice))
    }

    /// The latest sample of each series within the lookback.
    fn instant(&self, sel: &Selector, t: i64) -> Result<Vec<Sample>, QueryError> {
        let mut out = Vec::new();
        for s in self.series(sel)? {
            let idx = s.points.partition_point(|p| p.0 <= t);
            if idx > 0 {
                let (pt, v) = s.points[idx - 1];
                if pt >= t - LOOKBACK_MS {
                    out.push(Sample {
                        labels: s.labels.clone(),
                        v,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// The points with `from <= t <= to`.
fn window(points: &[(i64, f64)], from: i64, to: i64) -> &[(i64, f64)] {
    let lo = points.partition_point(|p| p.0 < from);
    let hi = points.partition_point(|p| p.0 <= to);
    &points[lo..hi.max(lo)]
}

fn call(f: Func, w: &[(i64, f64)], start: i64, end: i64, range: i64) -> Option<f64> {
    match f {
        Func::Rate => extrapolated(w, start, end, range, true, true),
        Func::Increase => extrapolated(w, start, end, range, true, false),
        Func::Delta => extrapolated(w, start, end, range, false, false),
        Func::Irate => {
            let [.., (pt, pv), (lt, lv)] = *w else {
                return None;
            };
            let interval = lt - pt;
            if interval == 0 {
                return None;
            }
            let diff = if lv < pv { lv } else { lv - pv };
            Some(diff / (interval as f64 / 1000.0))
        }
        Func::SumOverTime => (!w.is_empty()).then(|| w.iter().map(|p| p.1).sum()),
        Func::CountOverTime => (!w.is_empty()).then_some(w.len() as f64),
        Func::AvgOverTime => {
            if w.is_empty() {
                return None;
            }
            let mut mean = 0.0;
            for (i, p) in w.iter().enumerate() {
                mean += (p.1 - mean) / (i + 1) as f64;
            }
            Some(mean)
        }
        Func::MaxOverTime => w
            .iter()
            .map(|p| p.1)
            .reduce(|a, b| if a < b || a.is_nan() { b } else { a }),
        Func::MinOverTime => w
            .iter()
            .map(|p| p.1)
            .reduce(|a, b| if a > b || a.is_nan() { b } else { a }),
    }
}

/// Prometheus' `extrapolatedRate`.
fn extrapolated(
    w: &[(i64, f64)],
    start: i64,
    end: i64,
    range: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if w.len() < 2 {
        return None;
    }
    let (first, last) = (w[0], w[w.len() - 1]);
    let mut correction = 0.0;
    if is_counter {
        let mut prev = first.1;
        for p in &w[1..] {
            if p.1 < prev {
                correction += prev;
            }
            prev = p.1;
        }
    }
    let mut result = last.1 - first.1 + correction;
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    if sampled == 0.0 {
        return None;
    }
    let avg_between = sampled / (w.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = avg_between * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        avg_between / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        avg_between / 2.0
    };
    result *= interval / sampled;
    if is_rate {
        result /= range as f64 / 1000.0;
    }
    Some(result)
}

struct Group {
    labels: Labels,
    value: f64,
    count: usize,
}

fn aggregate(op: AggOp, grouping: &Grouping, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: BTreeMap<BTreeMap<String, String>, Group> = BTreeMap::new();
    for s in v {
        let key: BTreeMap<String, String> = match grouping {
            Grouping::By(names) => s
                .labels
                .iter()
                .filter(|(k, _)| names.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Grouping::Without(names) => s
                .labels
                .iter()
                .filter(|(k, _)| !names.contains(k) && *k != "__name__")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        match groups.get_mut(&key) {
            None => {
                let value = if op == AggOp::Count { 1.0 } else { s.v };
                groups.insert(
                    key.clone(),
                    Group {
                        labels: Arc::new(key),
                        value,
                        count: 1,
                    },
                );
            }
            Some(g) => {
                g.count += 1;
                match op {
                    AggOp::Sum => g.value += s.v,
                    AggOp::Count => g.value += 1.0,
                    AggOp::Avg => g.value += (s.v - g.value) / g.count as f64,
                    AggOp::Max => {
                        if g.value < s.v || g.value.is_nan() {
                            g.value = s.v;
                        }
                    }
                    AggOp::Min => {
                        if g.value > s.v || g.value.is_nan() {
                            g.value = s.v;
                        }
                    }
                }
            }
        }
    }
    groups
        .into_values()
        .map(|g| Sample {
            labels: g.labels,
            v: g.value,
        })
        .collect()
}

fn signature(labels: &BTreeMap<String, String>, m: &VectorMatching) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| match m {
            VectorMatching::On(names) => names.contains(k),
            VectorMatching::Ignoring(names) => !names.contains(k) && *k != "__name__",
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// One-to-one vector matching.
fn vector_binary(
    op: BinOp,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &VectorMatching,
) -> Result<Vec<Sample>, QueryError> {
    let mut right: HashMap<BTreeMap<String, String>, f64> = HashMap::with_capacity(rhs.len());
    for s in &rhs {
        if right.insert(signature(&s.labels, m), s.v).is_some() {
            return Err(QueryError::unknown(
                "many-to-many matching not allowed: matching labels must be unique on one side",
            ));
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in lhs {
        let sig = signature(&s.labels, m);
        let Some(&r) = right.get(&sig) else {
            continue;
        };
        if !seen.insert(sig.clone()) {
            return Err(QueryError::unknown(
                "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
            ));
        }
        let labels = match m {
            VectorMatching::On(_) => Arc::new(sig),
            VectorMatching::Ignoring(names) => {
                if names.is_empty() {
                    s.labels
                } else {
                    let mut l = (*s.labels).clone();
                    l.retain(|k, _| !names.contains(k));
                    Arc::new(l)
                }
            }
        };
        out.push(Sample {
            labels,
            v: op.apply(s.v, r),
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_like_prometheus() {
        // 0..=60 s every 10 s, +10 each: the window [0, 60] s is fully
        // covered, so rate = 60 / 60 = 1 per second, increase = 60.
        let w: Vec<(i64, f64)> = (0..=6).map(|i| (i * 10_000, (i * 10) as f64)).collect();
        let r = extrapolated(&w, 0, 60_000, 60_000, true, true).unwrap();
        assert!((r - 1.0).abs() < 1e-12, "{r}");
        let inc = extrapolated(&w, 0, 60_000, 60_000, true, false).unwrap();
        assert!((inc - 60.0).abs() < 1e-9, "{inc}");
        // A counter reset is corrected.
        let w = [(0, 10.0), (10_000, 20.0), (20_000, 5.0), (30_000, 15.0)];
        let inc = extrapolated(&w, 0, 30_000, 30_000, true, false).unwrap();
        assert!((inc - 25.0).abs() < 1e-9, "{inc}");
        // One point: no result.
        assert_eq!(extrapolated(&w[..1], 0, 30_000, 30_000, true, true), None);
    }

    #[test]
    fn irate_uses_the_last_two_points() {
        let w = [(0, 1.0), (10_000, 5.0), (12_000, 9.0)];
        assert_eq!(call(Func::Irate, &w, 0, 12_000, 12_000), Some(2.0));
        let reset = [(0, 10.0), (2_000, 4.0)];
        assert_eq!(call(Func::Irate, &reset, 0, 2_000, 2_000), Some(2.0));
    }

    #[test]
    fn windows_are_inclusive() {
        let p = [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)];
        assert_eq!(window(&p, 2, 3), &p[1..3]);
        assert!(window(&p, 5, 9).is_empty());
        assert!(window(&p, 3, 2).is_empty());
    }
}
