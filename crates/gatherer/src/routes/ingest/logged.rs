//! A request whose record is being written to the write-ahead log, and what records its
//! events once the record is durable, whether or not its client is still there.

use std::sync::Arc;

use crate::backlog::Backlog;
use crate::idempotency::Claim;
use crate::ingest::ValidEvent;
use crate::wal::{Pending, WalError};

/// A keyed request's claim, and the reply that completes it.
pub(super) struct KeyedReply {
    pub(super) claim: Claim,
    pub(super) accepted_ms: i64,
    pub(super) body: Arc<[u8]>,
}

impl KeyedReply {
    pub(super) fn complete(self) {
        self.claim.complete(self.accepted_ms, self.body);
    }
}

/// A request whose record is being written to the log. Its events are recorded once the
/// record is durable, whether or not the request is still there to answer: dropped
/// before that (the client went away), it hands the rest to a task of its own.
pub(super) struct LoggedRequest<'a> {
    pub(super) pending: Option<Pending>,
    pub(super) events: &'a [ValidEvent<'a>],
    pub(super) keyed: Option<KeyedReply>,
    pub(super) backlog: Arc<Backlog>,
}

impl LoggedRequest<'_> {
    pub(super) async fn record_once_durable(mut self) -> Result<(), WalError> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(WalError::Stopped);
        };
        let written = pending.wait().await;
        // Waited for: nothing is left for the drop to hand on.
        let (Some(pending), keyed) = (self.pending.take(), self.keyed.take()) else {
            return Err(WalError::Stopped);
        };
        written?;
        record_logged(pending, self.events, keyed, &self.backlog);
        Ok(())
    }
}

impl Drop for LoggedRequest<'_> {
    fn drop(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let events: Vec<ValidEvent<'static>> =
            self.events.iter().map(ValidEvent::to_owned_event).collect();
        let keyed = self.keyed.take();
        let backlog = self.backlog.clone();
        runtime.spawn(async move {
            let mut pending = pending;
            if pending.wait().await.is_ok() {
                metrics::counter!("gatherer_events_accepted_total").increment(events.len() as u64);
                record_logged(pending, &events, keyed, &backlog);
            }
        });
    }
}

/// Records a durable record's events in its epoch, then completes its key, both before
/// the epoch is let go: so the flusher's drain of that epoch finds the key accepted.
fn record_logged(
    pending: Pending,
    events: &[ValidEvent<'_>],
    keyed: Option<KeyedReply>,
    backlog: &Backlog,
) {
    let guard = pending.into_guard();
    let rows = guard.aggregator().record_all(events, ValidEvent::fields);
    backlog.add(rows as u64);
    if let Some(keyed) = keyed {
        keyed.complete();
    }
    drop(guard);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use crate::idempotency::{Claimed, IdempotencyKey, KeyStore};
    use crate::wal::{RecordKey, SegmentFile, SegmentStore, Wal};

    /// Segments in memory whose fsync waits while `hold` is set.
    #[derive(Clone, Default)]
    struct HeldSyncs {
        hold: Arc<AtomicBool>,
        bytes: Arc<Mutex<Vec<u8>>>,
    }

    impl SegmentStore for HeldSyncs {
        fn open(&mut self, _name: &str) -> std::io::Result<(Box<dyn SegmentFile>, u64)> {
            let len = self.bytes.lock().unwrap().len() as u64;
            Ok((Box::new(self.clone()), len))
        }
        fn sync_dir(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl SegmentFile for HeldSyncs {
        fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(())
        }
        fn sync(&mut self) -> std::io::Result<()> {
            while self.hold.load(Ordering::SeqCst) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(())
        }
        fn truncate(&mut self, len: u64) -> std::io::Result<()> {
            self.bytes.lock().unwrap().truncate(len as usize);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_request_dropped_while_its_record_is_written_still_records_and_accepts_its_key() {
        let store = HeldSyncs::default();
        store.hold.store(true, Ordering::SeqCst);
        let wal = Wal::start_with(store.clone(), "x".into(), "00".into(), 2, 0);
        let keys = KeyStore::new(std::time::Duration::from_secs(60), 10);
        let backlog = Arc::new(Backlog::new(100));
        let events = [ValidEvent {
            label: crate::label::Label::parse("checkout").unwrap(),
            id: 7,
            value: 3,
            at_ms: 0,
        }];
        let key = IdempotencyKey::parse(b"gone-client").unwrap();
        let Claimed::New(claim) = keys
            .claim(&key, || 0, std::time::Duration::from_secs(1))
            .await
        else {
            panic!("a new key")
        };
        let body: Arc<[u8]> = Arc::from(&b"{\"ok\":true,\"accepted\":1}"[..]);
        let record_key = RecordKey {
            key: "gone-client",
            accepted_ms: 0,
            reply: &body,
        };
        let pending = wal.append(&events, Some(record_key)).unwrap();
        let request = LoggedRequest {
            pending: Some(pending),
            events: &events,
            keyed: Some(KeyedReply {
                claim,
                accepted_ms: 0,
                body: body.clone(),
            }),
            backlog: backlog.clone(),
        };
        // The client goes away while the fsync is held: the request's future is dropped.
        let cut = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            request.record_once_durable(),
        )
        .await;
        assert!(
            cut.is_err(),
            "the record was durable before the fsync returned"
        );
        store.hold.store(false, Ordering::SeqCst);

        let replayed = keys
            .claim(&key, || 0, std::time::Duration::from_secs(5))
            .await;
        assert!(
            matches!(replayed, Claimed::Replay(_)),
            "the key was not accepted once the record was durable"
        );
        let epoch = wal.seal(0);
        while epoch.inflight() > 0 {
            tokio::task::yield_now().await;
        }
        let deltas = epoch.aggregator().drain_all();
        assert_eq!(deltas.len(), 1, "the logged events were not recorded");
        assert_eq!(deltas[0].totals.sum, 3);
        assert_eq!(backlog.pending(), 1);
    }
}
