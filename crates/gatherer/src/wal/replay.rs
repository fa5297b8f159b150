//! Reading the log back at start: every segment left on disk, summed into an aggregator,
//! and the pure plan of what of it is not in MySQL yet.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{
    batch_id, parse_batch_id, parse_segment_name, read_segment_with_keys, Corruption,
    SegmentSummary,
};
use crate::bucket::{Aggregator, Delta};
use crate::idempotency::Accepted;

/// A segment found on disk at start, read back.
#[derive(Debug)]
pub struct Recovered {
    pub path: PathBuf,
    pub instance: String,
    pub epoch: u64,
    /// Its events, summed with the bucket width it was written with.
    pub aggregator: Aggregator,
    /// The idempotency keys its records carry.
    pub keys: Vec<Accepted>,
    pub summary: SegmentSummary,
}

/// Reads every segment in `dir`. A missing directory holds nothing; a directory that
/// cannot be listed also holds nothing we can replay (requests will get 503 until it
/// is fixed), and is reported in the log. Damage other than a torn last record is an
/// error naming the file.
pub fn recover(dir: &Path) -> Result<Vec<Recovered>, Corruption> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            tracing::error!(dir = %dir.display(), %error, "cannot list the write-ahead log directory; nothing replayed");
            return Ok(Vec::new());
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((instance, epoch)) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        found.push((entry.path(), instance, epoch));
    }
    found.sort_by(|a, b| (&a.1, a.2).cmp(&(&b.1, b.2)));
    let mut recovered = Vec::with_capacity(found.len());
    for (path, instance, epoch) in found {
        let bytes = std::fs::read(&path).map_err(|e| {
            Corruption(format!(
                "cannot read write-ahead log segment {}: {e}",
                path.display()
            ))
        })?;
        let mut events = Vec::new();
        let mut keys = Vec::new();
        let summary = read_segment_with_keys(
            &bytes,
            |label, id, value, at_ms| events.push((Arc::<str>::from(label), id, value, at_ms)),
            |key| keys.push(key),
        )
        .map_err(|e| {
            Corruption(format!(
                "write-ahead log segment {} is damaged ({}); move it aside to start without it (its events are then lost)",
                path.display(),
                e.0
            ))
        })?;
        let aggregator = Aggregator::new(summary.bucket_seconds.unwrap_or(1), 1);
        for (label, id, value, at_ms) in events {
            aggregator.record(&label, id, value, at_ms);
        }
        recovered.push(Recovered {
            path,
            instance,
            epoch,
            aggregator,
            keys,
            summary,
        });
    }
    Ok(recovered)
}

/// For one log instance, the highest drain threshold committed for each of its epochs,
/// from the ids in `flush_batches`: the buckets it covers are in `events_count` already.
/// Ids of other instances, and ids that are not drains of the log, count for nothing.
pub fn committed_thresholds<'a>(
    instance: &str,
    batch_ids: impl IntoIterator<Item = &'a str>,
) -> HashMap<u64, i64> {
    let mut thresholds = HashMap::new();
    for id in batch_ids {
        if let Some((found, epoch, threshold)) = parse_batch_id(id) {
            if found == instance {
                let entry = thresholds.entry(epoch).or_insert(threshold);
                *entry = (*entry).max(threshold);
            }
        }
    }
    thresholds
}

/// What the replay writes for one segment: the buckets not in MySQL yet, in bucket order,
/// under the id `w<instance>-<epoch>-<i64::MAX>` that a crash during replay finds again.
#[derive(Debug)]
pub struct SegmentReplay {
    pub id: String,
    pub deltas: Vec<Delta>,
    /// The segment, deleted once its batch committed.
    pub path: PathBuf,
}

/// What a start replays: a batch a segment, the idempotency keys the log holds, and the
/// bytes of torn last records that were dropped.
#[derive(Debug, Default)]
pub struct ReplayPlan {
    pub segments: Vec<SegmentReplay>,
    pub keys: Vec<Accepted>,
    pub torn_bytes: usize,
}

