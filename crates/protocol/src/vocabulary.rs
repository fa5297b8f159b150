//! The closed vocabularies of the analyser's records: which metric, how severe, which
//! check, the incident's state and the analyst's verdict.
//!
//! Each is an enum whose serde spelling is the wire text (`"alarm"`, `"three_sigma"`), so a
//! value outside the vocabulary is refused where it enters (a request, a stored row) rather
//! than compared as a string further in. `as_str` / `Display` give the same spelling for
//! SQL parameters, metric labels and messages; `FromStr` parses it back and names the value
//! it refused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A text that is not one of a vocabulary's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What was expected: `severity`, `metric`...
    pub kind: &'static str,
    /// The text refused.
    pub value: String,
    /// The words accepted, in their wire spelling.
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?}: expected {}",
            self.kind,
            self.value,
            words(self.expected)
        )
    }
}

impl std::error::Error for UnknownValue {}

/// `a`, `a or b`, `a, b or c`.
pub fn words(list: &[&str]) -> String {
    match list {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Defines a wire enum: the variants with their spelling, `ALL`, `as_str`, `Display`,
/// `FromStr` and `TryFrom<String>` (for reading a stored column).
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        // Every wire word is its variant's name in snake case (the unit tests hold `as_str`
        // to it); a literal here, not the `$wire` fragment, so utoipa reads it too.
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Every wire spelling, in declaration order.
            pub const WORDS: &'static [&'static str] = &[$($wire),+];

            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(text: &str) -> Result<Self, UnknownValue> {
                match text {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        kind: $kind,
                        value: text.to_owned(),
                        expected: $name::WORDS,
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownValue;

            fn try_from(text: String) -> Result<Self, UnknownValue> {
                text.parse()
            }
        }
    };
}

vocabulary! {
    /// What a signal measures, per step of a series.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    Metric, "metric" {
        /// The sum of the events' values.
        Count = "count",
        /// The number of events.
        Events = "events",
        /// The average value (levels).
        Avg = "avg",
        /// The smallest value (levels).
        Min = "min",
        /// The largest value (levels).
        Max = "max",
        /// An entity's share of its label's events.
        Population = "population",
    }
}

vocabulary! {
    /// How severe a finding is; an alarm outranks a warning.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
    Severity, "severity" {
        Warning = "warning",
        Alarm = "alarm",
    }
}

vocabulary! {
    /// The detector a dataset's count series are judged by (`method` of a dataset and of
    /// a report).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    Method, "method" {
        /// The brief's rule: the window includes the newest step.
        ThreeSigma = "three_sigma",
        /// The window is the steps before the newest.
        LastPoint = "last_point",
        /// The streaming detector of `crates/detect`, calibrated to the configured rates.
        Auto = "auto",
    }
}

vocabulary! {
    /// The check that fired (`method` of a signal and of an anomaly): a dataset's
    /// [`Method`] on counts, or one of the checks every dataset runs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    Check, "method" {
        ThreeSigma = "three_sigma",
        LastPoint = "last_point",
        Auto = "auto",
        /// The level checks: median and MAD of the window, with a material-change floor.
        MedianMad = "median_mad",
        Population = "population",
    }
}

impl From<Method> for Check {
    fn from(method: Method) -> Self {
        match method {
            Method::ThreeSigma => Check::ThreeSigma,
            Method::LastPoint => Check::LastPoint,
            Method::Auto => Check::Auto,
        }
    }
}

vocabulary! {
    /// Whether an incident goes on: `firing` while its checks fire, `resolved` once its
    /// series is back within what was expected before it began.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    IncidentState, "state" {
        Firing = "firing",
        Resolved = "resolved",
    }
}

vocabulary! {
    /// The analyst's verdict on an anomaly, independent of its [`IncidentState`].
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    Status, "status" {
        Open = "open",
        Approved = "approved",
        Dismissed = "dismissed",
    }
}

vocabulary! {
    /// Why an analyst approves or dismisses an anomaly.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    VerdictReason, "reason" {
        /// Only with `dismiss`: the series does this (a nightly batch job, a sale). It
        /// teaches the series for `feedback_ttl`: a later anomaly of the same signal and
        /// direction, at most about 1.5 times the deviation dismissed, is a warning at most
        /// and not notified.
        Expected = "expected",
        /// Only with `approve`: a real anomaly, kept out of what the series learns as normal.
        Real = "real",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;

    /// Every value serialises to its `as_str` spelling, which is `expected`, parses back
    /// through serde and `FromStr`, and a word outside the vocabulary is refused by both.
    fn round_trips<T>(all: &[T], expected: &[&str])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + Serialize + DeserializeOwned,
        T: FromStr<Err = UnknownValue>,
    {
        let spelt: Vec<String> = all.iter().map(|v| v.to_string()).collect();
        assert_eq!(spelt, expected);
        for (&value, wire) in all.iter().zip(expected) {
            assert_eq!(serde_json::to_string(&value).unwrap(), format!("{wire:?}"));
            assert_eq!(
                serde_json::from_str::<T>(&format!("{wire:?}")).unwrap(),
                value
            );
            assert_eq!(wire.parse::<T>().unwrap(), value);
        }
        for bad in ["", "Alarm", "ALARM", "three-sigma", "bogus", " count"] {
            if expected.contains(&bad) {
                continue;
            }
            assert!(
                serde_json::from_str::<T>(&format!("{bad:?}")).is_err(),
                "{bad:?}"
            );
            let refused = bad.parse::<T>().unwrap_err();
            assert_eq!(refused.value, bad);
            assert!(
                refused.to_string().contains(&format!("{bad:?}")),
                "{refused}"
            );
        }
    }

    #[test]
    fn every_vocabulary_keeps_its_exact_wire_spelling_and_refuses_other_words() {
        round_trips(
            Metric::ALL,
            &["count", "events", "avg", "min", "max", "population"],
        );
        round_trips(Severity::ALL, &["warning", "alarm"]);
        round_trips(Method::ALL, &["three_sigma", "last_point", "auto"]);
        round_trips(
            Check::ALL,
            &[
                "three_sigma",
                "last_point",
                "auto",
                "median_mad",
                "population",
            ],
        );
        round_trips(IncidentState::ALL, &["firing", "resolved"]);
        round_trips(Status::ALL, &["open", "approved", "dismissed"]);
        round_trips(VerdictReason::ALL, &["expected", "real"]);
    }

    #[test]
    fn a_refused_word_is_named_with_the_words_accepted() {
        let refused = "loud".parse::<Severity>().unwrap_err();
        assert_eq!(
            refused.to_string(),
            r#"unknown severity "loud": expected warning or alarm"#
        );
        let refused = "closed".parse::<Status>().unwrap_err();
        assert_eq!(
            refused.to_string(),
            r#"unknown status "closed": expected open, approved or dismissed"#
        );
    }

    #[test]
    fn an_alarm_outranks_a_warning_and_a_method_names_its_check() {
        assert!(Severity::Alarm > Severity::Warning);
        for method in Method::ALL {
            assert_eq!(Check::from(*method).as_str(), method.as_str());
        }
    }
}
