//! The in-memory aggregation: events summed per (bucket, label, entity).
//!
//! A plain, clock-free type: [`Aggregator::record`] adds an event, and
//! [`Aggregator::drain_closed`] hands out the totals of every bucket that ended before the
//! `now` it is given. The flusher drives it with a timer; tests drive it by hand.
//!
//! Ingest must never wait on one global lock, so the state is split into shards chosen by
//! a hash of (label, entity): concurrent requests for different series rarely meet.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// foldhash, seeded at random per map: several times faster than the standard SipHash on
/// these short keys, and still keyed, so bots choosing labels cannot aim at collisions.
type RandomState = foldhash::fast::RandomState;

/// Start of a bucket, unix seconds; always a multiple of the bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketStart(i64);

impl BucketStart {
    pub fn unix_seconds(self) -> i64 {
        self.0
    }
}

/// Totals of the events of one delta: the columns `event_counter`, `events`,
/// `min_value` and `max_value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub sum: i64,
    pub events: u32,
    pub min: i64,
    pub max: i64,
}

impl Totals {
    fn of(value: i64) -> Self {
        Totals {
            sum: value,
            events: 1,
            min: value,
            max: value,
        }
    }

    /// Adds one value, or returns false (changing nothing) when the sum would overflow
    /// `BIGINT` or the count `INT UNSIGNED`.
    fn try_add(&mut self, value: i64) -> bool {
        let (Some(sum), Some(events)) = (self.sum.checked_add(value), self.events.checked_add(1))
        else {
            return false;
        };
        self.sum = sum;
        self.events = events;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        true
    }
}

/// One row for `events_count`: the totals of one (bucket, label, entity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub bucket: BucketStart,
    pub label: Arc<str>,
    pub entity_id: i64,
    pub totals: Totals,
}

type SeriesMap = HashMap<Arc<str>, HashMap<i64, Totals, RandomState>, RandomState>;

#[derive(Debug, Default)]
struct Shard {
    /// Open buckets; rarely more than two, so a vector beats a map.
    buckets: Vec<(BucketStart, SeriesMap)>,
    /// Deltas closed early because one more value would have overflowed their totals.
    overflowed: Vec<Delta>,
}

/// Events summed in memory per (bucket, label, entity), sharded.
#[derive(Debug)]
pub struct Aggregator {
    width_secs: i64,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
}

impl Aggregator {
    /// `width_secs` is the bucket width (at least 1); `shards` is rounded up to 1.
    pub fn new(width_secs: u32, shards: usize) -> Self {
        Aggregator {
            width_secs: i64::from(width_secs.max(1)),
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            hasher: RandomState::default(),
        }
    }

    /// The bucket an instant (unix milliseconds) falls in: `floor(t / width) * width`.
    pub fn bucket_of(&self, at_ms: i64) -> BucketStart {
        let width_ms = self.width_secs * 1000;
        BucketStart(at_ms.div_euclid(width_ms) * self.width_secs)
    }

    /// Adds one event to its bucket's totals. Returns the rows it added: 1 when it opened
    /// a new (bucket, label, entity) or closed a delta early on overflow, else 0 (summed
    /// into a row already held, at no cost in memory).
    pub fn record(&self, label: &str, entity_id: i64, value: i64, at_ms: i64) -> usize {
        let mut shard = lock(&self.shards[self.shard_of(label, entity_id)]);
        usize::from(self.add(&mut shard, label, entity_id, value, at_ms))
    }

