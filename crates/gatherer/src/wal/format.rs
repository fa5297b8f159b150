//! The log's bytes: the record format, the segment header and the segment reader, and the
//! names of segment files and drain batches. Pure: the fuzz target reads segments here.

use super::WalError;
use crate::idempotency::{self, Accepted};
use crate::ingest::ValidEvent;
#[cfg(test)]
use crate::label::Label;

const MAGIC: &[u8; 8] = b"PULSEWAL";
/// Written: 2 (records end with the request's idempotency key). Read: 1 and 2.
const VERSION: u8 = 2;
pub(super) const HEADER_LEN: usize = MAGIC.len() + 1 + 4;
const RECORD_HEADER_LEN: usize = 8;
/// Bytes of one encoded event besides its label: length byte, id, value, time.
const EVENT_FIXED_LEN: usize = 1 + 8 + 8 + 8;
/// A record larger than this is refused when written and read as damage.
pub const MAX_RECORD_LEN: usize = 1 << 30;
const EXTENSION: &str = "wal";

/// A segment that cannot be replayed: the start stops with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Corruption(pub String);

/// The idempotency key a record carries: the key, when it was accepted, and the reply.
#[derive(Debug, Clone, Copy)]
pub struct RecordKey<'a> {
    pub key: &'a str,
    pub accepted_ms: i64,
    pub reply: &'a [u8],
}

/// Appends the record of one request's events (and its idempotency key) to `out`.
pub fn encode_record(
    events: &[ValidEvent<'_>],
    key: Option<RecordKey<'_>>,
    out: &mut Vec<u8>,
) -> Result<(), WalError> {
    let key_len = key.map_or(1, |k| idempotency::encoded_len(k.key, k.reply));
    let payload_len = 4
        + events
            .iter()
            .map(|e| EVENT_FIXED_LEN + e.label.len())
            .sum::<usize>()
        + key_len;
    if payload_len > MAX_RECORD_LEN {
        return Err(WalError::TooLarge(payload_len));
    }
    out.reserve(RECORD_HEADER_LEN + payload_len);
    // Both fit u32: payload_len <= MAX_RECORD_LEN < 2^32, so the count does too.
    let len_bytes = (payload_len as u32).to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(events.len() as u32).to_le_bytes());
    for event in events {
        let label = event.label.as_bytes();
        // A validated label is at most 50 characters, 200 bytes.
        out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&label[..label.len().min(255)]);
        out.extend_from_slice(&event.id.to_le_bytes());
        out.extend_from_slice(&event.value.to_le_bytes());
        out.extend_from_slice(&event.at_ms.to_le_bytes());
    }
    match key {
        Some(k) => idempotency::encode(k.key, k.accepted_ms, k.reply, out),
        None => out.push(0),
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(&out[start + RECORD_HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.finalize().to_le_bytes());
    Ok(())
}

/// The header every segment starts with.
pub fn segment_header(bucket_seconds: u32) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8] = VERSION;
    header[9..].copy_from_slice(&bucket_seconds.to_le_bytes());
    header
}

/// What reading a segment found besides its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSummary {
    /// The bucket width the segment was written with (None: the header itself was torn).
    pub bucket_seconds: Option<u32>,
    pub records: usize,
    pub events: u64,
    /// Bytes of a torn last record that were dropped.
    pub torn_bytes: usize,
}

/// Reads a segment, calling `visit(label, id, value, at_ms)` for every event of every
/// intact record. Pure: the fuzz target reads segments through it.
pub fn read_segment(
    bytes: &[u8],
    visit: impl FnMut(&str, i64, i64, i64),
) -> Result<SegmentSummary, Corruption> {
    read_segment_with_keys(bytes, visit, |_| {})
}

/// [`read_segment`], also calling `visit_key` with the idempotency key of every intact
/// record that has one. Pure: the replay reads segments through it.
pub fn read_segment_with_keys(
    bytes: &[u8],
    mut visit: impl FnMut(&str, i64, i64, i64),
    mut visit_key: impl FnMut(Accepted),
) -> Result<SegmentSummary, Corruption> {
    let mut summary = SegmentSummary {
        bucket_seconds: None,
        records: 0,
        events: 0,
        torn_bytes: 0,
    };
    if bytes.len() < HEADER_LEN {
        // A crash while the header was written: a prefix of a header, or zeros.
        let expected = segment_header(0);
        let prefix = bytes.len().min(9);
        if bytes[..prefix] == expected[..prefix] || bytes.iter().all(|&b| b == 0) {
            summary.torn_bytes = bytes.len();
            return Ok(summary);
        }
        return Err(Corruption("the segment header is damaged".into()));
    }
    let version = bytes[8];
    if &bytes[..8] != MAGIC || !(1..=VERSION).contains(&version) {
        return Err(Corruption(
            "not a Pulse write-ahead log segment (bad magic or version)".into(),
        ));
    }
    let bucket_seconds = u32::from_le_bytes([bytes[9], bytes[10], bytes[11], bytes[12]]);
    if bucket_seconds == 0 {
        return Err(Corruption(
            "the segment header has a zero bucket width".into(),
        ));
    }
    summary.bucket_seconds = Some(bucket_seconds);
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        match split_record(rest) {
            Ok((payload, used)) => {
                summary.events += decode_payload(payload, version, &mut visit, &mut visit_key)
                    .map_err(|e| Corruption(format!("record at byte {pos}: {e}")))?;
                summary.records += 1;
                pos += used;
            }
            Err(RecordError::Incomplete) => {
                summary.torn_bytes = rest.len();
                break;
            }
            Err(RecordError::Bad { claimed_end, what }) => {
                // A torn last write: it ends the file, or only zeros follow (a file
                // extended but never written).
                if claimed_end == Some(rest.len()) || rest.iter().all(|&b| b == 0) {
                    summary.torn_bytes = rest.len();
                    break;
                }
                return Err(Corruption(format!("record at byte {pos}: {what}")));
            }
        }
    }
    Ok(summary)
}

