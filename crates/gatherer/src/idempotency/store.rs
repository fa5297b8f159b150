//! The [`KeyStore`]: the keys accepted within the window and those being handled now,
//! sharded and bounded (oldest out first), with the outbox the flusher commits.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use super::{Accepted, IdempotencyKey};

type RandomState = foldhash::fast::RandomState;

enum Slot {
    /// A request holds the claim; its receivers wake when the claim is completed or let go.
    InFlight(watch::Receiver<()>),
    Done {
        accepted_ms: i64,
        reply: Arc<[u8]>,
    },
}

#[derive(Default)]
struct Shard {
    keys: HashMap<Arc<str>, Slot, RandomState>,
    /// Accepted keys, oldest first: the eviction order.
    order: VecDeque<(Arc<str>, i64)>,
    /// Accepted keys not yet handed to the flusher.
    outbox: VecDeque<Accepted>,
}

/// The keys this gatherer has accepted within the window, and those being handled now.
pub struct KeyStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    window_ms: i64,
    max_per_shard: usize,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("window_ms", &self.window_ms)
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

/// What a claim found.
#[derive(Debug)]
pub enum Claimed {
    /// The key is this request's to handle: complete the claim once its events are
    /// recorded, or drop it to let the key go.
    New(Claim),
    /// The key was accepted before: answer with this reply, record nothing.
    Replay(Arc<[u8]>),
    /// Another request has held the key for longer than the caller would wait (409).
    Busy,
}

enum Step {
    Claimed(Claim),
    Replay(Arc<[u8]>),
    Wait(watch::Receiver<()>),
}

impl KeyStore {
    /// A store of at most `max_keys` keys (at least one) kept for `window`. Few keys get
    /// one shard, so that "the oldest goes first" holds exactly; many get several.
    pub fn new(window: Duration, max_keys: usize) -> Arc<Self> {
        let max_keys = max_keys.max(1);
        let shards = if max_keys < 4_096 { 1 } else { 16 };
        Arc::new(KeyStore {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            hasher: RandomState::default(),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX),
            max_per_shard: max_keys.div_ceil(shards),
        })
    }

    /// Claims `key` for the calling request, waiting while another request holds it, but
    /// no longer than `patience` (then [`Claimed::Busy`]). `now_ms` reads the clock (the
    /// window is judged when the claim is decided).
    pub async fn claim(
        self: &Arc<Self>,
        key: &IdempotencyKey,
        now_ms: impl Fn() -> i64,
        patience: Duration,
    ) -> Claimed {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.try_claim(key, now_ms()) {
                Step::Claimed(claim) => return Claimed::New(claim),
                Step::Replay(reply) => return Claimed::Replay(reply),
                // Wakes when the holder completes or lets go (its sender is dropped).
                Step::Wait(mut holder) => {
                    let released = async { while holder.changed().await.is_ok() {} };
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return Claimed::Busy;
                    }
                }
            }
        }
    }

    fn try_claim(self: &Arc<Self>, key: &IdempotencyKey, now_ms: i64) -> Step {
        let shard_index = self.shard_of(key.as_str());
        let mut shard = lock(&self.shards[shard_index]);
        match shard.keys.get(key.as_str()) {
            // A holder that is gone without letting go (it cannot, but if it did) would
            // otherwise hold the key for ever: its claim is taken over.
            Some(Slot::InFlight(holder)) if holder.has_changed().is_ok() => {
                return Step::Wait(holder.clone());
            }
            Some(Slot::Done { accepted_ms, reply }) if !self.expired(*accepted_ms, now_ms) => {
                return Step::Replay(reply.clone());
            }
            _ => {}
        }
        let (sender, receiver) = watch::channel(());
        shard.keys.insert(key.0.clone(), Slot::InFlight(receiver));
        Step::Claimed(Claim {
            store: self.clone(),
            key: key.0.clone(),
            shard: shard_index,
            _holder: sender,
            finished: false,
        })
    }

    /// Adds a key accepted earlier: read back from MySQL (`persisted`) or from the
    /// write-ahead log at start. Keys already past the window are ignored.
    pub fn restore(&self, accepted: Accepted, persisted: bool, now_ms: i64) {
        if self.expired(accepted.accepted_ms, now_ms) {
            return;
        }
        let mut shard = lock(&self.shards[self.shard_of(&accepted.key)]);
        if let Some(Slot::Done { accepted_ms, .. }) = shard.keys.get(&accepted.key) {
            if *accepted_ms <= accepted.accepted_ms {
                return;
            }
        }
        self.insert_done(&mut shard, accepted, !persisted, now_ms);
    }

    /// Takes the accepted keys not yet handed out, for the next flush transaction.
    pub fn take_outbox(&self) -> Vec<Accepted> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            out.extend(lock(shard).outbox.drain(..));
        }
        out
    }

    /// Keys held, accepted or in flight.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).keys.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expired(&self, accepted_ms: i64, now_ms: i64) -> bool {
        accepted_ms < now_ms.saturating_sub(self.window_ms)
    }

    fn shard_of(&self, key: &str) -> usize {
        self.hasher.hash_one(key) as usize % self.shards.len()
    }

    /// Records an accepted key, then forgets the oldest while there are too many or they
    /// are past the window.
    fn insert_done(&self, shard: &mut Shard, accepted: Accepted, outbox: bool, now_ms: i64) {
        shard.keys.insert(
            accepted.key.clone(),
            Slot::Done {
                accepted_ms: accepted.accepted_ms,
                reply: accepted.reply.clone(),
            },
        );
        shard
            .order
            .push_back((accepted.key.clone(), accepted.accepted_ms));
        if outbox {
            shard.outbox.push_back(accepted);
            if shard.outbox.len() > self.max_per_shard {
                shard.outbox.pop_front();
            }
        }
        while let Some((key, accepted_ms)) = shard.order.front() {
            if shard.order.len() <= self.max_per_shard && !self.expired(*accepted_ms, now_ms) {
                break;
            }
            // The map may hold a newer acceptance of the same key (or its claim): keep it.
            if matches!(shard.keys.get(key), Some(Slot::Done { accepted_ms: held, .. }) if held == accepted_ms)
            {
                shard.keys.remove(key);
            }
            shard.order.pop_front();
        }
    }
}

