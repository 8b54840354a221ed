#![allow(clippy::unwrap_used)]

use super::*;

/// 2023-11-14T22:13:20.123456Z in ns.
const TS: i64 = 1_700_000_000_123_456_000;

fn ok(msg: &str) -> Envelope {
    parse(msg.as_bytes(), 42).unwrap_or_else(|e| panic!("{msg:?}: {e}"))
}

fn err(msg: &str) -> ParseError {
    match parse(msg.as_bytes(), 42) {
        Ok(env) => panic!("{msg:?} parsed: {env:?}"),
        Err(e) => e,
    }
}

fn log(env: &Envelope) -> (&[u8], Type) {
    match &env.message {
        Some(Message::Log(l)) => (&l.payload[..], Type::try_from(l.r#type).unwrap()),
        other => panic!("not a log: {other:?}"),
    }
}

#[test]
fn log_out_with_tags_as_the_agent_writes_it() {
    let env = ok(
        "<14>1 2023-11-14T22:13:20.123456+00:00 org1.dev.my-app f47ac10b [APP/PROC/WEB/0] - \
         [tags@47450 app_name=\"my app\" source_type=\"APP/PROC/WEB\"] hello \"world\"\n",
    );
    assert_eq!(env.timestamp, TS);
    assert_eq!(env.source_id, "f47ac10b");
    assert_eq!(env.instance_id, "0");
    assert_eq!(
        env.tags,
        BTreeMap::from([
            ("app_name".into(), "my app".into()),
            ("source_type".into(), "APP/PROC/WEB".into()),
        ])
    );
    assert!(env.deprecated_tags.is_empty());
    assert_eq!(log(&env), (&b"hello \"world\""[..], Type::Out));
}

#[test]
fn pri_11_is_err_and_every_other_pri_is_out() {
    let at = |pri: u32| ok(&format!("<{pri}>1 - - app [0] - - x"));
    assert_eq!(log(&at(11)).1, Type::Err);
    for pri in [0, 3, 10, 12, 14, 27, 191] {
        assert_eq!(log(&at(pri)).1, Type::Out, "pri {pri}");
    }
}

#[test]
fn instance_id_is_the_last_token_of_the_procid() {
    for (procid, want) in [
        ("[APP/PROC/WEB/0]", "0"),
        ("[STG/1]", "1"),
        ("[/0]", "0"),
        ("[RTR]", "RTR"),
        ("[]", ""),
        ("1234", "1234"),
        ("a/b/", ""),
        ("[[x/y]]", "y"),
        ("]x[", "x"),
    ] {
        let env = ok(&format!("<14>1 - - app {procid} - - m"));
        assert_eq!(env.instance_id, want, "{procid}");
    }
}

#[test]
fn nilvalues() {
    // HOSTNAME, MSGID and SD may be nil; a nil TIMESTAMP is the receive time.
    let env = ok("<14>1 - - app [0] - - m");
    assert_eq!((env.timestamp, log(&env).0), (42, &b"m"[..]));
    // APP-NAME and PROCID may not (upstream's "missing app name / proc ID").
    assert_eq!(err("<14>1 - - - [0] - - m"), ParseError::MissingAppName);
    assert_eq!(err("<14>1 - - app - - - m"), ParseError::MissingProcId);
    // A field that only starts with '-' is a value.
    assert_eq!(ok("<14>1 - - -app -1 - - m").source_id, "-app");
}

#[test]
fn message_is_trimmed_like_go_trim_space() {
    let env = ok("<14>1 - - a [0] - - \t \u{a0}\u{2003} two\nlines \r\n\u{3000}");
    assert_eq!(log(&env).0, "two\nlines".as_bytes());
    // Not UTF-8: kept as bytes; only the white space around is removed.
    let mut raw = b"<14>1 - - a [0] - -  \xff\xfe \n".to_vec();
    let env = parse(&raw, 0).unwrap();
    assert_eq!(log(&env).0, b"\xff\xfe");
    raw.truncate(raw.len() - 3);
    raw.extend("\u{85}".as_bytes());
    assert_eq!(log(&parse(&raw, 0).unwrap()).0, b"\xff");
    // Empty MSG after SP: an empty log; no MSG at all: nothing to store.
    assert_eq!(log(&ok("<14>1 - - a [0] - - ")).0, b"");
    assert_eq!(log(&ok("<14>1 - - a [0] - - \n")).0, b"");
    assert_eq!(err("<14>1 - - a [0] - -"), ParseError::MissingMessage);
    assert_eq!(
        err("<14>1 - - a [0] - [tags@1 a=\"b\"]"),
        ParseError::MissingMessage
    );
}

#[test]
fn counter() {
    let env = ok("<14>1 2023-11-14T22:13:20.123456+00:00 h src [1] - \
         [counter@47450 name=\"requests\" total=\"10\" delta=\"2\"][tags@47450 env=\"prod\"] \n");
    assert_eq!(
        env.message,
        Some(Message::Counter(Counter {
            name: "requests".into(),
            delta: 2,
            total: 10
        }))
    );
    assert_eq!(env.tags, BTreeMap::from([("env".into(), "prod".into())]));
    assert_eq!(env.instance_id, "1");
    for bad in [
        "delta=\"-1\" total=\"1\"",
        "delta=\"+1\" total=\"1\"",
        "delta=\"1\"",
        "delta=\"1\" total=\"18446744073709551616\"",
        "delta=\"x\" total=\"1\"",
        "delta=\"\" total=\"1\"",
    ] {
        let e = err(&format!("<14>1 - h s [1] - [counter@1 name=\"n\" {bad}] "));
        assert!(matches!(e, ParseError::InvalidParam { .. }), "{bad}: {e}");
    }
    // Name defaults to empty, as Go's map lookup does.
    let env = ok("<14>1 - h s [1] - [counter delta=\"0\" total=\"18446744073709551615\"]");
    assert_eq!(
        env.message,
        Some(Message::Counter(Counter {
            name: String::new(),
            delta: 0,
            total: u64::MAX
        }))
    );
}

#[test]
fn gauge_values_and_units() {
    let env =
        ok("<14>1 - h s [3] - [gauge@47450 name=\"cpu\" value=\"0.5\" unit=\"percentage\"] \n");
    let Some(Message::Gauge(g)) = &env.message else {
        panic!("{env:?}")
    };
    assert_eq!(
        g.metrics,
        BTreeMap::from([(
            "cpu".into(),
            GaugeValue {
                unit: "percentage".into(),
                value: 0.5
            }
        )])
    );
    let value = |v: &str| {
        let env = ok(&format!(
            "<14>1 - h s [3] - [gauge name=\"m\" value=\"{v}\" unit=\"\"]"
        ));
        match env.message {
            Some(Message::Gauge(g)) => g.metrics["m"].value,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(value("1.23456789e+08"), 123_456_789.0);
    assert_eq!(value("1e-05"), 1e-5);
    assert_eq!(value("+Inf"), f64::INFINITY);
    assert_eq!(value("-Inf"), f64::NEG_INFINITY);
    assert!(value("NaN").is_nan());
    assert!(value("-0").is_sign_negative());
    // A unit is required (it may be empty); the value must parse.
    for bad in [
        "name=\"m\" value=\"1\"",
        "name=\"m\" value=\"x\" unit=\"u\"",
        "name=\"m\" value=\"1e400\" unit=\"u\"",
        "name=\"m\" unit=\"u\"",
    ] {
        let e = err(&format!("<14>1 - h s [1] - [gauge@1 {bad}] "));
        assert!(matches!(e, ParseError::InvalidParam { .. }), "{bad}: {e}");
    }
}

#[test]
fn several_gauge_elements_make_one_gauge() {
    let env = ok(
        "<14>1 - h s [0] - [gauge@1 name=\"a\" value=\"1\" unit=\"u\"]\
         [gauge@2 name=\"b\" value=\"2\" unit=\"v\"] ",
    );
    let Some(Message::Gauge(g)) = &env.message else {
        panic!("{env:?}")
    };
    assert_eq!(g.metrics.len(), 2);
    assert_eq!(
        (g.metrics["a"].value, g.metrics["b"].unit.as_str()),
        (1.0, "v")
    );
}

#[test]
fn timer_and_event() {
    let env = ok(
        "<14>1 - h s [0] - [timer@47450 name=\"http\" start=\"1700000000123456789\" \
         stop=\"-5\"][tags@47450 peer_type=\"Server\"] \n",
    );
    assert_eq!(
        env.message,
        Some(Message::Timer(Timer {
            name: "http".into(),
            start: 1_700_000_000_123_456_789,
            stop: -5
        }))
    );
    assert!(matches!(
        err("<14>1 - h s [0] - [timer name=\"x\" start=\"1\" stop=\"1.5\"] "),
        ParseError::InvalidParam { param: "stop", .. }
    ));
    let env = ok(
        "<14>1 - h s [] - [event@47450 title=\"App \\\"crashed\\\"\" \
         body=\"exit [status 1\\]\nback\\\\slash \\n\"][tags@47450 origin=\"cc\"] \n",
    );
    assert_eq!(
        env.message,
        Some(Message::Event(Event {
            title: "App \"crashed\"".into(),
            body: "exit [status 1]\nback\\slash \\n".into()
        }))
    );
    assert_eq!(env.instance_id, "");
}

#[test]
fn tags_only_with_a_message_is_a_log_with_tags() {
    let env = ok("<11>1 - h s [0] - [tags@47450 a=\"1\" a=\"2\" b=\"\"] oops");
    assert_eq!(log(&env), (&b"oops"[..], Type::Err));
    assert_eq!(
        env.tags,
        BTreeMap::from([("a".into(), "2".into()), ("b".into(), String::new())])
    );
}

#[test]
fn a_body_element_wins_over_msg_and_later_bodies_replace_earlier() {
    let env = ok("<14>1 - h s [0] - [event title=\"t\" body=\"b\"]\
         [counter name=\"c\" delta=\"1\" total=\"2\"] ignored text");
    assert!(matches!(env.message, Some(Message::Counter(_))));
}

#[test]
fn unknown_and_duplicate_sd_ids_are_rejected() {
    assert_eq!(
        err("<14>1 - h s [0] - [origin ip=\"1.2.3.4\"] m"),
        ParseError::UnknownSdId("origin".into())
    );
    assert_eq!(
        err("<14>1 - h s [0] - [tags a=\"1\"][tags b=\"1\"] m"),
        ParseError::DuplicateSdId("tags".into())
    );
    // Many distinct ids (past the small list) are still checked.
    let mut msg = String::from("<14>1 - h s [0] - ");
    for i in 0..40 {
        msg.push_str(&format!("[tags{i} k{i}=\"v\"]"));
    }
    assert_eq!(ok(&format!("{msg} m")).tags.len(), 40);
    msg.push_str("[tags7 x=\"y\"] m");
    assert_eq!(err(&msg), ParseError::DuplicateSdId("tags7".into()));
}

#[test]
fn timestamps() {
    let ts = |t: &str| ok(&format!("<14>1 {t} - a [0] - - m")).timestamp;
    assert_eq!(ts("1970-01-01T00:00:00Z"), 0);
    assert_eq!(ts("2023-11-14T22:13:20+00:00"), 1_700_000_000_000_000_000);
    assert_eq!(
        ts("2023-11-14T22:13:20.12+00:00"),
        1_700_000_000_120_000_000
    );
    assert_eq!(ts("2023-11-14T22:13:20.123456Z"), TS);
    assert_eq!(ts("2023-11-15T00:13:20.123456+02:00"), TS);
    assert_eq!(ts("2023-11-14T20:43:20.123456-01:30"), TS);
    assert_eq!(ts("2024-02-29T00:00:00Z"), 1_709_164_800_000_000_000);
    assert_eq!(ts("1969-12-31T23:59:59.5Z"), -500_000_000);
    for bad in [
        "2023-02-29T00:00:00Z",
        "2023-13-01T00:00:00Z",
        "2023-11-31T00:00:00Z",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:60:00Z",
        "2023-11-14T22:13:60Z",
        "2023-11-14t22:13:20Z",
        "2023-11-14T22:13:20z",
        "2023-11-14T22:13:20",
        "2023-11-14T22:13:20.1234567Z",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20+0000",
        "2023-11-14T22:13:20+24:00",
        "23-11-14T22:13:20Z",
        "9999-12-31T23:59:59Z",
    ] {
        let e = err(&format!("<14>1 {bad} - a [0] - - m"));
        assert!(
            matches!(
                e,
                ParseError::Syntax {
                    field: "timestamp",
                    ..
                }
            ),
            "{bad}: {e}"
        );
    }
}

#[test]
fn header_grammar() {
    for bad in [
        "",
        "14>1 - - a [0] - - m",
        "<>1 - - a [0] - - m",
        "<192>1 - - a [0] - - m",
        "<014>1 - - a [0] - - m",
        "<1234>1 - - a [0] - - m",
        "<14>0 - - a [0] - - m",
        "<14>1000 - - a [0] - - m",
        "<14> - - a [0] - - m",
        "<-1>1 - - a [0] - - m",
        "<14>1  - a [0] - - m",
        "<14>1 - - a [0] -",
        "<14>1 - - a [0] - -m",
        "<14>1 - - a [0] - x m",
        "<14>1 - - a [0] - [] m",
        "<14>1 - - a [0] - [tags a=\"b\" ] m",
        "<14>1 - - a [0] - [tags a=b] m",
        "<14>1 - - a [0] - [tags a=\"b] m",
        "<14>1 - - a [0] - [tags a=\"b\"",
        "<14>1 - - a [0] - [tags a=\"b]\"] m",
        "<14>1 - - a [0] - [tags a=\"b\"]m",
        "<14>1 - - a [0] - [ta=gs a=\"b\"] m",
        "<14>1 - - a\u{e9} [0] - - m",
        "<14>1 - - a\tb [0] - - m",
    ] {
        assert!(
            matches!(parse(bad.as_bytes(), 0), Err(ParseError::Syntax { .. })),
            "{bad:?}: {:?}",
            parse(bad.as_bytes(), 0)
        );
    }
    // Field length limits: APP-NAME 48, PROCID 128, MSGID 32, HOSTNAME 255, SD names 32.
    let a48 = "a".repeat(48);
    assert_eq!(ok(&format!("<14>1 - - {a48} [0] - - m")).source_id, a48);
    assert!(parse(format!("<14>1 - - {a48}b [0] - - m").as_bytes(), 0).is_err());
    let p128 = "p".repeat(128);
    assert!(parse(format!("<14>1 - - a {p128} - - m").as_bytes(), 0).is_ok());
    assert!(parse(format!("<14>1 - - a {p128}p - - m").as_bytes(), 0).is_err());
    let h255 = "h".repeat(255);
    assert!(parse(format!("<14>1 - {h255} a 0 - - m").as_bytes(), 0).is_ok());
    assert!(parse(format!("<14>1 - {h255}h a 0 - - m").as_bytes(), 0).is_err());
    let m32 = "m".repeat(32);
    assert!(parse(format!("<14>1 - - a 0 {m32} - m").as_bytes(), 0).is_ok());
    assert!(parse(format!("<14>1 - - a 0 {m32}m - m").as_bytes(), 0).is_err());
    let n32 = "n".repeat(32);
    assert!(
        parse(
            format!("<14>1 - - a 0 - [tags {n32}=\"v\"] m").as_bytes(),
            0
        )
        .is_ok()
    );
    assert!(
        parse(
            format!("<14>1 - - a 0 - [tags {n32}n=\"v\"] m").as_bytes(),
            0
        )
        .is_err()
    );
    // Version up to 999.
    assert!(parse(b"<14>999 - - a 0 - - m", 0).is_ok());
}

#[test]
fn sd_values_must_be_utf8() {
    let e = parse(b"<14>1 - - a 0 - [tags k=\"\xff\"] m", 0).unwrap_err();
    assert!(matches!(e, ParseError::Syntax { .. }), "{e}");
    assert_eq!(
        ok("<14>1 - - a 0 - [tags u=\"w\u{f6}rld\"] m").tags["u"],
        "w\u{f6}rld"
    );
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(input in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = parse(&input, 0);
    }

    #[test]
    fn never_panics_on_mutated_messages(
        at in 0usize..200,
        byte in proptest::num::u8::ANY,
        cut in 0usize..200,
    ) {
        let base = b"<14>1 2023-11-14T22:13:20.123456+00:00 h src [APP/0] - \
            [counter@1 name=\"r\" total=\"10\" delta=\"2\"][tags@1 a=\"\\\"b\\]\"] msg".to_vec();
        let mut m = base.clone();
        let i = at % m.len();
        m[i] = byte;
        let _ = parse(&m, 0);
        let _ = parse(&base[..cut.min(base.len())], 0);
    }

    #[test]
    fn tag_values_round_trip_through_escaping(value in "\\PC{0,40}") {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"").replace(']', "\\]");
        let msg = format!("<14>1 - h s [0] - [tags@1 k=\"{escaped}\"] m");
        let env = parse(msg.as_bytes(), 0).unwrap();
        proptest::prop_assert_eq!(&env.tags["k"], &value);
    }
}
