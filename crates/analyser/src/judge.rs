//! Pure: a dataset's series, their step totals, and the judging of complete steps.
//!
//! Rows of the export arrive as deltas; [`DatasetModel::add_row`] sums them into the step
//! they fall in. When the dataset's clock completes a step, [`DatasetModel::judge_step`]
//! judges every known series at that step (a series without rows is a zero) with the
//! dataset's method, the level checks and the population check, and turns what it found
//! into [`Change`]s: a new anomaly, or the growth of one that continues from the step
//! before. No clock, no database: time comes in as arguments.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use detect::level::{judge_level, LevelMetric, StepTotals};
use detect::population::{population_outliers, PopulationConfig};
use detect::sigma::{count_gate_open, judge, SigmaConfig, SigmaMethod};
use detect::{AutoConfig, AutoDetector, Verdict};

use crate::clock::{ClockRules, DatasetClock};
use crate::configuration::{DatasetSettings, Method};

/// What an anomaly is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "warning" => Some(Severity::Warning),
            "alarm" => Some(Severity::Alarm),
            _ => None,
        }
    }

    fn of(verdict: Verdict) -> Option<Self> {
        match verdict {
            Verdict::None => None,
            Verdict::Warning => Some(Severity::Warning),
            Verdict::Alarm => Some(Severity::Alarm),
        }
    }
}

/// A series: one (label, entity) of a dataset.
pub type SeriesKey = (Arc<str>, i64);

/// A series' encoded detector state, as a snapshot stores it: (label, entity, state).
pub type SeriesState = (Arc<str>, i64, Vec<u8>);

/// One check that fired at one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub label: Arc<str>,
    pub entity_id: i64,
    pub metric: Metric,
    pub severity: Severity,
    pub method: &'static str,
    pub observed: f64,
    pub expected: f64,
    /// Clamped to ±1e6 so that a zero spread stays storable and JSON-encodable.
    pub deviation: f64,
}

/// What judging a step changes in the anomaly table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new anomaly over `[period_start, period_end)`; its id is assigned by the store
    /// and handed back with [`DatasetModel::assign_id`].
    New {
        finding: Finding,
        period_start: i64,
        period_end: i64,
    },
    /// An open anomaly continues: its period grows to `period_end`, its severity to the
    /// worst seen, and `observed` / `deviation` to the most extreme step (`expected`
    /// stays what was expected before it began).
    Grow {
        id: u64,
        period_end: i64,
        severity: Severity,
        observed: f64,
        deviation: f64,
    },
}

/// An anomaly that may still grow: it ended at the last judged step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenAnomaly {
    pub id: u64,
    pub period_end: i64,
    pub severity: Severity,
    /// The most extreme step so far.
    pub observed: f64,
    pub deviation: f64,
    /// What was expected before the anomaly began; it stays the reference while the
    /// anomaly lasts, even when the detector has adapted to the new level.
    pub expected: f64,
}

impl OpenAnomaly {
    /// The detector's scale at the most extreme step: |observed - expected| / |deviation|.
    fn scale(&self) -> Option<f64> {
        let scale = (self.observed - self.expected).abs() / self.deviation.abs();
        (scale.is_finite() && scale > 0.0).then_some(scale)
    }

    /// `x` in the anomaly's own units: how far from the pre-anomaly expectation.
    fn deviation_of(&self, x: f64) -> Option<f64> {
        self.scale().map(|scale| (x - self.expected) / scale)
    }
}

/// An anomaly continues while its value stays this many scales beyond what was expected
/// before it, on the same side (the warning level of the windowed methods).
const CONTINUE_AT: f64 = 2.0;
/// After an anomaly closes, a finding on the other side that lands back within this many
/// scales of the pre-anomaly expectation, within this many steps, is its recovery.
const RECOVERY_WITHIN: f64 = 2.0;
const RECOVERY_STEPS: i64 = 3;

/// A dataset's settings in the form the judging needs.
#[derive(Debug, Clone)]
pub struct Params {
    pub rules: ClockRules,
    pub n: usize,
    pub method: Method,
    pub sigma: SigmaConfig,
    pub auto: AutoConfig,
    pub population: PopulationConfig,
    pub min_count_per_step: f64,
    pub series_ttl: i64,
    pub labels: HashSet<String>,
    pub entities: HashSet<i64>,
}

