//! A hand-written lexer and precedence-climbing parser for the PromQL subset
//! (see the module docs of [`crate::promql`]), with Prometheus' type checks
//! done at parse time as Prometheus does them.

use regex::{Regex, RegexBuilder};

use super::QueryError;
use super::time::parse_duration_ms;

/// Longest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 64 * 1024;

/// Deepest nesting of sub-expressions accepted (the parser recurses).
pub const MAX_DEPTH: usize = 128;

/// Longest label-matcher regular expression accepted, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;

/// Compiled-size limit of a label-matcher regular expression.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A label matcher operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

/// One label matcher of a selector.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Operator.
    pub op: MatchOp,
    /// The literal value (the pattern for regex operators).
    pub value: String,
    /// The anchored compiled pattern, for regex operators.
    pub re: Option<Regex>,
}

impl Matcher {
    /// Whether `value` (empty when the label is absent) satisfies it.
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.re.as_ref().is_some_and(|re| re.is_match(value)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|re| re.is_match(value)),
        }
    }
}

/// A vector selector `name{matchers}`.
#[derive(Debug, Clone)]
pub struct Selector {
    /// Index of this selector's data (selectors in parse order).
    pub id: usize,
    /// Metric name (from the name or an `__name__="…"` matcher; may be empty).
    pub name: String,
    /// Every other matcher, `source_id` ones included.
    pub matchers: Vec<Matcher>,
}

impl Selector {
    /// The source ids read for it: `=` values, and each `|`-separated
    /// alternative of a `=~` pattern (upstream's `addSourceIDsFromLabelMatcher`).
    pub fn source_ids(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.matchers.iter().filter(|m| m.name == "source_id") {
            match m.op {
                MatchOp::Equal => out.push(m.value.clone()),
                MatchOp::Regex => out.extend(m.value.split('|').map(str::to_owned)),
                MatchOp::NotEqual | MatchOp::NotRegex => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Functions over range vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `rate`
    Rate,
    /// `irate`
    Irate,
    /// `increase`
    Increase,
    /// `delta`
    Delta,
    /// `avg_over_time`
    AvgOverTime,
    /// `sum_over_time`
    SumOverTime,
    /// `min_over_time`
    MinOverTime,
    /// `max_over_time`
    MaxOverTime,
    /// `count_over_time`
    CountOverTime,
}

impl Func {
    fn by_name(name: &str) -> Option<Func> {
        Some(match name {
            "rate" => Func::Rate,
            "irate" => Func::Irate,
            "increase" => Func::Increase,
            "delta" => Func::Delta,
            "avg_over_time" => Func::AvgOverTime,
            "sum_over_time" => Func::SumOverTime,
            "min_over_time" => Func::MinOverTime,
            "max_over_time" => Func::MaxOverTime,
            "count_over_time" => Func::CountOverTime,
            _ => return None,
        })
    }
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `max`
    Max,
    /// `min`
    Min,
    /// `count`
    Count,
}

/// Grouping of an aggregation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grouping {
    /// `by (labels)`; no clause is `by ()`.
    By(Vec<String>),
    /// `without (labels)`.
    Without(Vec<String>),
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
}

impl BinOp {
    fn precedence(self) -> u8 {
        match self {
            BinOp::Add | BinOp::Sub => 1,
            BinOp::Mul | BinOp::Div | BinOp::Mod => 2,
            BinOp::Pow => 3,
        }
    }

    /// Applies it (Go/Prometheus semantics: `%` is `math.Mod`).
    pub fn apply(self, l: f64, r: f64) -> f64 {
        match self {
            BinOp::Add => l + r,
            BinOp::Sub => l - r,
            BinOp::Mul => l * r,
            BinOp::Div => l / r,
            BinOp::Mod => l % r,
            BinOp::Pow => l.powf(r),
        }
    }
}

/// Vector-to-vector label matching (`on`/`ignoring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VectorMatching {
    /// `on (labels)`: match on exactly these.
    On(Vec<String>),
    /// `ignoring (labels)`, or no clause (`ignoring ()`).
    Ignoring(Vec<String>),
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A number literal.
    Number(f64),
    /// An instant vector selector.
    Vector(Selector),
    /// A range vector selector `sel[range]`, range in ms.
    Matrix(Selector, i64),
    /// A function over a range vector.
    Call(Func, Box<Expr>),
    /// An aggregation.
    Aggregate(AggOp, Grouping, Box<Expr>),
    /// Arithmetic.
    Binary(BinOp, Box<Expr>, Box<Expr>, VectorMatching),
    /// Unary minus.
    Neg(Box<Expr>),
}

/// Expression types (Prometheus' value types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A scalar.
    Scalar,
    /// An instant vector.
    Vector,
    /// A range vector.
    Matrix,
}

