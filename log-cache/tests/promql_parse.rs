//! The PromQL subset's parser: what it accepts, what it refuses, and the
//! source ids it reports to the auth layer.
#![allow(clippy::unwrap_used)]

use log_cache::promql::parse::{
    AggOp, BinOp, Expr, Func, Grouping, MatchOp, Type, VectorMatching, parse,
};
use log_cache::promql::source_ids;

fn err(q: &str) -> String {
    parse(q).unwrap_err().message
}

#[test]
fn selectors_with_every_matcher() {
    let e = parse(r#"cpu{source_id="app", a!="x", b=~"y|z", c!~'w.*', }"#).unwrap();
    let Expr::Vector(sel) = e else {
        panic!("{e:?}")
    };
    assert_eq!(sel.name, "cpu");
    let ops: Vec<_> = sel
        .matchers
        .iter()
        .map(|m| (m.name.as_str(), m.op))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("source_id", MatchOp::Equal),
            ("a", MatchOp::NotEqual),
            ("b", MatchOp::Regex),
            ("c", MatchOp::NotRegex),
        ]
    );
    // Regexes are anchored.
    assert!(sel.matchers[2].matches("y"));
    assert!(!sel.matchers[2].matches("yy"));
    assert!(sel.matchers[3].matches("v"));
    assert!(!sel.matchers[3].matches("wat"));

    let e = parse(r#"{__name__="cpu", source_id="app"}[90s]"#).unwrap();
    let Expr::Matrix(sel, range) = e else {
        panic!("{e:?}")
    };
    assert_eq!((sel.name.as_str(), range), ("cpu", 90_000));
    assert_eq!(
        parse(r#"m{source_id="a"}[1h30m]"#).unwrap().ty(),
        Type::Matrix
    );
}

#[test]
fn functions_aggregations_and_arithmetic() {
    let e = parse(r#"sum by (instance_id) (rate(requests{source_id="app"}[5m])) * 60"#).unwrap();
    let Expr::Binary(BinOp::Mul, l, r, _) = e else {
        panic!("{e:?}")
    };
    assert!(matches!(*r, Expr::Number(v) if v == 60.0));
    let Expr::Aggregate(AggOp::Sum, Grouping::By(g), arg) = *l else {
        panic!()
    };
    assert_eq!(g, vec!["instance_id".to_owned()]);
    assert!(matches!(*arg, Expr::Call(Func::Rate, _)));

    // Grouping after the argument, `without`, upper-case keywords.
    let e = parse(r#"AVG(cpu{source_id="a"}) WITHOUT (instance_id)"#).unwrap();
    assert!(matches!(
        e,
        Expr::Aggregate(AggOp::Avg, Grouping::Without(_), _)
    ));
    for agg in ["max", "min", "count"] {
        assert_eq!(
            parse(&format!(r#"{agg}(m{{source_id="a"}})"#))
                .unwrap()
                .ty(),
            Type::Vector
        );
    }
    for f in [
        "irate",
        "increase",
        "delta",
        "avg_over_time",
        "max_over_time",
    ] {
        assert_eq!(
            parse(&format!(r#"{f}(m{{source_id="a"}}[1m])"#))
                .unwrap()
                .ty(),
            Type::Vector
        );
    }

    // Precedence: * before +, ^ right-associative, unary minus below ^.
    let Expr::Number(v) = parse("1 + 2 * 3").unwrap() else {
        panic!()
    };
    assert_eq!(v, 7.0);
    let Expr::Number(v) = parse("2 ^ 3 ^ 2").unwrap() else {
        panic!()
    };
    assert_eq!(v, 512.0);
    let Expr::Number(v) = parse("-2 ^ 2").unwrap() else {
        panic!()
    };
    assert_eq!(v, -4.0);
    let Expr::Number(v) = parse("(1 + 2) * 3 - 0x10 / 4 % 3").unwrap() else {
        panic!()
    };
    assert_eq!(v, 8.0);
    assert_eq!(parse("7*9").unwrap().ty(), Type::Scalar);

    let e = parse(r#"a{source_id="x"} / ignoring (source_id) b{source_id="y"}"#).unwrap();
    let Expr::Binary(BinOp::Div, _, _, m) = e else {
        panic!()
    };
    assert_eq!(m, VectorMatching::Ignoring(vec!["source_id".into()]));
    let e = parse(r#"a{source_id="x"} - on (app) b{source_id="y"}"#).unwrap();
    assert!(matches!(
        e,
        Expr::Binary(BinOp::Sub, _, _, VectorMatching::On(_))
    ));
}

#[test]
fn refusals_are_clear_errors() {
    assert!(err("").contains("no expression"));
    assert!(err("invalid.query").starts_with("parse error at char 8"));
    assert!(
        err(r#"rate(m{source_id="a"})"#).contains(
            "expected type range vector in call to function \"rate\", got instant vector"
        )
    );
    assert!(
        err(r#"sum(m{source_id="a"}[5m])"#)
            .contains("expected type instant vector in aggregation expression, got range vector")
    );
    assert!(err(r#"m{source_id="a"}[5m] * 2"#).contains("scalar and instant vector"));
    assert!(
        err(r#"sum(m{source_id="a"})[5m]"#).contains("ranges only allowed for vector selectors")
    );
    assert!(err(r#"foo(m{source_id="a"}[5m])"#).contains("unknown function with name \"foo\""));
    assert!(err(r#"m{source_id="a"} > 1"#).contains("not supported"));
    assert!(err(r#"m{source_id="a"} and n{source_id="a"}"#).contains("not supported"));
    assert!(err(r#"m{source_id="a"} offset 5m"#).contains("not supported"));
    assert!(err(r#"m{source_id="a"}[5m:1m]"#).contains("not supported"));
    assert!(err(r#"topk(3, m{source_id="a"})"#).contains("not supported"));
    assert!(err(r#"m{source_id=~"("}"#).contains("invalid regular expression"));
    assert!(err(r#"m{source_id="a}"#).contains("unterminated"));
    assert!(err(r#"m{source_id="a""#).contains("unexpected end of input"));
    assert!(err(r#"m{source_id="a"}[5x]"#).contains("valid duration"));
    assert!(err(r#"{a=""}"#).contains("at least one non-empty matcher"));
    assert!(err(&"(".repeat(10_000)).contains("nested too deeply"));
    assert!(err(&"1+".repeat(40_000)).contains("longer than"));
    // A regex bomb is refused at once.
    let started = std::time::Instant::now();
    assert!(err(r#"m{a=~"((a{100}){100}){100}"}"#).contains("invalid regular expression"));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn source_ids_for_the_auth_layer() {
    assert_eq!(
        source_ids(r#"metric{source_id="a"}+metric{source_id="b"}"#).unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(
        source_ids(r#"avg_over_time(gauge_example{source_id="a"}[10m])"#).unwrap(),
        vec!["a"]
    );
    // `=~` alternatives are the ids read, one by one (upstream ExtractSourceIds).
    assert_eq!(
        source_ids(r#"sum(metric{source_id=~"b|a"}) / metric{source_id="a"}"#).unwrap(),
        vec!["a", "b"]
    );
    // Negative matchers read nothing.
    assert_eq!(
        source_ids(r#"metric{source_id!="a"}"#).unwrap(),
        Vec::<String>::new()
    );
    assert!(source_ids("7*9").unwrap().is_empty());
    assert!(source_ids("invalid.query").is_err());
}
