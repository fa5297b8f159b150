//! Parsing and validation of `POST /gather` bodies. Pure: bytes and a clock reading in,
//! validated events and per-item errors out.
//!
//! Validation mirrors the `events_count` columns (label up to 50 characters, ids and
//! values that fit `BIGINT`), so an event that is accepted here can never fail its INSERT
//! later. Labels are borrowed from the body when they contain no escapes: the hot path
//! allocates nothing per event.

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

pub use crate::label::{validate_label, Label, MAX_LABEL_CHARS};

mod event;
use event::{parse_event, validate, without_position, WireEvent};

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

#[cfg(test)]
mod tests;