impl Type {
    /// Prometheus' name for it.
    pub fn name(self) -> &'static str {
        match self {
            Type::Scalar => "scalar",
            Type::Vector => "instant vector",
            Type::Matrix => "range vector",
        }
    }
}

impl Expr {
    /// Its value type.
    pub fn ty(&self) -> Type {
        match self {
            Expr::Number(_) => Type::Scalar,
            Expr::Vector(_) | Expr::Call(..) | Expr::Aggregate(..) => Type::Vector,
            Expr::Matrix(..) => Type::Matrix,
            Expr::Binary(_, l, r, _) => {
                if l.ty() == Type::Scalar && r.ty() == Type::Scalar {
                    Type::Scalar
                } else {
                    Type::Vector
                }
            }
            Expr::Neg(e) => e.ty(),
        }
    }

    /// Every selector in it, in parse order.
    pub fn selectors(&self) -> Vec<(&Selector, Option<i64>)> {
        let mut out = Vec::new();
        self.walk(&mut out);
        out
    }

    fn walk<'a>(&'a self, out: &mut Vec<(&'a Selector, Option<i64>)>) {
        match self {
            Expr::Number(_) => {}
            Expr::Vector(s) => out.push((s, None)),
            Expr::Matrix(s, r) => out.push((s, Some(*r))),
            Expr::Call(_, e) | Expr::Aggregate(_, _, e) | Expr::Neg(e) => e.walk(out),
            Expr::Binary(_, l, r, _) => {
                l.walk(out);
                r.walk(out);
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(f64),
    Str(String),
    /// The raw text between `[` and `]`.
    Range(String),
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Op(BinOp),
    Match(MatchOp),
    /// A comparison or set operator: recognised to give a clear error.
    Unsupported(&'static str),
    Eof,
}

fn err(pos: usize, msg: impl std::fmt::Display) -> QueryError {
    QueryError::unknown(format!("parse error at char {}: {msg}", pos + 1))
}

fn lex(input: &str) -> Result<Vec<(usize, Tok)>, QueryError> {
    let b = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b'{' => {
                i += 1;
                Tok::LBrace
            }
            b'}' => {
                i += 1;
                Tok::RBrace
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'+' => {
                i += 1;
                Tok::Op(BinOp::Add)
            }
            b'-' => {
                i += 1;
                Tok::Op(BinOp::Sub)
            }
            b'*' => {
                i += 1;
                Tok::Op(BinOp::Mul)
            }
            b'/' => {
                i += 1;
                Tok::Op(BinOp::Div)
            }
            b'%' => {
                i += 1;
                Tok::Op(BinOp::Mod)
            }
            b'^' => {
                i += 1;
                Tok::Op(BinOp::Pow)
            }
            b'=' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Unsupported("==")
                }
                Some(b'~') => {
                    i += 2;
                    Tok::Match(MatchOp::Regex)
                }
                _ => {
                    i += 1;
                    Tok::Match(MatchOp::Equal)
                }
            },
            b'!' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Match(MatchOp::NotEqual)
                }
                Some(b'~') => {
                    i += 2;
                    Tok::Match(MatchOp::NotRegex)
                }
                _ => return Err(err(i, "unexpected character after '!'")),
            },
            b'<' | b'>' => {
                i += 1;
                if b.get(i) == Some(&b'=') {
                    i += 1;
                }
                Tok::Unsupported("comparison operators")
            }
            b'[' => {
                let close = input[i..]
                    .find(']')
                    .ok_or_else(|| err(i, "unclosed left bracket"))?;
                let raw = input[i + 1..i + close].trim().to_owned();
                i += close + 1;
                Tok::Range(raw)
            }
            b'"' | b'\'' | b'`' => {
                let (s, next) = lex_string(input, i)?;
                i = next;
                Tok::Str(s)
            }
            b'0'..=b'9' | b'.' => {
                if matches!(out.last(), Some((_, Tok::Ident(w))) if is_keyword(w, "offset")) {
                    return Err(err(
                        i,
                        "offset modifier is not supported by this PromQL subset",
                    ));
                }
                let (v, next) = lex_number(input, i)?;
                i = next;
                Tok::Number(v)
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let word = &input[start..i];
                if word.eq_ignore_ascii_case("inf") {
                    Tok::Number(f64::INFINITY)
                } else if word.eq_ignore_ascii_case("nan") {
                    Tok::Number(f64::NAN)
                } else {
                    Tok::Ident(word.to_owned())
                }
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(err(i, format!("unexpected character: {ch:?}")));
            }
        };
        out.push((start, tok));
    }
    out.push((b.len(), Tok::Eof));
    Ok(out)
}

