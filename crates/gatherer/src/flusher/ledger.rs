//! Pure: which write-ahead log segment files may go. A segment is deleted once nothing
//! more will be drained from its events and every batch holding them has committed; the
//! ledger answers with the file to delete, the flusher deletes it.

use std::collections::HashMap;
use std::path::PathBuf;

/// A segment the ledger tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentKey(u64);

/// The segment files of the log and the batches that still hold their events.
#[derive(Debug, Default)]
pub struct SegmentLedger {
    segments: HashMap<SegmentKey, Slot>,
    next: u64,
}

/// A segment file, deleted when `done` (nothing more to drain) and no batch is queued.
#[derive(Debug)]
struct Slot {
    path: PathBuf,
    queued: usize,
    done: bool,
}

impl SegmentLedger {
    /// Starts tracking the segment file at `path`: a sealed epoch's, or one found at start.
    pub fn open(&mut self, path: PathBuf) -> SegmentKey {
        let key = SegmentKey(self.next);
        self.next += 1;
        let slot = Slot {
            path,
            queued: 0,
            done: false,
        };
        self.segments.insert(key, slot);
        key
    }

    /// A batch holding some of the segment's events was queued.
    pub fn batch_queued(&mut self, key: SegmentKey) {
        if let Some(slot) = self.segments.get_mut(&key) {
            slot.queued += 1;
        }
    }

    /// Nothing more will be drained from the segment's events: the file to delete, if no
    /// batch of it still waits.
    pub fn done(&mut self, key: SegmentKey) -> Option<PathBuf> {
        if let Some(slot) = self.segments.get_mut(&key) {
            slot.done = true;
        }
        self.remove_if_flushed(key)
    }

    /// A batch of the segment committed: the file to delete, if it was the last one and
    /// the segment is done.
    pub fn batch_committed(&mut self, key: SegmentKey) -> Option<PathBuf> {
        if let Some(slot) = self.segments.get_mut(&key) {
            slot.queued = slot.queued.saturating_sub(1);
        }
        self.remove_if_flushed(key)
    }

    /// Segment files still kept.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    fn remove_if_flushed(&mut self, key: SegmentKey) -> Option<PathBuf> {
        let flushed = self
            .segments
            .get(&key)
            .is_some_and(|s| s.done && s.queued == 0);
        if !flushed {
            return None;
        }
        self.segments.remove(&key).map(|slot| slot.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_goes_once_done_and_its_last_batch_committed() {
        let mut ledger = SegmentLedger::default();
        let a = ledger.open("a.wal".into());
        ledger.batch_queued(a);
        ledger.batch_queued(a);
        assert_eq!(ledger.batch_committed(a), None, "not done yet");
        assert_eq!(ledger.done(a), None, "a batch still waits");
        assert_eq!(ledger.batch_committed(a), Some(PathBuf::from("a.wal")));
        assert!(ledger.is_empty());
        // Gone once: later news of it deletes nothing.
        assert_eq!(ledger.batch_committed(a), None);
        assert_eq!(ledger.done(a), None);
    }

    #[test]
    fn a_segment_with_nothing_to_write_goes_when_done() {
        let mut ledger = SegmentLedger::default();
        let a = ledger.open("a.wal".into());
        assert_eq!(ledger.done(a), Some(PathBuf::from("a.wal")));
    }

    #[test]
    fn segments_are_kept_apart() {
        let mut ledger = SegmentLedger::default();
        let a = ledger.open("a.wal".into());
        let b = ledger.open("b.wal".into());
        assert_ne!(a, b);
        ledger.batch_queued(a);
        ledger.batch_queued(b);
        assert_eq!(ledger.done(b), None);
        assert_eq!(ledger.batch_committed(a), None, "a is not done");
        assert_eq!(ledger.len(), 2);
        assert_eq!(ledger.batch_committed(b), Some(PathBuf::from("b.wal")));
        assert_eq!(ledger.done(a), Some(PathBuf::from("a.wal")));
        assert!(ledger.is_empty());
    }
}
