//! Pure: a dataset's series, their step totals, and the judging of complete steps.
//!
//! Rows of the export arrive as deltas; [`DatasetModel::add_row`] sums them, exactly, into
//! the step they fall in: this is the one place rows are summed. What was summed since the
//! last commit is what the store appends ([`DatasetModel::take_unflushed`]); the steps not
//! judged yet keep their totals until then. When the dataset's clock completes a step,
//! [`DatasetModel::judge_step`] judges every known series at that step on the float view
//! of its totals (a series without rows is a zero): the
//! population check per counter label (each entity against its own usual share), then each
//! series' own checks (`series.rs`), whose findings grow, open or resolve the series'
//! incident (`incident.rs`). What changed comes back as [`Change`]s for the store. No
//! clock, no database: time comes in as arguments.

mod history;
mod incident;
mod params;
mod series;
pub mod teaching;
mod totals;
mod vocabulary;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use detect::level::StepTotals;
use detect::population::{excess, population_judged, population_outliers, Member};
use detect::Verdict;

pub use incident::{Incident, Signal, Transition};
pub use params::Params;
use series::{Kind, Series};
pub use vocabulary::{Check, Metric, Severity};

use crate::clock::DatasetClock;
use crate::configuration::DatasetSettings;
use crate::store::ExactTotals;

/// A series: one (label, entity) of a dataset; ordered by label, then entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub label: Arc<str>,
    pub entity_id: i64,
}

/// A series' encoded detector state, as a snapshot stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesState {
    pub series: SeriesKey,
    pub state: Vec<u8>,
}

/// One series' totals of a step already judged, replayed on start.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayTotals {
    pub label: String,
    pub entity_id: i64,
    pub totals: ExactTotals,
}

/// A firing incident opened again by a replay, whose id the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unnumbered {
    pub series: SeriesKey,
    pub period_start: i64,
}

/// Exact totals by step start, then series.
type StepSums = BTreeMap<i64, HashMap<SeriesKey, ExactTotals>>;

/// What judging a step changes in the anomaly table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new incident; the store gives it an id, handed back with
    /// [`DatasetModel::assign_id`].
    Open {
        label: Arc<str>,
        entity_id: i64,
        incident: Incident,
    },
    /// A firing incident of a series covers one more step; its signals may have changed.
    Update {
        label: Arc<str>,
        entity_id: i64,
        incident: Incident,
    },
    /// A firing incident ended at `resolved_at` (the start of the step that was normal).
    Resolve { id: u64, resolved_at: i64 },
}

const ZERO: StepTotals = StepTotals {
    sum: 0.0,
    events: 0,
    min: 0.0,
    max: 0.0,
};

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