fn lex_number(input: &str, start: usize) -> Result<(f64, usize), QueryError> {
    let b = input.as_bytes();
    let mut i = start;
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        let digits = i;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        let v = u64::from_str_radix(&input[digits..i], 16).map_err(|_| err(start, "bad number"))?;
        return Ok((v as f64, i));
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
        return Err(err(
            start,
            format!("bad number or duration syntax: {:?}", &input[start..=i]),
        ));
    }
    input[start..i]
        .parse::<f64>()
        .map(|v| (v, i))
        .map_err(|_| err(start, format!("bad number: {:?}", &input[start..i])))
}

/// A quoted string with Go's escapes (backquoted: raw).
fn lex_string(input: &str, start: usize) -> Result<(String, usize), QueryError> {
    let quote = input.as_bytes()[start] as char;
    let mut out = String::new();
    let mut chars = input[start + 1..].char_indices();
    let bad = |at: usize| err(start + 1 + at, "invalid escape sequence in string");
    while let Some((at, c)) = chars.next() {
        if c == quote {
            return Ok((out, start + 1 + at + 1));
        }
        if quote == '`' || c != '\\' {
            if c == '\n' && quote != '`' {
                return Err(err(start + 1 + at, "unterminated quoted string"));
            }
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            break;
        };
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' | '\'' if e == quote => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v = 0u32;
                for _ in 0..n {
                    let (_, h) = chars.next().ok_or_else(|| bad(at))?;
                    v = v * 16 + h.to_digit(16).ok_or_else(|| bad(at))?;
                }
                out.push(char::from_u32(v).ok_or_else(|| bad(at))?);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let (_, h) = chars.next().ok_or_else(|| bad(at))?;
                    v = v * 8 + h.to_digit(8).ok_or_else(|| bad(at))?;
                }
                out.push(char::from_u32(v).ok_or_else(|| bad(at))?);
            }
            _ => return Err(bad(at)),
        }
    }
    Err(err(start, "unterminated quoted string"))
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
    selectors: usize,
}

/// Parses and type-checks `input`.
pub fn parse(input: &str) -> Result<Expr, QueryError> {
    if input.len() > MAX_QUERY_LEN {
        return Err(QueryError::unknown(format!(
            "query is longer than {MAX_QUERY_LEN} bytes"
        )));
    }
    let mut p = Parser {
        toks: lex(input)?,
        pos: 0,
        depth: 0,
        selectors: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(err(0, "no expression found in input"));
    }
    let e = p.expr(0)?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("end of input"));
    }
    Ok(e)
}

fn is_keyword(word: &str, kw: &str) -> bool {
    word.eq_ignore_ascii_case(kw)
}

fn agg_op(word: &str) -> Option<Result<AggOp, &'static str>> {
    let w = word.to_ascii_lowercase();
    Some(Ok(match w.as_str() {
        "sum" => AggOp::Sum,
        "avg" => AggOp::Avg,
        "max" => AggOp::Max,
        "min" => AggOp::Min,
        "count" => AggOp::Count,
        "stddev" | "stdvar" | "topk" | "bottomk" | "quantile" | "count_values" | "group" => {
            return Some(Err(
                "aggregation operator is not supported by this PromQL subset",
            ));
        }
        _ => return None,
    }))
}

