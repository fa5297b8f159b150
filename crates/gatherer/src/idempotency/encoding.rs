//! The encoding of accepted keys shared by the write-ahead log's records and
//! `idempotency_keys.entries`.

use std::sync::Arc;

use super::{Accepted, IdempotencyKey, MAX_KEY_LEN};

/// Appends one accepted key as `key_len: u8`, key, `accepted_ms: i64 LE`,
/// `reply_len: u32 LE`, reply: the form it takes in a write-ahead log record and in
/// `idempotency_keys.entries`.
pub fn encode(key: &str, accepted_ms: i64, reply: &[u8], out: &mut Vec<u8>) {
    // A valid key has 1 to 255 bytes; a reply is a few hundred KiB at most.
    out.push(u8::try_from(key.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&key.as_bytes()[..key.len().min(MAX_KEY_LEN)]);
    out.extend_from_slice(&accepted_ms.to_le_bytes());
    out.extend_from_slice(&u32::try_from(reply.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(reply);
}

/// The encoded length of one key, as [`encode`] writes it.
pub fn encoded_len(key: &str, reply: &[u8]) -> usize {
    1 + key.len() + 8 + 4 + reply.len()
}

/// Reads one key written by [`encode`] from the front of `bytes`; returns it and the bytes
/// it took.
pub fn decode(bytes: &[u8]) -> Result<(Accepted, usize), String> {
    let short = || "idempotency key entry shorter than it says".to_owned();
    let key_len = usize::from(*bytes.first().ok_or_else(short)?);
    let key_bytes = bytes.get(1..1 + key_len).ok_or_else(short)?;
    let key = IdempotencyKey::parse(key_bytes).map_err(|e| e.to_string())?;
    let mut at = 1 + key_len;
    let accepted_ms = i64::from_le_bytes(
        bytes
            .get(at..at + 8)
            .ok_or_else(short)?
            .try_into()
            .map_err(|_| short())?,
    );
    at += 8;
    let reply_len = u32::from_le_bytes(
        bytes
            .get(at..at + 4)
            .ok_or_else(short)?
            .try_into()
            .map_err(|_| short())?,
    ) as usize;
    at += 4;
    let reply = bytes.get(at..at + reply_len).ok_or_else(short)?;
    Ok((
        Accepted {
            key: key.0,
            accepted_ms,
            reply: Arc::from(reply),
        },
        at + reply_len,
    ))
}

/// Reads a run of keys written one after another by [`encode`].
pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Accepted>, String> {
    let mut keys = Vec::new();
    while !bytes.is_empty() {
        let (key, used) = decode(bytes)?;
        keys.push(key);
        bytes = &bytes[used..];
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_damage_is_an_error() {
        let mut bytes = Vec::new();
        encode("a", -1, b"{\"ok\":true}", &mut bytes);
        encode(&"z".repeat(255), i64::MAX, b"", &mut bytes);
        assert_eq!(
            bytes.len(),
            encoded_len("a", b"{\"ok\":true}") + encoded_len(&"z".repeat(255), b"")
        );
        let keys = decode_all(&bytes).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(
            (&*keys[0].key, keys[0].accepted_ms, &*keys[0].reply),
            ("a", -1, &b"{\"ok\":true}"[..])
        );
        assert_eq!(keys[1].key.len(), 255);
        for cut in 0..bytes.len() {
            let _ = decode_all(&bytes[..cut]);
        }
        assert!(decode_all(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_all(&[0]).is_err(), "an empty key");
    }
}