    /// Adds a request's events, `event` giving each one's (label, entity, value, unix
    /// milliseconds). The same as calling [`Aggregator::record`] for each, but a shard is
    /// locked once per bucket of the call rather than once per event. Events are added
    /// bucket by bucket in time order, and within a bucket shard by shard; each series sees
    /// its values in request order. So a drain that falls in the middle of a backfill
    /// request finds the request's earlier buckets complete, as with events recorded one
    /// by one in time order. Returns the rows added, as [`Aggregator::record`] counts them.
    pub fn record_all<E>(
        &self,
        events: &[E],
        event: impl Fn(&E) -> (&str, i64, i64, i64),
    ) -> usize {
        if let [one] = events {
            let (label, entity_id, value, at_ms) = event(one);
            return self.record(label, entity_id, value, at_ms);
        }
        let keys: Vec<(BucketStart, u32)> = events
            .iter()
            .map(|e| {
                let (label, entity_id, _, at_ms) = event(e);
                (
                    self.bucket_of(at_ms),
                    self.shard_of(label, entity_id) as u32,
                )
            })
            .collect();
        let order = if keys.windows(2).all(|w| w[0].0 == w[1].0) {
            // The usual request: one bucket. A counting sort by shard (stable).
            let mut starts = vec![0u32; self.shards.len() + 1];
            for &(_, k) in &keys {
                starts[k as usize + 1] += 1;
            }
            for k in 0..self.shards.len() {
                starts[k + 1] += starts[k];
            }
            let mut order = vec![0u32; events.len()];
            for (i, &(_, k)) in keys.iter().enumerate() {
                order[starts[k as usize] as usize] = i as u32;
                starts[k as usize] += 1;
            }
            order
        } else {
            let mut order: Vec<u32> = (0..events.len() as u32).collect();
            order.sort_by_key(|&i| keys[i as usize]);
            order
        };
        let mut rows = 0;
        for run in order.chunk_by(|&i, &j| keys[i as usize] == keys[j as usize]) {
            let mut shard = lock(&self.shards[keys[run[0] as usize].1 as usize]);
            for &i in run {
                let (label, entity_id, value, at_ms) = event(&events[i as usize]);
                rows += usize::from(self.add(&mut shard, label, entity_id, value, at_ms));
            }
        }
        rows
    }

    fn shard_of(&self, label: &str, entity_id: i64) -> usize {
        self.hasher.hash_one((label, entity_id)) as usize % self.shards.len()
    }

    /// Adds one event to a shard the caller holds (the one [`Aggregator::shard_of`] names).
    /// True when the event added a row: a new series in its bucket, or an overflow that
    /// closed a delta and started another.
    fn add(&self, shard: &mut Shard, label: &str, entity_id: i64, value: i64, at_ms: i64) -> bool {
        let bucket = self.bucket_of(at_ms);
        let series = match shard.buckets.iter_mut().position(|(b, _)| *b == bucket) {
            Some(i) => &mut shard.buckets[i].1,
            None => {
                shard.buckets.push((bucket, SeriesMap::default()));
                let last = shard.buckets.len() - 1;
                &mut shard.buckets[last].1
            }
        };
        let entities = match series.get_mut(label) {
            Some(entities) => entities,
            None => series.entry(Arc::from(label)).or_default(),
        };
        match entities.get_mut(&entity_id) {
            None => {
                entities.insert(entity_id, Totals::of(value));
                true
            }
            Some(totals) => {
                if totals.try_add(value) {
                    return false;
                }
                let full = std::mem::replace(totals, Totals::of(value));
                let label = series_label(series, label);
                shard.overflowed.push(Delta {
                    bucket,
                    label,
                    entity_id,
                    totals: full,
                });
                true
            }
        }
    }

    /// Removes and returns the totals of every bucket that ended at or before `now_ms`
    /// (unix milliseconds), including deltas of those buckets closed early by overflow.
    pub fn drain_closed(&self, now_ms: i64) -> Vec<Delta> {
        self.drain(|bucket| {
            bucket
                .0
                .saturating_add(self.width_secs)
                .saturating_mul(1000)
                <= now_ms
        })
    }

    /// Removes and returns everything, open buckets included (for shutdown).
    pub fn drain_all(&self) -> Vec<Delta> {
        self.drain(|_| true)
    }

    /// True when nothing is held: every recorded event has been drained.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|shard| {
            let shard = lock(shard);
            shard.overflowed.is_empty() && shard.buckets.is_empty()
        })
    }

    /// Drains as one consistent cut: every shard is locked, its closed buckets moved out,
    /// then all are unlocked, and only then are the moved maps turned into deltas. An
    /// event recorded before the cut is in it, whatever its shard; so a backfill recorded
    /// in time order while drains run leaves each drain complete up to one instant, and a
    /// reader never sees a newer bucket of one series before an older one of another.
    /// Ingest waits only for the moves (a few pointers per shard), not for the deltas.
    /// Overflowed deltas leave with their bucket, so that what a drain hands out depends
    /// only on what was recorded and on `closed` (the write-ahead log's replay relies on it).
    fn drain(&self, closed: impl Fn(BucketStart) -> bool) -> Vec<Delta> {
        let mut taken = Vec::new();
        let mut out = Vec::new();
        {
            let mut shards: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(lock).collect();
            for shard in shards.iter_mut() {
                let mut j = 0;
                while j < shard.overflowed.len() {
                    if closed(shard.overflowed[j].bucket) {
                        out.push(shard.overflowed.swap_remove(j));
                    } else {
                        j += 1;
                    }
                }
                let mut i = 0;
                while i < shard.buckets.len() {
                    if closed(shard.buckets[i].0) {
                        taken.push(shard.buckets.swap_remove(i));
                    } else {
                        i += 1;
                    }
                }
            }
        }
        for (bucket, series) in taken {
            for (label, entities) in series {
                out.extend(entities.into_iter().map(|(entity_id, totals)| Delta {
                    bucket,
                    label: Arc::clone(&label),
                    entity_id,
                    totals,
                }));
            }
        }
        out
    }
}