/// Everything the analyser keeps in memory about one dataset.
#[derive(Debug, Clone)]
pub struct DatasetModel {
    pub name: String,
    pub params: Params,
    pub clock: DatasetClock,
    labels: HashSet<Arc<str>>,
    series: HashMap<SeriesKey, Series>,
    /// Totals of steps not judged yet that the store holds too.
    pending: StepSums,
    /// Totals summed since the last commit, of any step (late rows for judged steps too):
    /// what the store has not got yet. Flushed into `pending` (or, late, into the history).
    unflushed: StepSums,
    /// Series-steps judged since this model was built.
    pub judged_series_steps: u64,
    /// Series forgotten (`series_ttl`) since the last snapshot: their stored state goes.
    forgotten: Vec<SeriesKey>,
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
            unflushed: BTreeMap::new(),
            judged_series_steps: 0,
            forgotten: Vec::new(),
        }
    }

    /// The dataset's one copy of a label.
    pub fn label(&mut self, label: &str) -> Arc<str> {
        match self.labels.get(label) {
            Some(label) => label.clone(),
            None => {
                let label: Arc<str> = Arc::from(label);
                self.labels.insert(label.clone());
                label
            }
        }
    }

    fn key(&mut self, label: &str, entity_id: i64) -> SeriesKey {
        SeriesKey {
            label: self.label(label),
            entity_id,
        }
    }

    /// The population check of every counter label at this step: each entity's events
    /// against its own usual share. Returns what it judged, and notes each entity's excess
    /// for the next step.
    fn population(
        &mut self,
        values: &HashMap<SeriesKey, ExactTotals>,
        label_events: &HashMap<Arc<str>, u64>,
    ) -> HashMap<SeriesKey, Option<Signal>> {
        let mut members: HashMap<Arc<str>, Vec<Member>> = HashMap::new();
        let spread = self.params.population.spread;
        for (key, series) in self.series.iter_mut() {
            if self.params.kind(&key.label) != Kind::Counter {
                continue;
            }
            let events = values.get(key).map_or(0, |t| t.events);
            let total = label_events.get(&key.label).copied().unwrap_or(0);
            let expected = series.expected_share(total - events, &self.params);
            let member = Member {
                entity_id: key.entity_id,
                events,
                expected,
                excess_before: f64::from(series.excess),
            };
            series.excess = expected.map_or(0.0, |e| excess(events as f64, e, spread) as f32);
            members.entry(key.label.clone()).or_default().push(member);
        }
        let mut found = HashMap::new();
        for (label, members) in members {
            let total = label_events.get(&label).copied().unwrap_or(0);
            let outliers = population_outliers(&members, total, &self.params.population);
            if population_judged(&members, total, &self.params.population) {
                for m in members.iter().filter(|m| m.expected.is_some()) {
                    let key = SeriesKey {
                        label: label.clone(),
                        entity_id: m.entity_id,
                    };
                    found.insert(key, None);
                }
            }
            for outlier in outliers {
                let severity = match outlier.verdict {
                    Verdict::Alarm => Severity::Alarm,
                    Verdict::Warning => Severity::Warning,
                    Verdict::None => continue,
                };
                found.insert(
                    SeriesKey {
                        label: label.clone(),
                        entity_id: outlier.entity_id,
                    },
                    Some(Signal {
                        metric: Metric::Population,
                        method: Check::Population,
                        severity,
                        observed: outlier.observed,
                        expected: outlier.expected,
                        deviation: outlier.deviation.clamp(-1e6, 1e6),
                    }),
                );
            }
        }
        found
    }

    /// Judges the step starting at `step` (the clock said it is complete) on the totals
    /// taken by [`DatasetModel::take_unflushed`] (the pull commits them first), and marks it
    /// judged. Returns the incident changes, in (label, entity) order.
    pub fn judge_step(&mut self, step: i64) -> Vec<Change> {
        let values = self.pending.remove(&step).unwrap_or_default();
        for key in values.keys() {
            if !self.series.contains_key(key) {
                let kind = self.params.kind(&key.label);
                self.series
                    .insert(key.clone(), Series::new(&self.params, kind, step));
            }
        }
        let mut label_events: HashMap<Arc<str>, u64> = HashMap::new();
        for (key, totals) in &values {
            *label_events.entry(key.label.clone()).or_default() += totals.events;
        }
        let mut population = self.population(&values, &label_events);
        let end = step + self.params.rules.step;
        let mut changes = Vec::new();
        for (key, series) in self.series.iter_mut() {
            let x = values.get(key).map_or(ZERO, ExactTotals::as_step_totals);
            let label_total = label_events.get(&key.label).copied().unwrap_or(0);
            let transition = series.judge(
                self.params.kind(&key.label),
                step,
                end,
                &x,
                label_total,
                population.remove(key),
                &self.params,
            );
            let change = match transition {
                Transition::Quiet | Transition::Pending => None,
                Transition::Opened => series.incidents.live.as_deref().map(|i| Change::Open {
                    label: key.label.clone(),
                    entity_id: key.entity_id,
                    incident: i.clone(),
                }),
                Transition::Grew => series.incidents.live.as_deref().map(|i| Change::Update {
                    label: key.label.clone(),
                    entity_id: key.entity_id,
                    incident: i.clone(),
                }),
                Transition::Resolved { id } | Transition::Settled { id } => Some(Change::Resolve {
                    id,
                    resolved_at: step,
                }),
            };
            if let Some(change) = change {
                changes.push((key.clone(), change));
            }
        }
        self.judged_series_steps += self.series.len() as u64;
        // Forgotten series end their incident.
        let ttl = self.params.series_ttl;
        let forgotten = &mut self.forgotten;
        self.series.retain(|key, s| {
            let keep = step - s.last_active < ttl;
            if !keep && s.snapshot_hash != 0 {
                forgotten.push(key.clone());
            }
            if let (false, Some(live)) = (keep, s.incidents.live.as_deref()) {
                changes.push((
                    key.clone(),
                    Change::Resolve {
                        id: live.id,
                        resolved_at: end,
                    },
                ));
            }
            keep
        });
        self.clock.judged(step, &self.params.rules);
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        changes.into_iter().map(|(_, c)| c).collect()
    }

    /// Records the id the store gave a new incident, so that it can grow.
    pub fn assign_id(&mut self, label: &str, entity_id: i64, id: u64) {
        let key = self.key(label, entity_id);
        if let Some(live) = self
            .series
            .get_mut(&key)
            .and_then(|s| s.incidents.live.as_deref_mut())
        {
            live.id = id;
        }
    }

    /// The firing incidents whose id is not known (opened while replaying).
    pub fn incidents_without_id(&self) -> Vec<Unnumbered> {
        self.series
            .iter()
            .filter_map(|(key, s)| {
                let live = s.incidents.live.as_deref()?;
                (live.id == 0).then(|| Unnumbered {
                    series: key.clone(),
                    period_start: live.start,
                })
            })
            .collect()
    }

    /// The ids of the firing incidents.
    pub fn firing_ids(&self) -> Vec<u64> {
        self.series
            .values()
            .filter_map(|s| s.incidents.live.as_deref().map(|i| i.id))
            .filter(|&id| id != 0)
            .collect()
    }

    /// Forgets a firing incident the store does not know (state rebuilt without a snapshot).
    pub fn forget_incident(&mut self, label: &str, entity_id: i64) {
        let key = self.key(label, entity_id);
        if let Some(series) = self.series.get_mut(&key) {
            series.incidents.live = None;
        }
    }

    /// Replays a judged step from stored totals (on start): the series learn it again and
    /// their incidents follow, but nothing is reported.
    pub fn replay_step(&mut self, step: i64, values: &[ReplayTotals]) {
        for value in values {
            let key = self.key(&value.label, value.entity_id);
            self.pending
                .entry(step)
                .or_default()
                .insert(key, value.totals);
        }
        let judged_until = self.clock.judged_until;
        let judged = self.judged_series_steps;
        self.judge_step(step);
        self.clock.judged_until = judged_until;
        self.judged_series_steps = judged;
    }

    /// The series a snapshot covers, in no particular order: encode them a few at a time
    /// with [`DatasetModel::encode_changed`].
    pub fn series_keys(&self) -> Vec<SeriesKey> {
        self.series.keys().cloned().collect()
    }

    /// The series' state (history window, detectors, share, incident), encoded for a
    /// snapshot taken at the current `judged_until`, unless it is the state the last
    /// snapshot stored: a snapshot writes only the series that changed.
    pub fn encode_changed(
        &mut self,
        key: &SeriesKey,
    ) -> Result<Option<SeriesState>, postcard::Error> {
        let Some(series) = self.series.get_mut(key) else {
            return Ok(None);
        };
        let state = postcard::to_extend(&*series, SNAPSHOT_FORMAT.to_vec())?;
        let hash = state_hash(&state);
        if hash == series.snapshot_hash {
            return Ok(None);
        }
        series.snapshot_hash = hash;
        Ok(Some(SeriesState {
            series: key.clone(),
            state,
        }))
    }

    /// The series forgotten since the last snapshot that a snapshot may hold.
    pub fn take_forgotten(&mut self) -> Vec<SeriesKey> {
        std::mem::take(&mut self.forgotten)
    }

    /// Restores one series from a snapshot (on start, before replaying the steps since).
    /// A state of another format than [`SNAPSHOT_FORMAT`] is refused (the model is then
    /// built from stored totals instead).
    pub fn restore_series(
        &mut self,
        label: &str,
        entity_id: i64,
        state: &[u8],
    ) -> Result<(), postcard::Error> {
        let encoded = state
            .strip_prefix(&SNAPSHOT_FORMAT)
            .ok_or(postcard::Error::DeserializeBadEncoding)?;
        let (mut series, rest): (Series, _) = postcard::take_from_bytes(encoded)?;
        if !rest.is_empty() {
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        series.share_config(&self.params.auto);
        series.snapshot_hash = state_hash(state);
        let key = self.key(label, entity_id);
        self.series.insert(key, series);
        Ok(())
    }

    /// Bytes the model holds for its series: the map's slots (key, series, control byte,
    /// empty ones too) and what each series holds beyond its slot.
    pub fn series_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(SeriesKey, Series)>() + 1;
        self.series.capacity() * slot
            + self
                .series
                .values()
                .map(|s| s.state_bytes() - std::mem::size_of::<Series>())
                .sum::<usize>()
    }

    /// Series-steps held in memory: summed and not judged yet, or not committed yet.
    pub fn pending_len(&self) -> usize {
        self.pending.values().map(HashMap::len).sum::<usize>() + self.unflushed_len()
    }

    /// Number of series the dataset knows.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

/// The first bytes of every encoded series state, naming its format: a state of an older
/// one (without them, or another version) is not decoded. The next version whenever
/// `Series` or a detector changes shape.
pub const SNAPSHOT_FORMAT: [u8; 2] = [0xF5, 2];

/// A snapshot state's hash, never 0 (0 stands for "not stored").
fn state_hash(state: &[u8]) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(state)
        .max(1)
}

#[cfg(test)]
mod tests;
