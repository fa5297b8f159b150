//! Idempotent retries: a request sent again with the same `Idempotency-Key` is counted once.
//!
//! Bots retry after a timeout, a dropped connection or a load balancer's 502, without
//! knowing whether the first attempt was counted. A request that carries a key claims it
//! in the [`KeyStore`] before it records anything; once its events are recorded the claim
//! is completed with the reply it got. Within `idempotency_window` a request whose key was
//! accepted gets that reply again and records nothing; one whose key is still being
//! handled waits for the first attempt's outcome (409 if that takes longer than a body may
//! take to arrive). A refused attempt (4xx, 503) lets its claim go, so the key stays free
//! for the retry.
//!
//! **Bounded.** At most `max_idempotency_keys` are kept; the oldest go first, as do keys
//! older than the window. The store is sharded like the aggregator, so keyed requests do
//! not serialise on one lock; requests without a key never touch it.
//!
//! **Durable with the events.** An accepted key also goes to the store's outbox; the
//! flusher commits it in the next flush transaction (`idempotency_keys`), and a restart
//! loads the keys still within the window. With the write-ahead log on, the key and the
//! reply are part of the request's log record too, so they are on disk with the events
//! from the moment of the `200` until that transaction commits.

use std::sync::Arc;

mod encoding;
mod store;

pub use encoding::{decode, decode_all, encode, encoded_len};
pub use store::{Claim, Claimed, KeyStore};

/// The longest key, in bytes (visible ASCII: one byte a character).
pub const MAX_KEY_LEN: usize = 255;

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// The header a replayed reply carries.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A validated `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(Arc<str>);

/// Why a key was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidKey {
    #[error("Idempotency-Key must not be empty")]
    Empty,
    #[error("Idempotency-Key is longer than 255 characters")]
    TooLong,
    #[error("Idempotency-Key must be visible ASCII characters (no spaces or control characters)")]
    NotVisibleAscii,
    #[error("send one Idempotency-Key header, not several")]
    Repeated,
}

impl IdempotencyKey {
    pub fn parse(value: &[u8]) -> Result<Self, InvalidKey> {
        if value.is_empty() {
            return Err(InvalidKey::Empty);
        }
        if value.len() > MAX_KEY_LEN {
            return Err(InvalidKey::TooLong);
        }
        if !value.iter().all(u8::is_ascii_graphic) {
            return Err(InvalidKey::NotVisibleAscii);
        }
        // Checked above: visible ASCII is UTF-8.
        let text = std::str::from_utf8(value).map_err(|_| InvalidKey::NotVisibleAscii)?;
        Ok(IdempotencyKey(Arc::from(text)))
    }

    /// The key of a request from its header values: none, one valid one, or an error.
    pub fn from_header_values<'a>(
        mut values: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Option<Self>, InvalidKey> {
        let Some(first) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(InvalidKey::Repeated);
        }
        Self::parse(first).map(Some)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A key that was accepted, with the reply its request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub key: Arc<str>,
    /// When it was accepted, unix milliseconds: the window runs from here.
    pub accepted_ms: i64,
    /// The reply body, sent again to every retry.
    pub reply: Arc<[u8]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(b"order-42_retry:~!").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert_eq!(IdempotencyKey::parse(b""), Err(InvalidKey::Empty));
        assert_eq!(
            IdempotencyKey::parse(&[b'k'; 256]),
            Err(InvalidKey::TooLong)
        );
        for bad in [
            &b"two words"[..],
            b"tab\t",
            b"nul\0",
            "é".as_bytes(),
            b"\x7f",
        ] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(InvalidKey::NotVisibleAscii),
                "{bad:?}"
            );
        }
        let two = [&b"a"[..], b"b"];
        assert_eq!(
            IdempotencyKey::from_header_values(two.into_iter()),
            Err(InvalidKey::Repeated)
        );
        assert_eq!(
            IdempotencyKey::from_header_values(std::iter::empty()),
            Ok(None)
        );
    }
}