/// The map's shared copy of a label (present: the caller just looked it up).
fn series_label(series: &SeriesMap, label: &str) -> Arc<str> {
    series
        .get_key_value(label)
        .map_or_else(|| Arc::from(label), |(key, _)| Arc::clone(key))
}

/// Locks a shard. A panic while a shard was held cannot leave its maps half-updated in a
/// way that matters (each update is one insert or one in-place add), so a poisoned lock
/// is used as it is rather than losing the events it holds. `record` holds one shard at a
/// time and `drain` takes them all in index order, so they cannot deadlock.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn total(deltas: &[Delta]) -> (i128, u64) {
        deltas.iter().fold((0, 0), |(s, n), d| {
            (s + i128::from(d.totals.sum), n + u64::from(d.totals.events))
        })
    }

    #[test]
    fn buckets_are_floored_to_the_width_even_before_1970() {
        let agg = Aggregator::new(2, 4);
        assert_eq!(agg.bucket_of(10_999).unix_seconds(), 10);
        assert_eq!(agg.bucket_of(11_999).unix_seconds(), 10);
        assert_eq!(agg.bucket_of(12_000).unix_seconds(), 12);
        assert_eq!(agg.bucket_of(-1).unix_seconds(), -2);
    }

    #[test]
    fn events_of_one_series_and_bucket_are_summed_with_min_and_max() {
        let agg = Aggregator::new(2, 4);
        agg.record("checkout", 42, 5, 10_100);
        agg.record("checkout", 42, -3, 11_900);
        agg.record("checkout", 42, 9, 10_500);
        agg.record("checkout", 7, 1, 10_500);
        let mut deltas = agg.drain_closed(12_000);
        deltas.sort_by_key(|d| d.entity_id);
        assert_eq!(deltas.len(), 2);
        assert_eq!(
            deltas[1].totals,
            Totals {
                sum: 11,
                events: 3,
                min: -3,
                max: 9
            }
        );
        assert_eq!(&*deltas[1].label, "checkout");
        assert_eq!(deltas[1].bucket.unix_seconds(), 10);
    }

    #[test]
    fn open_buckets_stay_until_they_close() {
        let agg = Aggregator::new(2, 4);
        agg.record("a", 1, 1, 10_000);
        agg.record("a", 1, 1, 12_000);
        assert!(agg.drain_closed(11_999).is_empty());
        assert_eq!(agg.drain_closed(12_000).len(), 1);
        assert_eq!(agg.drain_closed(13_999).len(), 0);
        assert_eq!(agg.drain_all().len(), 1);
        assert!(agg.drain_all().is_empty());
    }

    #[test]
    fn a_sum_that_would_overflow_closes_the_delta_and_starts_another() {
        let agg = Aggregator::new(2, 1);
        agg.record("a", 1, i64::MAX, 0);
        agg.record("a", 1, 1, 0);
        agg.record("a", 1, 2, 0);
        let deltas = agg.drain_all();
        assert_eq!(deltas.len(), 2);
        assert_eq!(total(&deltas), (i128::from(i64::MAX) + 3, 3));
    }

    /// A backfill recorded in time order while drains run: each drain must be a cut in
    /// time, so no later drain holds a bucket older than the newest of an earlier one.
    /// Drains as fast as possible while `write` runs in another thread, then checks that
    /// no drain held a bucket older than one an earlier drain had.
    fn assert_drains_are_consistent_cuts(write: impl FnOnce(&Aggregator) + Send + 'static) {
        let agg = Arc::new(Aggregator::new(2, 64));
        let writer = {
            let agg = Arc::clone(&agg);
            std::thread::spawn(move || write(&agg))
        };
        let mut drains = Vec::new();
        while !writer.is_finished() {
            let deltas = agg.drain_closed(i64::MAX);
            if let (Some(min), Some(max)) = (
                deltas.iter().map(|d| d.bucket).min(),
                deltas.iter().map(|d| d.bucket).max(),
            ) {
                drains.push((min, max));
            }
        }
        writer.join().unwrap();
        assert!(
            drains.len() > 10,
            "too few drains overlapped the writer: {}",
            drains.len()
        );
        let mut newest = BucketStart(i64::MIN);
        for (min, max) in drains {
            assert!(
                min >= newest,
                "a drain held bucket {min:?} after one had {newest:?}"
            );
            newest = newest.max(max);
        }
    }

    #[test]
    fn drains_during_a_time_ordered_backfill_are_consistent_cuts() {
        assert_drains_are_consistent_cuts(|agg| {
            for i in 0..400_000i64 {
                agg.record("backfill", i % 97, 1, (i / 97) * 50);
            }
        });
    }

    #[test]
    fn drains_during_a_backfill_in_batches_are_consistent_cuts() {
        // Each request spans several buckets and lists its events newest first.
        assert_drains_are_consistent_cuts(|agg| {
            let events: Vec<(i64, i64)> =
                (0..400_000i64).map(|i| (i % 97, (i / 97) * 50)).collect();
            for request in events.chunks(500) {
                let newest_first: Vec<(i64, i64)> = request.iter().rev().copied().collect();
                agg.record_all(&newest_first, |&(id, at)| ("backfill", id, 1, at));
            }
        });
    }

    proptest! {
        /// Whatever the interleaving of records and drains, every value comes out exactly
        /// once.
        #[test]
        fn drains_preserve_every_value(
            ops in proptest::collection::vec(
                prop_oneof![
                    (0u8..4, -3i64..3, any::<i64>(), 0i64..20_000).prop_map(|(l, id, v, t)| (Some((l, id, v)), t)),
                    (0i64..24_000).prop_map(|t| (None, t)),
                ],
                0..200,
            )
        ) {
            let agg = Aggregator::new(2, 3);
            let mut recorded = (0i128, 0u64);
            let mut rows = 0;
            let mut drained = Vec::new();
            for (op, t) in ops {
                match op {
                    Some((l, id, v)) => {
                        rows += agg.record(&format!("l{l}"), id, v, t);
                        recorded.0 += i128::from(v);
                        recorded.1 += 1;
                    }
                    None => drained.extend(agg.drain_closed(t)),
                }
            }
            drained.extend(agg.drain_all());
            prop_assert_eq!(total(&drained), recorded);
            // The backlog counts rows as they are recorded and releases them as deltas
            // commit: the two counts must agree.
            prop_assert_eq!(drained.len(), rows);
            for d in &drained {
                prop_assert!(d.totals.min <= d.totals.max);
                prop_assert_eq!(d.bucket.unix_seconds() % 2, 0);
            }
        }

        /// A batch through `record_all` leaves exactly what recording its events one by
        /// one leaves, overflow splits included (each series sees its values in order).
        #[test]
        fn record_all_is_record_in_order(
            events in proptest::collection::vec(
                (0u8..3, 0i64..3, prop_oneof![-5i64..5, Just(i64::MAX), Just(i64::MIN)], 0i64..6_000),
                0..100,
            )
        ) {
            let events: Vec<(String, i64, i64, i64)> =
                events.into_iter().map(|(l, id, v, t)| (format!("l{l}"), id, v, t)).collect();
            let one_by_one = Aggregator::new(2, 5);
            for (label, id, value, at) in &events {
                one_by_one.record(label, *id, *value, *at);
            }
            let batched = Aggregator::new(2, 5);
            let rows = batched.record_all(&events, |(label, id, value, at)| (label, *id, *value, *at));
            let key = |d: &Delta| (d.bucket, d.label.clone(), d.entity_id, d.totals.sum, d.totals.events, d.totals.min);
            let mut expected = one_by_one.drain_all();
            let mut got = batched.drain_all();
            expected.sort_by_key(key);
            got.sort_by_key(key);
            prop_assert_eq!(got.len(), rows);
            prop_assert_eq!(got, expected);
        }
    }
}