impl Parser {
    /// The current token (the final `Eof` once past the end).
    fn cur(&self) -> &(usize, Tok) {
        let last = self.toks.len() - 1;
        &self.toks[self.pos.min(last)]
    }

    fn peek(&self) -> &Tok {
        &self.cur().1
    }

    fn at(&self) -> usize {
        self.cur().0
    }

    /// Takes the current token; `pos -= 1` puts it back.
    fn next(&mut self) -> Tok {
        let t = self.cur().1.clone();
        self.pos += 1;
        t
    }

    fn unexpected(&self, wanted: &str) -> QueryError {
        let found = match self.peek() {
            Tok::Ident(s) => format!("identifier {s:?}"),
            Tok::Number(v) => format!("number {v}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Range(r) => format!("[{r}]"),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::LBrace => "\"{\"".into(),
            Tok::RBrace => "\"}\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Op(_) => "operator".into(),
            Tok::Match(_) => "label matching operator".into(),
            Tok::Unsupported(what) => {
                return err(
                    self.at(),
                    format!("{what} are not supported by this PromQL subset"),
                );
            }
            Tok::Eof => "end of input".into(),
        };
        err(self.at(), format!("unexpected {found}, expected {wanted}"))
    }

    fn expect(&mut self, t: Tok, wanted: &str) -> Result<(), QueryError> {
        if *self.peek() == t {
            self.next();
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    fn expr(&mut self, min_prec: u8) -> Result<Expr, QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.at(), "expression nested too deeply"));
        }
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Op(op) if op.precedence() >= min_prec => *op,
                Tok::Ident(w) if ["and", "or", "unless"].iter().any(|k| is_keyword(w, k)) => {
                    return Err(err(
                        self.at(),
                        "set operators are not supported by this PromQL subset",
                    ));
                }
                Tok::Unsupported(_) => return Err(self.unexpected("operator")),
                _ => break,
            };
            let op_at = self.at();
            self.next();
            let matching = self.matching()?;
            // `^` is right-associative; the others left.
            let next_prec = if op == BinOp::Pow {
                op.precedence()
            } else {
                op.precedence() + 1
            };
            let rhs = self.expr(next_prec)?;
            lhs = binary(op, lhs, rhs, matching, op_at)?;
        }
        self.depth -= 1;
        Ok(lhs)
    }

    /// `bool`, `on (…)`, `ignoring (…)`, `group_left/right` after an operator.
    fn matching(&mut self) -> Result<Option<VectorMatching>, QueryError> {
        let Tok::Ident(w) = self.peek().clone() else {
            return Ok(None);
        };
        let on = is_keyword(&w, "on");
        if !on && !is_keyword(&w, "ignoring") {
            if is_keyword(&w, "bool") {
                return Err(err(self.at(), "bool modifier is not supported"));
            }
            return Ok(None);
        }
        // `on`/`ignoring` followed by `(` is a modifier; otherwise a metric name.
        if self.toks.get(self.pos + 1).map(|t| &t.1) != Some(&Tok::LParen) {
            return Ok(None);
        }
        self.next();
        let labels = self.label_list()?;
        if let Tok::Ident(w) = self.peek()
            && (is_keyword(w, "group_left") || is_keyword(w, "group_right"))
        {
            return Err(err(
                self.at(),
                "group_left/group_right are not supported by this PromQL subset",
            ));
        }
        Ok(Some(if on {
            VectorMatching::On(labels)
        } else {
            VectorMatching::Ignoring(labels)
        }))
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        match self.peek() {
            Tok::Op(BinOp::Sub) => {
                self.next();
                let e = self.expr(BinOp::Pow.precedence())?;
                if e.ty() == Type::Matrix {
                    return Err(err(
                        self.at(),
                        "unary expression only allowed on expressions of type scalar or instant vector",
                    ));
                }
                Ok(match e {
                    Expr::Number(v) => Expr::Number(-v),
                    e => Expr::Neg(Box::new(e)),
                })
            }
            Tok::Op(BinOp::Add) => {
                self.next();
                self.expr(BinOp::Pow.precedence())
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, QueryError> {
        let at = self.at();
        let e = self.primary()?;
        let e = if let Tok::Range(raw) = self.peek().clone() {
            self.next();
            let Expr::Vector(sel) = e else {
                return Err(err(at, "ranges only allowed for vector selectors"));
            };
            if raw.contains(':') {
                return Err(err(
                    at,
                    "subqueries are not supported by this PromQL subset",
                ));
            }
            let range = parse_duration_ms(&raw).map_err(|m| err(at, m))?;
            if range <= 0 {
                return Err(err(at, "range must be greater than 0"));
            }
            Expr::Matrix(sel, range)
        } else {
            e
        };
        if let Tok::Ident(w) = self.peek()
            && is_keyword(w, "offset")
        {
            return Err(err(
                self.at(),
                "offset modifier is not supported by this PromQL subset",
            ));
        }
        Ok(e)
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        let at = self.at();
        match self.next() {
            Tok::Number(v) => Ok(Expr::Number(v)),
            Tok::LParen => {
                let e = self.expr(0)?;
                self.expect(Tok::RParen, "\")\"")?;
                Ok(e)
            }
            Tok::LBrace => {
                self.pos -= 1;
                self.selector(String::new(), at)
            }
            Tok::Ident(word) => {
                if let Some(op) = agg_op(&word)
                    && matches!(self.peek(), Tok::LParen | Tok::Ident(_))
                {
                    let op = op.map_err(|m| err(at, m))?;
                    return self.aggregate(op, at);
                }
                if *self.peek() == Tok::LParen {
                    return self.call(&word, at);
                }
                self.selector(word, at)
            }
            Tok::Str(_) => Err(err(
                at,
                "string literals are not supported by this PromQL subset",
            )),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expression"))
            }
        }
    }

    fn call(&mut self, name: &str, at: usize) -> Result<Expr, QueryError> {
        let Some(f) = Func::by_name(name) else {
            return Err(err(at, format!("unknown function with name {name:?}")));
        };
        self.expect(Tok::LParen, "\"(\"")?;
        let arg = self.expr(0)?;
        if *self.peek() == Tok::Comma {
            return Err(err(
                self.at(),
                format!("expected 1 argument(s) in call to {name:?}, got more"),
            ));
        }
        self.expect(Tok::RParen, "\")\"")?;
        if arg.ty() != Type::Matrix {
            return Err(err(
                at,
                format!(
                    "expected type range vector in call to function {name:?}, got {}",
                    arg.ty().name()
                ),
            ));
        }
        Ok(Expr::Call(f, Box::new(arg)))
    }

    fn aggregate(&mut self, op: AggOp, at: usize) -> Result<Expr, QueryError> {
        let mut grouping = self.grouping(true)?;
        self.expect(Tok::LParen, "\"(\"")?;
        let arg = self.expr(0)?;
        if *self.peek() == Tok::Comma {
            return Err(err(self.at(), "aggregation parameters are not supported"));
        }
        self.expect(Tok::RParen, "\")\"")?;
        if grouping.is_none() {
            grouping = self.grouping(false)?;
        }
        if arg.ty() != Type::Vector {
            return Err(err(
                at,
                format!(
                    "expected type instant vector in aggregation expression, got {}",
                    arg.ty().name()
                ),
            ));
        }
        Ok(Expr::Aggregate(
            op,
            grouping.unwrap_or(Grouping::By(Vec::new())),
            Box::new(arg),
        ))
    }

    /// `by (…)` / `without (…)`; before the argument anything else is an
    /// error (`required`), after it it ends the aggregation.
    fn grouping(&mut self, required: bool) -> Result<Option<Grouping>, QueryError> {
        let Tok::Ident(w) = self.peek().clone() else {
            return Ok(None);
        };
        let by = is_keyword(&w, "by");
        if !by && !is_keyword(&w, "without") {
            if !required {
                return Ok(None);
            }
            return Err(self.unexpected("\"(\", \"by\" or \"without\""));
        }
        self.next();
        let labels = self.label_list()?;
        Ok(Some(if by {
            Grouping::By(labels)
        } else {
            Grouping::Without(labels)
        }))
    }

    fn label_list(&mut self) -> Result<Vec<String>, QueryError> {
        self.expect(Tok::LParen, "\"(\"")?;
        let mut out = Vec::new();
        loop {
            match self.next() {
                Tok::RParen => return Ok(out),
                Tok::Ident(l) => {
                    check_label_name(&l, self.at())?;
                    out.push(l);
                    match self.next() {
                        Tok::Comma => {}
                        Tok::RParen => return Ok(out),
                        _ => {
                            self.pos -= 1;
                            return Err(self.unexpected("\",\" or \")\""));
                        }
                    }
                }
                _ => {
                    self.pos -= 1;
                    return Err(self.unexpected("label name"));
                }
            }
        }
    }

    fn selector(&mut self, mut name: String, at: usize) -> Result<Expr, QueryError> {
        let mut matchers = Vec::new();
        if *self.peek() == Tok::LBrace {
            self.next();
            loop {
                let lat = self.at();
                let label = match self.next() {
                    Tok::RBrace => break,
                    Tok::Ident(l) => l,
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("label name"));
                    }
                };
                check_label_name(&label, lat)?;
                let Tok::Match(op) = self.next() else {
                    self.pos -= 1;
                    return Err(self.unexpected("label matching operator"));
                };
                let Tok::Str(value) = self.next() else {
                    self.pos -= 1;
                    return Err(self.unexpected("string"));
                };
                let re = match op {
                    MatchOp::Regex | MatchOp::NotRegex => Some(compile(&value, lat)?),
                    _ => None,
                };
                if label == "__name__" {
                    if op != MatchOp::Equal {
                        return Err(err(lat, "only __name__=\"…\" is supported"));
                    }
                    if !name.is_empty() {
                        return Err(err(lat, "metric name must not be set twice"));
                    }
                    name = value;
                } else {
                    matchers.push(Matcher {
                        name: label,
                        op,
                        value,
                        re,
                    });
                }
                match self.next() {
                    Tok::Comma => {}
                    Tok::RBrace => break,
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("\",\" or \"}\""));
                    }
                }
            }
        }
        if name.is_empty() && !matchers.iter().any(|m| !m.matches("")) {
            return Err(err(
                at,
                "vector selector must contain at least one non-empty matcher",
            ));
        }
        let id = self.selectors;
        self.selectors += 1;
        Ok(Expr::Vector(Selector { id, name, matchers }))
    }
}

