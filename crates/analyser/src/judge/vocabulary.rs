//! The words of a finding: which metric, how severe, which check.

use serde::{Deserialize, Serialize};

use crate::configuration::Method;

/// What a signal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Count,
    Events,
    Avg,
    Min,
    Max,
    Population,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Count => "count",
            Metric::Events => "events",
            Metric::Avg => "avg",
            Metric::Min => "min",
            Metric::Max => "max",
            Metric::Population => "population",
        }
    }

    /// The metric of a stored signal (`as_str`'s spelling).
    pub fn parse(text: &str) -> Option<Metric> {
        [
            Metric::Count,
            Metric::Events,
            Metric::Avg,
            Metric::Min,
            Metric::Max,
            Metric::Population,
        ]
        .into_iter()
        .find(|m| m.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Alarm,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Alarm => "alarm",
        }
    }
}

/// The check that produced a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    ThreeSigma,
    LastPoint,
    Auto,
    /// The level checks: median and MAD of the window, with a material-change floor.
    MedianMad,
    Population,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::ThreeSigma => "three_sigma",
            Check::LastPoint => "last_point",
            Check::Auto => "auto",
            Check::MedianMad => "median_mad",
            Check::Population => "population",
        }
    }

    pub(super) fn of(method: Method) -> Self {
        match method {
            Method::ThreeSigma => Check::ThreeSigma,
            Method::LastPoint => Check::LastPoint,
            Method::Auto => Check::Auto,
        }
    }
}
