use super::*;

const NOW: i64 = 1_795_000_000_000;
const RULES: TimeRules = TimeRules {
    now_ms: NOW,
    max_age_ms: 600_000,
};

fn parse(body: &str) -> Result<Parsed<'_>, BodyError> {
    parse_body(body.as_bytes(), Framing::Json, &RULES)
}

#[test]
fn single_object_is_accepted_at_arrival_time() {
    let parsed = parse(r#"{"label":"checkout","id":42,"value":1}"#).unwrap();
    assert!(!parsed.is_batch);
    assert_eq!(
        parsed.events,
        vec![ValidEvent {
            label: Label::parse("checkout").unwrap(),
            id: 42,
            value: 1,
            at_ms: NOW
        }]
    );
}

#[test]
fn labels_without_escapes_borrow_from_the_body() {
    let parsed = parse(r#"{"label":"checkout","id":42,"value":1}"#).unwrap();
    assert!(parsed.events[0].label.is_borrowed());
    let parsed = parse(r#"{"label":"check\"out","id":42,"value":1}"#).unwrap();
    assert_eq!(parsed.events[0].label, "check\"out");
}

#[test]
fn pretty_printed_single_object_is_not_mistaken_for_ndjson() {
    let parsed = parse("{\n  \"label\": \"a\",\n  \"id\": 1,\n  \"value\": 2\n}\n").unwrap();
    assert!(!parsed.is_batch);
    assert_eq!(parsed.events.len(), 1);
}

#[test]
fn fractions_strings_nulls_and_overflow_are_rejected() {
    for body in [
        r#"{"label":"a","id":1,"value":1.5}"#,
        r#"{"label":"a","id":"1","value":1}"#,
        r#"{"label":"a","id":1,"value":null}"#,
        r#"{"label":"a","id":1,"value":9223372036854775808}"#,
        r#"{"label":"a","id":1,"value":1e400}"#,
        r#"{"label":"a","id":1}"#,
    ] {
        assert!(
            matches!(
                parse(body),
                Err(BodyError::InvalidEvent(_)) | Err(BodyError::Malformed(_))
            ),
            "{body} was accepted"
        );
    }
}

#[test]
fn a_bad_field_is_named_with_what_is_wrong() {
    let invalid = |body: &str| match parse(body) {
        Err(BodyError::InvalidEvent(reason)) => reason,
        other => panic!("{body}: {other:?}"),
    };
    let event = |id: &str, value: &str| format!(r#"{{"label":"a","id":{id},"value":{value}}}"#);
    for (body, reason) in [
        (event("1", "1.5"), "value must be an integer, got 1.5"),
        (event("1", "2.0"), "value must be an integer, got 2"),
        (event("1", "-3e2"), "value must be an integer, got -300"),
        (event("1", "null"), "value must be an integer, got null"),
        (
            event("1", "true"),
            "value must be an integer, got boolean `true`",
        ),
        (event("1", "[1]"), "value must be an integer, got sequence"),
        (event("0.5", "1"), "id must be an integer, got 0.5"),
        (
            event("1", "1e20"),
            "value out of range: 1e20 does not fit a 64-bit integer",
        ),
        (
            event("-1e19", "1"),
            "id out of range: -1e19 does not fit a 64-bit integer",
        ),
        (
            event("1", "9223372036854775808"),
            "value out of range: 9223372036854775808 is above 9223372036854775807",
        ),
        (
            r#"{"label":7,"id":1,"value":1}"#.to_owned(),
            "label must be a string, got integer `7`",
        ),
        (
            r#"{"label":null,"id":1,"value":1}"#.to_owned(),
            "label must be a string, got null",
        ),
    ] {
        assert_eq!(invalid(&body), reason, "{body}");
    }
    // The extremes of i64 are integers like any other.
    let extremes = event("-9223372036854775808", "9223372036854775807");
    let parsed = parse(&extremes).unwrap();
    assert_eq!(
        (parsed.events[0].id, parsed.events[0].value),
        (i64::MIN, i64::MAX)
    );
    // In a batch, each item says the same.
    let batch = format!("[{},{}]", event("1", "1"), event("1", "1.5"));
    let parsed = parse(&batch).unwrap();
    assert_eq!(
        parsed.rejected,
        [(1, "value must be an integer, got 1.5".to_owned())]
    );
}

#[test]
fn label_rules_follow_the_column() {
    assert!(validate_label(&"é".repeat(50)).is_ok());
    assert!(validate_label(&"é".repeat(51)).is_err());
    assert!(validate_label(&"🙂".repeat(50)).is_ok());
    assert!(validate_label("").is_err());
    assert!(validate_label(" a").is_err());
    assert!(validate_label("a\u{0}b").is_err());
    assert!(validate_label("a\nb").is_err());
    assert!(validate_label("a b").is_ok());
    // ASCII labels take a shorter path; the rules are the same.
    assert!(validate_label(&"a".repeat(50)).is_ok());
    assert!(validate_label(&"a".repeat(51)).is_err());
    assert!(validate_label(&format!("{}é", "a".repeat(49))).is_ok());
    assert!(validate_label(&format!("{}é", "a".repeat(50))).is_err());
    assert!(validate_label("a\u{7f}b").is_err());
    assert!(validate_label("a\u{85}b").is_err());
    assert!(validate_label("a\u{b}").is_err());
    assert!(validate_label("a\u{a0}").is_err());
}

#[test]
fn a_single_body_is_either_malformed_or_an_invalid_event() {
    let invalid = |body| match parse(body) {
        Err(BodyError::InvalidEvent(reason)) => reason,
        other => panic!("{body}: {other:?}"),
    };
    assert_eq!(invalid(r#"{"label":"a","id":1}"#), "missing field `value`");
    assert_eq!(
        invalid(r#"{"label":"","id":1,"value":1}"#),
        "label is empty"
    );
    assert_eq!(
        invalid(r#" {"label":"a","id":"1","value":1} "#),
        r#"id must be an integer, got the string "1""#
    );
    // Sent as application/json, an invalid first line does not hide the NDJSON after it.
    let parsed =
        parse("{\"label\":\"a\",\"id\":1}\n{\"label\":\"b\",\"id\":2,\"value\":2}").unwrap();
    assert!(parsed.is_batch);
    assert_eq!(parsed.events.len(), 1);
    assert_eq!(parsed.rejected, [(0, "missing field `value`".to_owned())]);
}

#[test]
fn malformed_json_reports_the_position() {
    let err = parse(r#"{"label":"a","id":1,"value":}"#).unwrap_err();
    assert!(
        matches!(&err, BodyError::Malformed(m) if m.contains("line 1 column 29")),
        "{err}"
    );
}

#[test]
fn array_items_are_judged_one_by_one() {
    let parsed = parse(
        r#"[{"label":"a","id":1,"value":1},{"label":"","id":1,"value":1},{"label":"b","id":2,"value":3}]"#,
    )
    .unwrap();
    assert!(parsed.is_batch);
    assert_eq!(parsed.events.len(), 2);
    assert_eq!(parsed.rejected.len(), 1);
    assert_eq!(parsed.rejected[0].0, 1);
    assert_eq!(parsed.rejected[0].1, "label is empty");
}

#[test]
fn ndjson_keeps_line_numbers_across_blank_lines() {
    let body = "{\"label\":\"a\",\"id\":1,\"value\":1}\r\n\n{bad\n{\"label\":\"b\",\"id\":2,\"value\":2}\n";
    let parsed = parse_body(body.as_bytes(), Framing::Ndjson, &RULES).unwrap();
    assert_eq!(parsed.events.len(), 2);
    assert_eq!(parsed.rejected.len(), 1);
    assert_eq!(parsed.rejected[0].0, 2);
    // Sent as application/json, the same body is recognised as NDJSON.
    let parsed = parse(body).unwrap();
    assert!(parsed.is_batch);
    assert_eq!(parsed.events.len(), 2);
}

#[test]
fn a_line_that_is_not_utf8_is_refused_alone() {
    let mut body = b"{\"label\":\"a\",\"id\":1,\"value\":1}\r\n".to_vec();
    body.extend_from_slice(b"{\"label\":\"\xff\",\"id\":2,\"value\":1}\n \t\n");
    body.extend_from_slice("{\"label\":\"caf\u{e9}\",\"id\":3,\"value\":4}".as_bytes());
    let parsed = parse_body(&body, Framing::Ndjson, &RULES).unwrap();
    let labels: Vec<&str> = parsed.events.iter().map(|e| &*e.label).collect();
    assert_eq!(labels, ["a", "caf\u{e9}"]);
    assert_eq!(parsed.rejected.len(), 1);
    assert_eq!(parsed.rejected[0].0, 1);
    assert_eq!(parsed.rejected[0].1, "invalid unicode code point");
}

#[test]
fn ts_accepts_rfc3339_and_unix_seconds_within_the_window() {
    let secs = NOW / 1000 - 5;
    let body = format!(r#"{{"label":"a","id":1,"value":1,"ts":{secs}}}"#);
    assert_eq!(parse(&body).unwrap().events[0].at_ms, secs * 1000);
    let body = format!(r#"{{"label":"a","id":1,"value":1,"ts":{secs}.5}}"#);
    assert_eq!(parse(&body).unwrap().events[0].at_ms, secs * 1000 + 500);
    let text = chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339();
    let body = format!(r#"{{"label":"a","id":1,"value":1,"ts":"{text}"}}"#);
    assert_eq!(parse(&body).unwrap().events[0].at_ms, secs * 1000);
    let old = NOW / 1000 - 601;
    let body = format!(r#"{{"label":"a","id":1,"value":1,"ts":{old}}}"#);
    assert!(parse(&body).is_err());
    let future = NOW / 1000 + 61;
    let body = format!(r#"{{"label":"a","id":1,"value":1,"ts":{future}}}"#);
    assert!(parse(&body).is_err());
    assert!(parse(r#"{"label":"a","id":1,"value":1,"ts":"yesterday"}"#).is_err());
}

#[test]
fn content_types_map_to_framings() {
    assert_eq!(Framing::from_content_type(None), Ok(Framing::Json));
    assert_eq!(
        Framing::from_content_type(Some("application/json; charset=utf-8")),
        Ok(Framing::Json)
    );
    assert_eq!(
        Framing::from_content_type(Some("application/x-www-form-urlencoded")),
        Ok(Framing::Json)
    );
    assert_eq!(
        Framing::from_content_type(Some("application/x-ndjson")),
        Ok(Framing::Ndjson)
    );
    assert_eq!(
        Framing::from_content_type(Some(" Application/NDJSON ; x=1")),
        Ok(Framing::Ndjson)
    );
    assert_eq!(Framing::from_content_type(Some("")), Ok(Framing::Json));
    assert_eq!(
        Framing::from_content_type(Some("application/xml")),
        Err("application/xml".to_owned())
    );
}

#[test]
fn only_the_first_rejections_are_kept_but_all_are_counted() {
    let body = format!("[{}1]", "1,".repeat(5_000));
    let parsed = parse(&body).unwrap();
    assert_eq!(parsed.rejected.len(), MAX_KEPT_REJECTIONS);
    assert_eq!(parsed.rejected_total, 5_001);
    assert_eq!(parsed.rejected[999].0, 999);
}

#[test]
fn trailing_garbage_after_an_array_is_malformed() {
    assert!(matches!(
        parse(r#"[{"label":"a","id":1,"value":1}] x"#),
        Err(BodyError::Malformed(_))
    ));
}

proptest::proptest! {
    /// Whatever the bytes and framing, parsing returns (it never panics), and what it
    /// accepts passes validation.
    #[test]
    fn arbitrary_bytes_never_panic_the_parser(
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
        ndjson in proptest::prelude::any::<bool>(),
    ) {
        let framing = if ndjson { Framing::Ndjson } else { Framing::Json };
        if let Ok(parsed) = parse_body(&body, framing, &RULES) {
            for event in &parsed.events {
                proptest::prop_assert!(validate_label(&event.label).is_ok());
            }
            proptest::prop_assert!(parsed.rejected.len() <= parsed.rejected_total);
        }
    }

    /// Bodies made of JSON-ish fragments reach deeper into the parser than random bytes.
    #[test]
    fn json_like_fragments_never_panic_the_parser(
        parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "\"label\"", "\"id\"", "\"value\"", "\"ts\"",
                "\"a\"", "1", "-1", "1e400", "9223372036854775808", "1.5", "null", "\n",
                "\"\\u0000\"", "\"2026-11-23T10:00:00Z\"", " ",
            ]),
            0..40,
        ),
        ndjson in proptest::prelude::any::<bool>(),
    ) {
        let body = parts.concat();
        let framing = if ndjson { Framing::Ndjson } else { Framing::Json };
        let _ = parse_body(body.as_bytes(), framing, &RULES);
    }
}

#[test]
fn empty_bodies_and_empty_arrays_are_not_events() {
    assert_eq!(parse("  \n").unwrap_err(), BodyError::Empty);
    let parsed = parse("[]").unwrap();
    assert!(parsed.events.is_empty() && parsed.rejected.is_empty());
}