/// A request's hold on a key. [`Claim::complete`] records the key as accepted; dropping
/// the claim without completing it lets the key go (the request was refused, or its
/// client went away before anything was recorded).
pub struct Claim {
    store: Arc<KeyStore>,
    key: Arc<str>,
    shard: usize,
    /// Dropped with the claim, which wakes every request waiting for this key.
    _holder: watch::Sender<()>,
    finished: bool,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("key", &self.key).finish()
    }
}

impl Claim {
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The request's events are recorded and it answers `reply`: retries get it too.
    pub fn complete(mut self, accepted_ms: i64, reply: Arc<[u8]>) {
        let mut shard = lock(&self.store.shards[self.shard]);
        let accepted = Accepted {
            key: self.key.clone(),
            accepted_ms,
            reply,
        };
        self.store
            .insert_done(&mut shard, accepted, true, accepted_ms);
        self.finished = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut shard = lock(&self.store.shards[self.shard]);
        if matches!(shard.keys.get(&self.key), Some(Slot::InFlight(_))) {
            shard.keys.remove(&self.key);
        }
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // Each update is an insert, a removal or a push: a panic cannot leave a shard torn.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text.as_bytes()).unwrap()
    }

    fn reply(text: &str) -> Arc<[u8]> {
        Arc::from(text.as_bytes())
    }

    async fn claim(store: &Arc<KeyStore>, text: &str, now_ms: i64) -> Claimed {
        store
            .claim(&key(text), || now_ms, Duration::from_secs(5))
            .await
    }

    #[tokio::test]
    async fn an_accepted_key_is_replayed_within_the_window_and_free_after_it() {
        let store = KeyStore::new(Duration::from_secs(10), 100);
        let Claimed::New(first) = claim(&store, "k", 1_000).await else {
            panic!("a new key is claimed")
        };
        first.complete(1_000, reply("original"));
        match claim(&store, "k", 10_999).await {
            Claimed::Replay(body) => assert_eq!(&*body, b"original"),
            _ => panic!("a retry within the window was not recognised"),
        }
        assert!(matches!(claim(&store, "k", 11_001).await, Claimed::New(_)));
    }

