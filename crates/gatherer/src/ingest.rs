//! Parsing and validation of `POST /gather` bodies. Pure: bytes and a clock reading in,
//! validated events and per-item errors out.
//!
//! Validation mirrors the `events_count` columns (label up to 50 characters, ids and
//! values that fit `BIGINT`), so an event that is accepted here can never fail its INSERT
//! later. Labels are borrowed from the body when they contain no escapes: the hot path
//! allocates nothing per event.

use std::borrow::Cow;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use crate::label::{validate_label, Label, MAX_LABEL_CHARS};

/// How far in the future an event's `ts` may lie (clock skew between clients).
pub const MAX_FUTURE_MS: i64 = 60_000;

/// How a body is framed, decided from the `Content-Type` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON object, a JSON array of objects, or (detected) NDJSON.
    Json,
    /// One JSON object per line, whatever the first line looks like.
    Ndjson,
}

impl Framing {
    /// Maps a `Content-Type` header (absent = `None`) to a framing; `Err` carries the
    /// media type that is not supported (415).
    pub fn from_content_type(header: Option<&str>) -> Result<Self, String> {
        let Some(header) = header else {
            return Ok(Framing::Json);
        };
        let media = header.split(';').next().unwrap_or("").trim();
        let is = |names: &[&str]| names.iter().any(|name| media.eq_ignore_ascii_case(name));
        if is(&["", "application/json", "application/x-www-form-urlencoded"]) {
            Ok(Framing::Json)
        } else if is(&[
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonlines",
        ]) {
            Ok(Framing::Ndjson)
        } else {
            Err(media.to_owned())
        }
    }
}

/// The time window an event's `ts` must fall in, relative to the arrival clock.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    /// Arrival time, unix milliseconds; also the time of events without `ts`.
    pub now_ms: i64,
    /// Oldest accepted `ts`, as an age in milliseconds.
    pub max_age_ms: i64,
}

/// An event that passed validation. Its label borrows from the request body when it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidEvent<'a> {
    pub label: Label<'a>,
    pub id: i64,
    pub value: i64,
    /// Event time, unix milliseconds (the `ts` field, or arrival time).
    pub at_ms: i64,
}

impl ValidEvent<'_> {
    /// (label, id, value, at_ms): what [`crate::bucket::Aggregator::record_all`] takes.
    pub fn fields(&self) -> (&str, i64, i64, i64) {
        (&self.label, self.id, self.value, self.at_ms)
    }

    /// The same event, owning its label: for work that outlives the request body.
    pub fn to_owned_event(&self) -> ValidEvent<'static> {
        ValidEvent {
            label: self.label.clone().into_owned(),
            id: self.id,
            value: self.value,
            at_ms: self.at_ms,
        }
    }
}

/// At most this many rejected items are kept with their reason (the first ones), so that
/// a hostile batch of millions of bad items costs neither memory nor a huge reply.
pub const MAX_KEPT_REJECTIONS: usize = 1_000;

/// A parsed body: what was accepted, and what was refused and why.
#[derive(Debug, Default)]
pub struct Parsed<'a> {
    pub events: Vec<ValidEvent<'a>>,
    /// (0-based array index or NDJSON line, reason), the first [`MAX_KEPT_REJECTIONS`].
    pub rejected: Vec<(usize, String)>,
    /// How many items were rejected in all.
    pub rejected_total: usize,
    /// True for arrays and NDJSON, whose reply lists `rejected` items.
    pub is_batch: bool,
}

impl Parsed<'_> {
    fn reject(&mut self, index: usize, reason: String) {
        self.rejected_total += 1;
        if self.rejected.len() < MAX_KEPT_REJECTIONS {
            self.rejected.push((index, reason));
        }
    }
}

/// Why a whole body was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("empty body: send one event object, an array of them, or NDJSON lines")]
    Empty,
}