fn check_label_name(l: &str, at: usize) -> Result<(), QueryError> {
    if l.contains(':') {
        return Err(err(at, format!("invalid label name {l:?}")));
    }
    Ok(())
}

fn compile(pattern: &str, at: usize) -> Result<Regex, QueryError> {
    if pattern.len() > MAX_REGEX_LEN {
        return Err(err(
            at,
            format!("regular expression longer than {MAX_REGEX_LEN} bytes"),
        ));
    }
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let e = e.to_string();
            let last = e.lines().last().unwrap_or("").trim().to_owned();
            err(
                at,
                format!("invalid regular expression {pattern:?}: {last}"),
            )
        })
}

fn binary(
    op: BinOp,
    lhs: Expr,
    rhs: Expr,
    matching: Option<VectorMatching>,
    at: usize,
) -> Result<Expr, QueryError> {
    let (lt, rt) = (lhs.ty(), rhs.ty());
    if lt == Type::Matrix || rt == Type::Matrix {
        return Err(err(
            at,
            "binary expression must contain only scalar and instant vector types",
        ));
    }
    if matching.is_some() && (lt != Type::Vector || rt != Type::Vector) {
        return Err(err(
            at,
            "vector matching only allowed between instant vectors",
        ));
    }
    if let (Expr::Number(l), Expr::Number(r)) = (&lhs, &rhs) {
        return Ok(Expr::Number(op.apply(*l, *r)));
    }
    Ok(Expr::Binary(
        op,
        Box::new(lhs),
        Box::new(rhs),
        matching.unwrap_or(VectorMatching::Ignoring(Vec::new())),
    ))
}