    #[tokio::test]
    async fn a_claim_let_go_leaves_the_key_free() {
        let store = KeyStore::new(Duration::from_secs(10), 100);
        let Claimed::New(refused) = claim(&store, "k", 0).await else {
            panic!()
        };
        drop(refused);
        assert!(store.is_empty(), "a claim let go is forgotten");
        assert!(matches!(claim(&store, "k", 0).await, Claimed::New(_)));
        assert!(
            store.take_outbox().is_empty(),
            "a refused key is never persisted"
        );
    }

    #[tokio::test]
    async fn a_retry_waits_for_the_first_attempt_and_gets_its_outcome() {
        let store = KeyStore::new(Duration::from_secs(10), 100);
        let Claimed::New(first) = claim(&store, "k", 0).await else {
            panic!()
        };
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { claim(&store, "k", 0).await }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiting.is_finished(),
            "answered while the first attempt was in flight"
        );
        first.complete(0, reply("done"));
        match waiting.await.unwrap() {
            Claimed::Replay(body) => assert_eq!(&*body, b"done"),
            _ => panic!("the retry was handled again"),
        }

        // A first attempt that is refused lets the waiting retry handle the key itself.
        let Claimed::New(first) = claim(&store, "j", 0).await else {
            panic!()
        };
        let waiting = tokio::spawn({
            let store = store.clone();
            async move { claim(&store, "j", 0).await }
        });
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        drop(first);
        assert!(matches!(waiting.await.unwrap(), Claimed::New(_)));
    }

    #[tokio::test]
    async fn a_retry_waits_no_longer_than_its_patience() {
        let store = KeyStore::new(Duration::from_secs(10), 100);
        let Claimed::New(_held) = claim(&store, "k", 0).await else {
            panic!()
        };
        let waited = store
            .claim(&key("k"), || 0, Duration::from_millis(20))
            .await;
        assert!(matches!(waited, Claimed::Busy), "{waited:?}");
    }

    #[tokio::test]
    async fn the_oldest_keys_go_first_past_the_bound() {
        let store = KeyStore::new(Duration::from_secs(600), 3);
        for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let Claimed::New(c) = claim(&store, name, i as i64).await else {
                panic!()
            };
            c.complete(i as i64, reply(name));
        }
        assert_eq!(store.len(), 3);
        assert!(
            matches!(claim(&store, "a", 10).await, Claimed::New(_)),
            "a was the oldest"
        );
        for name in ["c", "d"] {
            assert!(
                matches!(claim(&store, name, 10).await, Claimed::Replay(_)),
                "{name}"
            );
        }
        let outbox: Vec<String> = store
            .take_outbox()
            .iter()
            .map(|a| a.key.to_string())
            .collect();
        assert_eq!(outbox, ["b", "c", "d"], "the outbox is bounded alike");
    }

    #[tokio::test]
    async fn restored_keys_are_replayed_and_only_unpersisted_ones_go_to_the_outbox() {
        let store = KeyStore::new(Duration::from_secs(10), 100);
        let accepted = |name: &str, at: i64| Accepted {
            key: Arc::from(name),
            accepted_ms: at,
            reply: reply(name),
        };
        store.restore(accepted("from-mysql", 5_000), true, 6_000);
        store.restore(accepted("from-wal", 5_500), false, 6_000);
        store.restore(accepted("too-old", -5_000), false, 6_000);
        assert!(matches!(
            claim(&store, "from-mysql", 6_000).await,
            Claimed::Replay(_)
        ));
        assert!(matches!(
            claim(&store, "from-wal", 6_000).await,
            Claimed::Replay(_)
        ));
        assert!(matches!(
            claim(&store, "too-old", 6_000).await,
            Claimed::New(_)
        ));
        let outbox: Vec<String> = store
            .take_outbox()
            .iter()
            .map(|a| a.key.to_string())
            .collect();
        assert_eq!(outbox, ["from-wal"]);
    }
}