impl Params {
    pub fn from_settings(d: &DatasetSettings) -> Self {
        Params {
            rules: ClockRules {
                step: d.step_seconds(),
                idle_after: d.idle_after.as_secs() as i64,
                allowed_lateness: d.allowed_lateness.as_secs() as i64,
            },
            n: d.window_steps(),
            method: d.method,
            sigma: SigmaConfig {
                warning_multiplier: d.warning_multiplier,
                alarm_multiplier: d.alarm_multiplier,
            },
            auto: AutoConfig::with_rates(d.auto_warning_rate, d.auto_alarm_rate),
            population: PopulationConfig {
                min_count_per_step: d.min_count_per_step,
                ..PopulationConfig::default()
            },
            min_count_per_step: d.min_count_per_step,
            series_ttl: d.series_ttl.as_secs() as i64,
            labels: d.labels.iter().cloned().collect(),
            entities: d.entities.iter().copied().collect(),
        }
    }

    /// Whether a row of this label and entity belongs to the dataset.
    pub fn selects(&self, label: &str, entity_id: i64) -> bool {
        (self.labels.is_empty() || self.labels.contains(label))
            && (self.entities.is_empty() || self.entities.contains(&entity_id))
    }

    /// The windowed method used for the level checks (and for counts unless `auto`):
    /// `auto` uses `last_point`, so an outlier cannot widen its own window.
    fn sigma_method(&self) -> SigmaMethod {
        match self.method {
            Method::ThreeSigma => SigmaMethod::ThreeSigma,
            Method::LastPoint | Method::Auto => SigmaMethod::LastPoint,
        }
    }
}

const ZERO: StepTotals = StepTotals {
    sum: 0.0,
    events: 0,
    min: 0.0,
    max: 0.0,
};

/// A finding on the other side of an anomaly that lands back near what was expected
/// before it: the series returning to normal, not news.
fn is_recovery(anomaly: &OpenAnomaly, finding: &Finding) -> bool {
    anomaly.deviation.signum() != finding.deviation.signum()
        && anomaly
            .deviation_of(finding.observed)
            .is_some_and(|d| d.abs() < RECOVERY_WITHIN)
}

/// Grows an open anomaly to `end`, keeping its most extreme step.
fn grow(
    open: &mut OpenAnomaly,
    end: i64,
    severity: Severity,
    observed: f64,
    deviation: f64,
) -> Change {
    open.period_end = end;
    open.severity = open.severity.max(severity);
    if deviation.abs() > open.deviation.abs() {
        open.observed = observed;
        open.deviation = deviation.clamp(-1e6, 1e6);
    }
    Change::Grow {
        id: open.id,
        period_end: end,
        severity: open.severity,
        observed: open.observed,
        deviation: open.deviation,
    }
}

