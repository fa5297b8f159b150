//! Reading the log back at start: every segment left on disk, summed into an aggregator.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{parse_segment_name, read_segment_with_keys, Corruption, SegmentSummary};
use crate::bucket::Aggregator;
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