/// Parses and validates a body. A single object that fails validation is a [`BodyError`];
/// in a batch, each bad item becomes an entry of [`Parsed::rejected`] and the rest stand.
pub fn parse_body<'a>(
    body: &'a [u8],
    framing: Framing,
    rules: &TimeRules,
) -> Result<Parsed<'a>, BodyError> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or(BodyError::Empty)?;
    if framing == Framing::Ndjson {
        return Ok(parse_ndjson(body, rules));
    }
    if body[start] == b'[' {
        // Items are judged as the array streams by: no vector of all the items first.
        let mut parsed = Parsed {
            is_batch: true,
            ..Parsed::default()
        };
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        deserializer
            .deserialize_seq(Items {
                rules,
                parsed: &mut parsed,
            })
            .and_then(|()| deserializer.end())
            .map_err(|e| BodyError::Malformed(e.to_string()))?;
        return Ok(parsed);
    }
    // One object, unless more values follow it: then the body is NDJSON sent as JSON.
    // The usual body, one well-formed event, is parsed once, straight into its fields;
    // a body that does not parse so takes the general path, which tells a malformed body
    // from an invalid event.
    let mut events = serde_json::Deserializer::from_slice(body).into_iter::<WireEvent<'a>>();
    if let Some(Ok(wire)) = events.next() {
        if events.next().is_some() {
            return Ok(parse_ndjson(body, rules));
        }
        return single(validate(wire, rules));
    }
    let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<&RawValue>();
    let first = match stream.next() {
        Some(Ok(first)) => first,
        Some(Err(e)) => return Err(BodyError::Malformed(e.to_string())),
        None => return Err(BodyError::Empty),
    };
    if stream.next().is_some() {
        return Ok(parse_ndjson(body, rules));
    }
    single(parse_event(first.get().as_bytes(), rules))
}

/// The body of a single event: the event, or why it was refused.
fn single(event: Result<ValidEvent<'_>, String>) -> Result<Parsed<'_>, BodyError> {
    Ok(Parsed {
        events: vec![event.map_err(BodyError::InvalidEvent)?],
        rejected: Vec::new(),
        rejected_total: 0,
        is_batch: false,
    })
}

/// One event per line. The body's UTF-8 is checked once, in one pass, and each line is
/// then parsed as a `str`, for which serde_json skips its per-string check. A body that is
/// not UTF-8 is parsed line by line from bytes, so that only its bad lines are refused.
fn parse_ndjson<'a>(body: &'a [u8], rules: &TimeRules) -> Parsed<'a> {
    let mut parsed = Parsed {
        is_batch: true,
        ..Parsed::default()
    };
    let mut judge = |line_no: usize, wire: serde_json::Result<WireEvent<'a>>| match wire
        .map_err(|e| without_position(&e))
        .and_then(|wire| validate(wire, rules))
    {
        Ok(event) => parsed.events.push(event),
        Err(reason) => parsed.reject(line_no, reason),
    };
    match std::str::from_utf8(body) {
        Ok(text) => {
            for (line_no, line) in text.split('\n').enumerate() {
                if !line.trim_ascii().is_empty() {
                    judge(line_no, serde_json::from_str(line));
                }
            }
        }
        Err(_) => {
            for (line_no, line) in body.split(|&b| b == b'\n').enumerate() {
                if !line.trim_ascii().is_empty() {
                    judge(line_no, serde_json::from_slice(line));
                }
            }
        }
    }
    parsed
}

/// Visits the items of a JSON array one by one, judging each as an event.
struct Items<'r, 'a> {
    rules: &'r TimeRules,
    parsed: &'r mut Parsed<'a>,
}

impl<'a> Visitor<'a> for Items<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of event objects")
    }

    fn visit_seq<A: SeqAccess<'a>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(item) = seq.next_element::<&'a RawValue>()? {
            match parse_event(item.get().as_bytes(), self.rules) {
                Ok(event) => self.parsed.events.push(event),
                Err(reason) => self.parsed.reject(index, reason),
            }
            index += 1;
        }
        Ok(())
    }
}

/// The event object as it appears on the wire; unknown fields are ignored. Each field's
/// error names the field (`value must be an integer, got 1.5`), where serde's own would
/// only say what it expected.
#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(borrow, deserialize_with = "label_field")]
    label: Cow<'a, str>,
    #[serde(deserialize_with = "id_field")]
    id: i64,
    #[serde(deserialize_with = "value_field")]
    value: i64,
    #[serde(default)]
    ts: Option<WireTs>,
}

fn label_field<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Cow<'de, str>, D::Error> {
    deserializer.deserialize_any(LabelVisitor)
}

fn id_field<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(IntegerVisitor("id"))
}

fn value_field<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    deserializer.deserialize_any(IntegerVisitor("value"))
}

/// A JSON value that is not what a field takes, described for the error message.
fn got(unexpected: de::Unexpected<'_>) -> String {
    match unexpected {
        de::Unexpected::Float(v) => format!("{v}"),
        de::Unexpected::Str(v) => format!("the string {v:?}"),
        de::Unexpected::Unit => "null".to_owned(),
        other => other.to_string(),
    }
}