/// Adds a delta to a step's totals.
pub fn merge(into: &mut StepTotals, delta: &StepTotals) {
    if delta.events == 0 {
        return;
    }
    if into.events == 0 {
        *into = *delta;
        return;
    }
    into.sum += delta.sum;
    into.events += delta.events;
    into.min = into.min.min(delta.min);
    into.max = into.max.max(delta.max);
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Series {
    /// The `n` steps before the next one to judge, oldest first.
    history: VecDeque<StepTotals>,
    /// `auto` detectors for `count` and `events`.
    auto: Option<Box<[AutoDetector; 2]>>,
    /// The last step with events, for `series_ttl`.
    last_active: i64,
}

impl Series {
    fn new(params: &Params, step: i64) -> Self {
        let auto = (params.method == Method::Auto).then(|| {
            Box::new([
                AutoDetector::new(params.auto.clone()),
                AutoDetector::new(params.auto.clone()),
            ])
        });
        Series {
            history: VecDeque::with_capacity(params.n + 1),
            auto,
            last_active: step,
        }
    }

    /// Judges `x` at `step` against the history, then adds it to the history.
    fn judge(
        &mut self,
        key: &SeriesKey,
        step: i64,
        x: StepTotals,
        params: &Params,
        out: &mut Vec<Finding>,
    ) {
        let baseline_events: Vec<f64> = self.history.iter().map(|h| h.events as f64).collect();
        let gate = count_gate_open(&baseline_events, params.min_count_per_step);
        let finding = |metric, severity, method, observed, expected, deviation: f64| Finding {
            label: key.0.clone(),
            entity_id: key.1,
            metric,
            severity,
            method,
            observed,
            expected,
            deviation: deviation.clamp(-1e6, 1e6),
        };
        for (slot, metric, x_value) in [
            (0, Metric::Count, x.sum),
            (1, Metric::Events, x.events as f64),
        ] {
            if let Some(auto) = self.auto.as_mut() {
                let score = auto[slot].update(step, x_value);
                if let (true, Some(severity)) = (gate, Severity::of(score.verdict)) {
                    out.push(finding(
                        metric,
                        severity,
                        "auto",
                        x_value,
                        score.expected,
                        score.deviation,
                    ));
                }
            } else if gate {
                let values: Vec<f64> = if metric == Metric::Count {
                    self.history.iter().map(|h| h.sum).collect()
                } else {
                    baseline_events.clone()
                };
                let method = params.sigma_method();
                if let Some(j) = judge(method, &values, x_value, params.n, &params.sigma) {
                    if let Some(severity) = Severity::of(j.verdict) {
                        out.push(finding(
                            metric,
                            severity,
                            params.method.as_str(),
                            x_value,
                            j.mean,
                            j.deviation,
                        ));
                    }
                }
            }
        }
        let history = self.history.make_contiguous();
        for (metric, level) in [
            (Metric::Avg, LevelMetric::Avg),
            (Metric::Min, LevelMetric::Min),
            (Metric::Max, LevelMetric::Max),
        ] {
            let method = params.sigma_method();
            let judged = judge_level(
                method,
                history,
                &x,
                level,
                params.n,
                params.min_count_per_step,
                &params.sigma,
            );
            if let Some(j) = judged {
                if let Some(severity) = Severity::of(j.verdict) {
                    let name = if method == SigmaMethod::ThreeSigma {
                        "three_sigma"
                    } else {
                        "last_point"
                    };
                    out.push(finding(
                        metric,
                        severity,
                        name,
                        j.observed,
                        j.mean,
                        j.deviation,
                    ));
                }
            }
        }
        if x.events > 0 {
            self.last_active = step;
        }
        self.history.push_back(x);
        while self.history.len() > params.n {
            self.history.pop_front();
        }
    }
}

/// Everything the analyser keeps in memory about one dataset.
#[derive(Debug, Clone)]
pub struct DatasetModel {
    pub name: String,
    pub params: Params,
    pub clock: DatasetClock,
    labels: HashSet<Arc<str>>,
    series: HashMap<SeriesKey, Series>,
    /// Totals of steps not judged yet, by step start.
    pending: BTreeMap<i64, HashMap<SeriesKey, StepTotals>>,
    open: HashMap<(SeriesKey, Metric), OpenAnomaly>,
    /// Anomalies closed in the last few steps, by the step they closed at.
    closed: HashMap<(SeriesKey, Metric), (i64, OpenAnomaly)>,
}

/// The value of one metric in a step's totals; `None` for a level without events.
fn metric_value(metric: Metric, x: &StepTotals) -> Option<f64> {
    match metric {
        Metric::Count => Some(x.sum),
        Metric::Events => Some(x.events as f64),
        Metric::Avg => (x.events > 0).then(|| x.sum / x.events as f64),
        Metric::Min => (x.events > 0).then_some(x.min),
        Metric::Max => (x.events > 0).then_some(x.max),
        Metric::Population => None,
    }
}

impl DatasetModel {
    pub fn new(settings: &DatasetSettings, clock: DatasetClock) -> Self {
        DatasetModel {
            name: settings.name.clone(),
            params: Params::from_settings(settings),
            clock,
            labels: HashSet::new(),
            series: HashMap::new(),
            pending: BTreeMap::new(),
            open: HashMap::new(),
            closed: HashMap::new(),
        }
    }

    fn key(&mut self, label: &str, entity_id: i64) -> SeriesKey {
        let label = match self.labels.get(label) {
            Some(label) => label.clone(),
            None => {
                let label: Arc<str> = Arc::from(label);
                self.labels.insert(label.clone());
                label
            }
        };
        (label, entity_id)
    }

    /// Adds an export row's totals to its step. Returns `true` for a late row: its step
    /// was judged already, so it is added to the history but not judged again.
    pub fn add_row(
        &mut self,
        label: &str,
        entity_id: i64,
        event_date: i64,
        delta: &StepTotals,
    ) -> bool {
        let step = self.params.rules.step_of(event_date);
        let key = self.key(label, entity_id);
        match self.clock.judged_until {
            Some(judged_until) if step < judged_until => {
                let back = ((judged_until - step) / self.params.rules.step) as usize;
                if let Some(series) = self.series.get_mut(&key) {
                    let len = series.history.len();
                    if back >= 1 && back <= len {
                        merge(&mut series.history[len - back], delta);
                    }
                }
                true
            }
            _ => {
                let totals = self
                    .pending
                    .entry(step)
                    .or_default()
                    .entry(key)
                    .or_insert(ZERO);
                merge(totals, delta);
                false
            }
        }
    }

    /// Judges the step starting at `step` (the clock said it is complete) and marks it
    /// judged. Returns the anomaly changes, in a stable order.
    pub fn judge_step(&mut self, step: i64) -> Vec<Change> {
        let values = self.pending.remove(&step).unwrap_or_default();
        for key in values.keys() {
            if !self.series.contains_key(key) {
                self.series
                    .insert(key.clone(), Series::new(&self.params, step));
            }
        }
        let mut findings = Vec::new();
        // Population: each label's entities against their peers at this step.
        // Per label: (entity, count) of each entity, and the label's events.
        type Peers = (Vec<(i64, f64)>, u64);
        let mut by_label: HashMap<&Arc<str>, Peers> = HashMap::new();
        for ((label, entity_id), totals) in &values {
            let entry = by_label.entry(label).or_default();
            entry.0.push((*entity_id, totals.sum));
            entry.1 += totals.events;
        }
        for (label, (mut counts, events)) in by_label {
            counts.sort_by_key(|c| c.0);
            for outlier in population_outliers(&counts, events, &self.params.population) {
                if let Some(severity) = Severity::of(outlier.verdict) {
                    findings.push(Finding {
                        label: label.clone(),
                        entity_id: outlier.entity_id,
                        metric: Metric::Population,
                        severity,
                        method: "population",
                        observed: outlier.observed,
                        expected: outlier.expected,
                        deviation: outlier.deviation.clamp(-1e6, 1e6),
                    });
                }
            }
        }
        for (key, series) in self.series.iter_mut() {
            let x = values.get(key).copied().unwrap_or(ZERO);
            series.judge(key, step, x, &self.params, &mut findings);
        }
        let ttl = self.params.series_ttl;
        self.series.retain(|_, s| step - s.last_active < ttl);
        self.clock.judged(step, &self.params.rules);
        findings.sort_by(|a, b| {
            (&a.label, a.entity_id, a.metric).cmp(&(&b.label, b.entity_id, b.metric))
        });
        self.changes(step, findings, &values)
    }

    fn changes(
        &mut self,
        step: i64,
        findings: Vec<Finding>,
        values: &HashMap<SeriesKey, StepTotals>,
    ) -> Vec<Change> {
        let end = step + self.params.rules.step;
        let mut changes = Vec::with_capacity(findings.len());
        for finding in findings {
            let key = ((finding.label.clone(), finding.entity_id), finding.metric);
            if let Some(open) = self
                .open
                .get_mut(&key)
                .filter(|open| open.period_end == step)
            {
                if open.deviation.signum() == finding.deviation.signum() {
                    changes.push(grow(
                        open,
                        end,
                        finding.severity,
                        finding.observed,
                        finding.deviation,
                    ));
                    continue;
                }
                // The other side: the anomaly ends here, and this may be its recovery.
                if is_recovery(open, &finding) {
                    continue;
                }
            }
            if let Some((closed_at, closed)) = self.closed.get(&key) {
                if step - closed_at <= RECOVERY_STEPS * self.params.rules.step
                    && is_recovery(closed, &finding)
                {
                    continue;
                }
            }
            self.open.insert(
                key,
                OpenAnomaly {
                    id: 0,
                    period_end: end,
                    severity: finding.severity,
                    observed: finding.observed,
                    deviation: finding.deviation,
                    expected: finding.expected,
                },
            );
            changes.push(Change::New {
                finding,
                period_start: step,
                period_end: end,
            });
        }
        // An anomaly the checks did not flag again continues while its value stays beyond
        // what was expected before it: a stop stays one anomaly while the detector adapts.
        for ((series, metric), open) in self.open.iter_mut() {
            if open.period_end != step || *metric == Metric::Population {
                continue;
            }
            let x = values.get(series).copied().unwrap_or(ZERO);
            let Some(value) = metric_value(*metric, &x) else {
                continue;
            };
            let Some(deviation) = open.deviation_of(value) else {
                continue;
            };
            if deviation.signum() == open.deviation.signum() && deviation.abs() >= CONTINUE_AT {
                changes.push(grow(open, end, open.severity, value, deviation));
            }
        }
        // Anomalies that did not continue into this step are closed for good.
        let (still_open, closed): (HashMap<_, _>, HashMap<_, _>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|(_, open)| open.period_end >= end);
        self.open = still_open;
        self.closed
            .extend(closed.into_iter().map(|(key, open)| (key, (step, open))));
        let horizon = RECOVERY_STEPS * self.params.rules.step;
        self.closed
            .retain(|_, (closed_at, _)| step - *closed_at <= horizon);
        changes
    }

    /// Records the id the store gave a new anomaly, so that it can grow.
    pub fn assign_id(&mut self, finding: &Finding, id: u64) {
        let key = ((finding.label.clone(), finding.entity_id), finding.metric);
        if let Some(open) = self.open.get_mut(&key) {
            open.id = id;
        }
    }

    /// Restores an anomaly that may still grow (on start).
    pub fn restore_open(&mut self, label: &str, entity_id: i64, metric: Metric, open: OpenAnomaly) {
        let key = self.key(label, entity_id);
        self.open.insert((key, metric), open);
    }

    /// Replays a judged step from stored totals (on start): the series learn it again,
    /// but nothing is reported.
    pub fn replay_step(&mut self, step: i64, values: &[(String, i64, StepTotals)]) {
        for (label, entity_id, totals) in values {
            let key = self.key(label, *entity_id);
            self.pending.entry(step).or_default().insert(key, *totals);
        }
        let open = std::mem::take(&mut self.open);
        let closed = std::mem::take(&mut self.closed);
        let judged_until = self.clock.judged_until;
        self.judge_step(step);
        self.open = open;
        self.closed = closed;
        self.clock.judged_until = judged_until;
    }

    /// Every series' detector state (history window and `auto` detectors), encoded, for a
    /// snapshot taken at the current `judged_until`.
    pub fn snapshot(&self) -> Result<Vec<SeriesState>, postcard::Error> {
        self.series
            .iter()
            .map(|((label, entity_id), series)| {
                Ok((label.clone(), *entity_id, postcard::to_allocvec(series)?))
            })
            .collect()
    }

    /// Restores one series from a snapshot (on start, before replaying the steps since).
    pub fn restore_series(
        &mut self,
        label: &str,
        entity_id: i64,
        state: &[u8],
    ) -> Result<(), postcard::Error> {
        let series: Series = postcard::from_bytes(state)?;
        let key = self.key(label, entity_id);
        self.series.insert(key, series);
        Ok(())
    }

    /// Number of series the dataset knows.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(method: Method) -> DatasetSettings {
        DatasetSettings {
            time_step: Duration::from_secs(60),
            time_ago: Some(Duration::from_secs(600)),
            method,
            min_count_per_step: 10.0,
            ..DatasetSettings::all("test")
        }
    }

    fn totals(events: u64, value: f64) -> StepTotals {
        StepTotals {
            sum: events as f64 * value,
            events,
            min: value,
            max: value,
        }
    }

    /// Feeds `steps` steps of `per_step(step_index, entity)` for entities 0..entities and
    /// judges each; returns every change.
    fn run(
        model: &mut DatasetModel,
        steps: i64,
        entities: i64,
        per_step: impl Fn(i64, i64) -> StepTotals,
    ) -> Vec<(i64, Change)> {
        let mut all = Vec::new();
        for s in 0..steps {
            let step = s * 60;
            for e in 0..entities {
                let t = per_step(s, e);
                if t.events > 0 {
                    model.add_row("checkout", e, step + 2, &t);
                }
            }
            if model.clock.judged_until.is_none() {
                model.clock.judged_until = Some(0);
            }
            for change in model.judge_step(step) {
                all.push((step, change));
            }
        }
        all
    }

    fn steady(s: i64, e: i64) -> StepTotals {
        // 20 ± 2 events of value 10, deterministic wobble.
        totals(20 + ((s * 7 + e * 3) % 5) as u64 - 2, 10.0)
    }

    #[test]
    fn steady_traffic_raises_nothing_with_the_windowed_methods() {
        for method in [Method::ThreeSigma, Method::LastPoint] {
            let mut model = DatasetModel::new(&settings(method), DatasetClock::default());
            let changes = run(&mut model, 40, 6, steady);
            let counts: Vec<_> = changes.iter().filter(|(_, c)| matches!(c, Change::New { finding, .. } if finding.metric == Metric::Count && finding.severity == Severity::Alarm)).collect();
            assert!(counts.is_empty(), "{method:?}: {counts:?}");
        }
    }

    /// The changes of one (entity, metric): (step, kind, period_end).
    fn history_of(
        changes: &[(i64, Change)],
        entity: i64,
        metric: Metric,
    ) -> Vec<(i64, &'static str, i64)> {
        let mut ids = HashSet::new();
        changes
            .iter()
            .filter_map(|(step, change)| match change {
                Change::New {
                    finding,
                    period_end,
                    ..
                } if finding.entity_id == entity && finding.metric == metric => {
                    ids.insert(*step);
                    Some((*step, "new", *period_end))
                }
                Change::Grow { period_end, .. } if !ids.is_empty() => {
                    Some((*step, "grow", *period_end))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_flood_is_one_anomaly_whose_period_grows() {
        let mut model = DatasetModel::new(&settings(Method::LastPoint), DatasetClock::default());
        let changes = run(&mut model, 30, 6, |s, e| {
            if e == 3 && (20..23).contains(&s) {
                totals(400, 10.0)
            } else {
                steady(s, e)
            }
        });
        let news: Vec<_> = changes
            .iter()
            .filter(|(_, c)| matches!(c, Change::New { finding, .. } if finding.metric == Metric::Count && finding.entity_id == 3))
            .collect();
        assert_eq!(news.len(), 1, "{news:?}");
        assert!(
            matches!(news[0], (1200, Change::New { period_start: 1200, period_end: 1260, finding }) if finding.severity == Severity::Alarm)
        );
        let last_end = changes
            .iter()
            .filter_map(|(_, c)| match c {
                Change::Grow { period_end, .. } => Some(*period_end),
                _ => None,
            })
            .max();
        assert_eq!(
            last_end,
            Some(1380),
            "the anomaly grows over the three flooded steps"
        );
    }

    #[test]
    fn a_stop_stays_one_anomaly_while_the_detector_adapts_and_its_recovery_is_not_news() {
        let mut model = DatasetModel::new(&settings(Method::Auto), DatasetClock::default());
        let steps = 160;
        let stopped = 130..140;
        let changes = run(&mut model, steps, 6, |s, e| {
            if e == 2 && stopped.contains(&s) {
                ZERO
            } else {
                steady(s, e)
            }
        });
        let count = history_of(&changes, 2, Metric::Count);
        assert_eq!(
            count.first(),
            Some(&(130 * 60, "new", 131 * 60)),
            "{count:?}"
        );
        assert_eq!(
            count.iter().filter(|c| c.1 == "new").count(),
            1,
            "one anomaly, no recovery alarm: {count:?}"
        );
        assert_eq!(
            count.last().map(|c| c.2),
            Some(140 * 60),
            "it spans the ten stopped steps: {count:?}"
        );
    }

    #[test]
    fn a_series_that_stops_is_judged_on_its_zeros() {
        let mut model = DatasetModel::new(&settings(Method::LastPoint), DatasetClock::default());
        let changes = run(&mut model, 30, 6, |s, e| {
            if e == 2 && s >= 25 {
                ZERO
            } else {
                steady(s, e)
            }
        });
        assert!(changes.iter().any(|(step, c)| *step == 1500
            && matches!(c, Change::New { finding, .. } if finding.entity_id == 2 && finding.metric == Metric::Count && finding.observed == 0.0)), "{changes:?}");
    }

    #[test]
    fn a_price_a_hundred_times_too_low_is_a_level_anomaly() {
        let mut model = DatasetModel::new(&settings(Method::Auto), DatasetClock::default());
        let changes = run(&mut model, 30, 6, |s, e| {
            if e == 1 && s == 25 {
                totals(20, 0.1)
            } else {
                steady(s, e)
            }
        });
        assert!(changes.iter().any(|(step, c)| *step == 1500
            && matches!(c, Change::New { finding, .. } if finding.entity_id == 1 && finding.metric == Metric::Avg && finding.severity == Severity::Alarm)), "{changes:?}");
    }

    #[test]
    fn late_rows_join_the_history_without_being_judged_again() {
        let mut model = DatasetModel::new(&settings(Method::LastPoint), DatasetClock::default());
        run(&mut model, 3, 1, steady);
        assert!(model.add_row("checkout", 0, 65, &totals(5, 1.0)));
        assert!(!model.add_row("checkout", 0, 185, &totals(5, 1.0)));
    }
}