/// Works out what of each recovered segment is not in MySQL yet. `committed` holds, for
/// each instance, the thresholds [`committed_thresholds`] found: a segment replayed before
/// (`i64::MAX`) gives an empty batch (its file still goes), one drained up to a threshold
/// gives the buckets after it, one never drained gives everything.
pub fn plan_replay(
    recovered: Vec<Recovered>,
    committed: &HashMap<String, HashMap<u64, i64>>,
) -> ReplayPlan {
    let mut plan = ReplayPlan::default();
    for mut segment in recovered {
        plan.keys.append(&mut segment.keys);
        plan.torn_bytes += segment.summary.torn_bytes;
        let covered = committed
            .get(&segment.instance)
            .and_then(|t| t.get(&segment.epoch))
            .copied();
        let mut deltas = match covered {
            Some(i64::MAX) => Vec::new(),
            Some(threshold) => {
                // Those buckets committed with an earlier drain; the rest did not.
                drop(segment.aggregator.drain_closed(threshold));
                segment.aggregator.drain_all()
            }
            None => segment.aggregator.drain_all(),
        };
        deltas.sort_unstable_by_key(|d| d.bucket);
        plan.segments.push(SegmentReplay {
            id: batch_id(&segment.instance, segment.epoch, i64::MAX),
            deltas,
            path: segment.path,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment of `instance` and `epoch` holding one event in each of the 2-second
    /// buckets starting at the given seconds, and one idempotency key.
    fn segment(instance: &str, epoch: u64, buckets: &[i64]) -> Recovered {
        let aggregator = Aggregator::new(2, 1);
        for &second in buckets.iter().rev() {
            aggregator.record("a", 1, second, second * 1000 + 500);
        }
        Recovered {
            path: PathBuf::from(format!("{instance}-{epoch}.wal")),
            instance: instance.into(),
            epoch,
            aggregator,
            keys: vec![Accepted {
                key: format!("{instance}-{epoch}").into(),
                accepted_ms: 0,
                reply: Arc::from(&b"{}"[..]),
            }],
            summary: SegmentSummary {
                bucket_seconds: Some(2),
                records: buckets.len(),
                events: buckets.len() as u64,
                torn_bytes: 3,
            },
        }
    }

    fn buckets(replay: &SegmentReplay) -> Vec<i64> {
        replay
            .deltas
            .iter()
            .map(|d| d.bucket.unix_seconds())
            .collect()
    }

    #[test]
    fn committed_thresholds_keep_the_highest_drain_of_each_epoch_of_one_instance() {
        let ids = [
            "wab-1-4000",
            "wab-1-8000",
            "wab-1-6000",
            "wab-2-2000",
            "wabc-1-99000",
            "w12-3-5000",
            "ab-1-1",
            "wab-x-1",
        ];
        let found = committed_thresholds("ab", ids);
        assert_eq!(found, HashMap::from([(1, 8000), (2, 2000)]));
        assert!(committed_thresholds("ff", ids).is_empty());
    }

    #[test]
    fn a_segment_never_drained_replays_whole_in_bucket_order() {
        let plan = plan_replay(vec![segment("ab", 4, &[10, 2, 6])], &HashMap::new());
        assert_eq!(plan.segments.len(), 1);
        let replay = &plan.segments[0];
        assert_eq!(replay.id, format!("wab-4-{}", i64::MAX));
        assert_eq!(buckets(replay), [2, 6, 10]);
        assert_eq!(replay.path, PathBuf::from("ab-4.wal"));
        assert_eq!(plan.keys.len(), 1);
        assert_eq!(plan.torn_bytes, 3);
    }

    #[test]
    fn a_segment_drained_up_to_a_threshold_replays_only_the_later_buckets() {
        let committed = HashMap::from([("ab".to_owned(), HashMap::from([(4, 8_000)]))]);
        let plan = plan_replay(vec![segment("ab", 4, &[2, 6, 8, 10])], &committed);
        // Buckets ending at or before 8 s committed; the one from 8 s to 10 s did not.
        assert_eq!(buckets(&plan.segments[0]), [8, 10]);
    }

    #[test]
    fn a_segment_replayed_before_gives_an_empty_batch_and_still_its_keys() {
        let committed = HashMap::from([
            ("ab".to_owned(), HashMap::from([(4, i64::MAX), (5, 4_000)])),
            ("cd".to_owned(), HashMap::from([(4, i64::MAX)])),
        ]);
        let recovered = vec![
            segment("ab", 4, &[2, 6]),
            segment("ab", 6, &[2]),
            segment("ef", 4, &[2]),
        ];
        let plan = plan_replay(recovered, &committed);
        let found: Vec<_> = plan.segments.iter().map(buckets).collect();
        // Another epoch's or another instance's commits cover nothing of these segments.
        assert_eq!(found, [vec![], vec![2], vec![2]]);
        assert_eq!(plan.keys.len(), 3);
        assert_eq!(plan.torn_bytes, 9);
    }
}