/// `id` and `value`: integers that fit i64 (a BIGINT column). Fractions, strings and null
/// "must be an integer"; integers beyond i64 (also written as `1e20`) are "out of range".
struct IntegerVisitor(&'static str);

impl IntegerVisitor {
    fn not_integer<E: de::Error>(&self, unexpected: de::Unexpected<'_>) -> E {
        E::custom(format_args!(
            "{} must be an integer, got {}",
            self.0,
            got(unexpected)
        ))
    }
}

impl<'de> Visitor<'de> for IntegerVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} to be an integer", self.0)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| {
            E::custom(format_args!(
                "{} out of range: {v} is above {}",
                self.0,
                i64::MAX
            ))
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        // Beyond ±2^63 a float cannot be an i64 whatever its digits: out of range. Below,
        // a JSON number with a fraction or an exponent is not an integer, even 2.0.
        if v.is_finite() && v.abs() < 2f64.powi(63) {
            Err(self.not_integer(de::Unexpected::Float(v)))
        } else {
            Err(E::custom(format_args!(
                "{} out of range: {v:e} does not fit a 64-bit integer",
                self.0
            )))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        Err(self.not_integer(de::Unexpected::Str(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<i64, E> {
        Err(self.not_integer(de::Unexpected::Bool(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<i64, E> {
        Err(self.not_integer(de::Unexpected::Unit))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
        Err(self.not_integer(de::Unexpected::Seq))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<i64, A::Error> {
        Err(self.not_integer(de::Unexpected::Map))
    }
}

/// `label`: a string, borrowed from the body when it has no escapes.
struct LabelVisitor;

impl LabelVisitor {
    fn not_string<E: de::Error>(unexpected: de::Unexpected<'_>) -> E {
        E::custom(format_args!(
            "label must be a string, got {}",
            got(unexpected)
        ))
    }
}

impl<'de> Visitor<'de> for LabelVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("label to be a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(Self::not_string(de::Unexpected::Signed(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(Self::not_string(de::Unexpected::Unsigned(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(Self::not_string(de::Unexpected::Float(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(Self::not_string(de::Unexpected::Bool(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(Self::not_string(de::Unexpected::Unit))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(Self::not_string(de::Unexpected::Seq))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(Self::not_string(de::Unexpected::Map))
    }
}

/// `ts` as RFC 3339 text or unix seconds (integer or fractional), in milliseconds.
struct WireTs(i64);

impl<'de> Deserialize<'de> for WireTs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = WireTs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an RFC 3339 time or unix seconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WireTs, E> {
                v.checked_mul(1000)
                    .map(WireTs)
                    .ok_or_else(|| E::custom("ts out of range"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WireTs, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom("ts out of range"))
                    .and_then(|v| self.visit_i64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WireTs, E> {
                let ms = (v * 1000.0).floor();
                if ms.is_finite() && ms.abs() < 9.0e15 {
                    // In range: |ms| < 2^53, so the conversion is exact.
                    Ok(WireTs(ms as i64))
                } else {
                    Err(E::custom("ts out of range"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WireTs, E> {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| WireTs(t.timestamp_millis()))
                    .map_err(|e| E::custom(format!("ts {v:?} is not RFC 3339 ({e})")))
            }
        }
        deserializer.deserialize_any(TsVisitor)
    }
}

/// Parses and validates one event object.
fn parse_event<'a>(json: &'a [u8], rules: &TimeRules) -> Result<ValidEvent<'a>, String> {
    validate(
        serde_json::from_slice(json).map_err(|e| without_position(&e))?,
        rules,
    )
}

/// Validates a parsed event object: its label, and its `ts` against the clock.
fn validate<'a>(wire: WireEvent<'a>, rules: &TimeRules) -> Result<ValidEvent<'a>, String> {
    let label = Label::parse(wire.label)?;
    let at_ms = match wire.ts {
        None => rules.now_ms,
        Some(WireTs(ms)) => {
            if ms < rules.now_ms - rules.max_age_ms {
                return Err(format!(
                    "ts is older than max_event_age ({}s)",
                    rules.max_age_ms / 1000
                ));
            }
            if ms > rules.now_ms + MAX_FUTURE_MS {
                return Err("ts is more than 60s in the future".to_owned());
            }
            ms
        }
    };
    Ok(ValidEvent {
        label,
        id: wire.id,
        value: wire.value,
        at_ms,
    })
}

/// serde_json's message without its " at line L column C" suffix, which would point into
/// the item rather than the body.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
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
}
