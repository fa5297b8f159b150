//! Anomaly detection for Pulse: the pure core of the analyser.
//!
//! Values and timestamps go in, scores and verdicts come out. Nothing here reads a clock,
//! touches a file or a socket, or awaits: the analyser (and the `detect-csv` tool used to
//! measure quality on the Numenta Anomaly Benchmark) own all of that.
//!
//! What is in here, by the check it serves (see `docs/DETECT.md` for how they work):
//!
//! * [`sigma`]: the brief's windowed methods `three_sigma` and `last_point`, plus the
//!   sparsity gate for count series and a helper that turns missing steps into zeros.
//! * [`auto`]: [`AutoDetector`], the streaming detector behind `method = "auto"`, with
//!   verdicts calibrated to target false-alarm rates.
//! * [`level`]: the `avg` / `min` / `max` checks of one step's values.
//! * [`population`]: one step of one label, each entity against its peers.
//! * [`synth`]: seeded synthetic series (counts, prices, stress families) for tests.
//!
//! Per-series state is made of plain `Clone + Debug` structs; with the `serde` feature they
//! also derive `Serialize` and `Deserialize`, so the analyser can snapshot them.

pub mod auto;
mod context;
pub mod level;
mod likelihood;
pub mod nab;
pub mod population;
mod season;
pub mod sigma;
mod stats;
pub mod synth;

pub use auto::{AutoConfig, AutoDetector, Score, SharedConfig};
pub use sigma::{fill_gaps, Judgement, SigmaConfig, SigmaMethod};

/// How bad a judged value is. Ordered, so `max()` of several checks gives the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Verdict {
    /// Nothing to report.
    #[default]
    None,
    /// Unusual enough to show an analyst, not enough to wake anybody.
    Warning,
    /// Report and notify.
    Alarm,
}

impl Verdict {
    /// `true` for a warning or an alarm: the step should be recorded as an anomaly.
    pub fn is_anomaly(self) -> bool {
        self != Verdict::None
    }
}