enum RecordError {
    /// The record runs past the end of the file.
    Incomplete,
    /// The record is damaged; `claimed_end` is where it says it ends.
    Bad {
        claimed_end: Option<usize>,
        what: &'static str,
    },
}

fn split_record(rest: &[u8]) -> Result<(&[u8], usize), RecordError> {
    if rest.len() < RECORD_HEADER_LEN {
        return Err(RecordError::Incomplete);
    }
    let len_bytes = [rest[0], rest[1], rest[2], rest[3]];
    let len = u32::from_le_bytes(len_bytes) as usize;
    if !(4..=MAX_RECORD_LEN).contains(&len) {
        return Err(RecordError::Bad {
            claimed_end: None,
            what: "impossible record length",
        });
    }
    let end = RECORD_HEADER_LEN + len;
    if rest.len() < end {
        return Err(RecordError::Incomplete);
    }
    let stored = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
    let payload = &rest[RECORD_HEADER_LEN..end];
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len_bytes);
    crc.update(payload);
    if crc.finalize() != stored {
        return Err(RecordError::Bad {
            claimed_end: Some(end),
            what: "checksum mismatch",
        });
    }
    Ok((payload, end))
}

fn decode_payload(
    payload: &[u8],
    version: u8,
    visit: &mut impl FnMut(&str, i64, i64, i64),
    visit_key: &mut impl FnMut(Accepted),
) -> Result<u64, String> {
    let mut reader = Reader(payload);
    let count = reader.u32()?;
    for _ in 0..count {
        let label_len = usize::from(reader.take(1)?[0]);
        let label = std::str::from_utf8(reader.take(label_len)?)
            .map_err(|_| "label is not UTF-8".to_owned())?;
        let id = reader.i64()?;
        let value = reader.i64()?;
        let at_ms = reader.i64()?;
        visit(label, id, value, at_ms);
    }
    if version >= 2 {
        if reader.0.first() == Some(&0) {
            reader.take(1)?;
        } else {
            let (key, used) = idempotency::decode(reader.0)?;
            reader.take(used)?;
            visit_key(key);
        }
    }
    if !reader.0.is_empty() {
        return Err("bytes after the last event".into());
    }
    Ok(u64::from(count))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("record shorter than its events".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, String> {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(self.take(8)?);
        Ok(i64::from_le_bytes(bytes))
    }
}

/// The batch id of one drain of one epoch: deterministic, so that a replay recognises
/// what committed.
pub fn batch_id(instance: &str, epoch: u64, threshold_ms: i64) -> String {
    format!("w{instance}-{epoch}-{threshold_ms}")
}

/// Parses `w<instance>-<epoch>-<threshold>`.
pub fn parse_batch_id(id: &str) -> Option<(&str, u64, i64)> {
    let rest = id.strip_prefix('w')?;
    let (instance, rest) = rest.split_once('-')?;
    let (epoch, threshold) = rest.split_once('-')?;
    Some((instance, epoch.parse().ok()?, threshold.parse().ok()?))
}

/// `<instance>-<epoch>.wal`, with the epoch zero-padded so names sort in order.
pub(super) fn segment_name(instance: &str, epoch: u64) -> String {
    format!("{instance}-{epoch:020}.{EXTENSION}")
}

pub(super) fn parse_segment_name(name: &str) -> Option<(String, u64)> {
    let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
    let (instance, epoch) = stem.split_once('-')?;
    if instance.is_empty() || !instance.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((instance.to_owned(), epoch.parse().ok()?))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    pub(in crate::wal) fn event(label: &str, id: i64, value: i64, at_ms: i64) -> ValidEvent<'_> {
        ValidEvent {
            label: Label::parse(label).unwrap(),
            id,
            value,
            at_ms,
        }
    }

    fn segment(records: &[&[ValidEvent<'_>]]) -> Vec<u8> {
        let mut bytes = segment_header(2).to_vec();
        for events in records {
            encode_record(events, None, &mut bytes).unwrap();
        }
        bytes
    }

    pub(in crate::wal) type Events = Vec<(String, i64, i64, i64)>;

    pub(in crate::wal) fn read(bytes: &[u8]) -> Result<(SegmentSummary, Events), Corruption> {
        let mut events = Vec::new();
        let summary = read_segment(bytes, |l, i, v, t| events.push((l.to_owned(), i, v, t)))?;
        Ok((summary, events))
    }

    #[test]
    fn records_round_trip() {
        let bytes = segment(&[
            &[event("a", 1, -5, 10), event("ü", i64::MIN, i64::MAX, -1)],
            &[event("b", 2, 3, 4)],
        ]);

        let (summary, events) = read(&bytes).unwrap();
        assert_eq!(summary.records, 2);
        assert_eq!(summary.bucket_seconds, Some(2));
        assert_eq!(summary.torn_bytes, 0);
        assert_eq!(
            events,
            vec![
                ("a".into(), 1, -5, 10),
                ("ü".into(), i64::MIN, i64::MAX, -1),
                ("b".into(), 2, 3, 4)
            ]
        );
    }

    #[test]
    fn idempotency_keys_round_trip_and_version_1_segments_still_read() {
        let mut bytes = segment_header(2).to_vec();
        let key = RecordKey {
            key: "retry-7",
            accepted_ms: 1_795_000_000_123,
            reply: br#"{"ok":true,"accepted":1}"#,
        };
        encode_record(&[event("a", 1, 5, 10)], Some(key), &mut bytes).unwrap();
        encode_record(&[event("b", 2, 6, 10)], None, &mut bytes).unwrap();
        let mut keys = Vec::new();
        let summary = read_segment_with_keys(&bytes, |_, _, _, _| {}, |k| keys.push(k)).unwrap();
        assert_eq!((summary.records, summary.events), (2, 2));
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (&*keys[0].key, keys[0].accepted_ms, &*keys[0].reply),
            (key.key, key.accepted_ms, key.reply)
        );

        // Version 1: the same records without the key byte.
        let mut v1 = segment_header(2).to_vec();
        v1[8] = 1;
        let mut payload = 1u32.to_le_bytes().to_vec();
        payload.push(1);
        payload.extend_from_slice(b"a");
        for n in [1i64, 5, 10] {
            payload.extend_from_slice(&n.to_le_bytes());
        }
        let len = (payload.len() as u32).to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len);
        crc.update(&payload);
        v1.extend_from_slice(&len);
        v1.extend_from_slice(&crc.finalize().to_le_bytes());
        v1.extend_from_slice(&payload);
        assert_eq!(read(&v1).unwrap().1, vec![("a".into(), 1, 5, 10)]);
    }

    #[test]
    fn a_torn_last_record_is_dropped_at_every_cut() {
        let whole = segment(&[&[event("a", 1, 1, 0)], &[event("b", 2, 2, 0)]]);
        let first_end = segment(&[&[event("a", 1, 1, 0)]]).len();
        for cut in first_end..whole.len() {
            let (summary, events) = read(&whole[..cut]).unwrap();
            assert_eq!(events.len(), 1, "cut at {cut}");
            assert_eq!(summary.torn_bytes, cut - first_end);
        }
        for cut in 0..HEADER_LEN {
            assert_eq!(read(&whole[..cut]).unwrap().0.records, 0);
        }
        // Zeros after the last record: a file extended but never written.
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(read(&zeros).unwrap().1.len(), 2);
        // The last record garbled in place (its length intact): torn, dropped.
        let mut garbled = whole.clone();
        let last = garbled.len() - 3;
        garbled[last] ^= 0xff;
        assert_eq!(read(&garbled).unwrap().1.len(), 1);
    }

    #[test]
    fn damage_before_the_last_record_is_corruption() {
        let mut bytes = segment(&[&[event("a", 1, 1, 0)], &[event("b", 2, 2, 0)]]);
        bytes[HEADER_LEN + RECORD_HEADER_LEN + 6] ^= 0x01;
        let error = read(&bytes).unwrap_err();
        assert!(error.0.contains("checksum"), "{error}");
        let mut bad_magic = segment(&[&[event("a", 1, 1, 0)]]);
        bad_magic[0] = b'X';
        assert!(read(&bad_magic).is_err());
    }

    #[test]
    fn batch_ids_parse_back_and_fit_the_column() {
        let id = batch_id("0123456789abcdef", u64::MAX, i64::MAX);
        assert!(id.len() <= 64, "{id}");
        assert_eq!(
            parse_batch_id(&id),
            Some(("0123456789abcdef", u64::MAX, i64::MAX))
        );
        assert_eq!(parse_batch_id("0123-4"), None);
        assert_eq!(
            parse_segment_name(&segment_name("00ff", 7)),
            Some(("00ff".to_owned(), 7))
        );
    }
}
