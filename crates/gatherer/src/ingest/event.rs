//! One event object of a `/gather` body: its wire form, whose field errors name the field,
//! and its validation against the clock.

use std::borrow::Cow;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

use super::{Label, TimeRules, ValidEvent, MAX_FUTURE_MS};

/// The event object as it appears on the wire; unknown fields are ignored. Each field's
/// error names the field (`value must be an integer, got 1.5`), where serde's own would
/// only say what it expected.
#[derive(Deserialize)]
pub(super) struct WireEvent<'a> {
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
pub(super) fn parse_event<'a>(json: &'a [u8], rules: &TimeRules) -> Result<ValidEvent<'a>, String> {
    validate(
        serde_json::from_slice(json).map_err(|e| without_position(&e))?,
        rules,
    )
}

/// Validates a parsed event object: its label, and its `ts` against the clock.
pub(super) fn validate<'a>(
    wire: WireEvent<'a>,
    rules: &TimeRules,
) -> Result<ValidEvent<'a>, String> {
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
pub(super) fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}
