//! `ingest::parse_body` on arbitrary bytes: never panics, and every accepted event passes
//! validation. The first byte picks the framing.
#![no_main]

use gatherer::ingest::{parse_body, validate_label, Framing, TimeRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (framing, body) = match data.split_first() {
        Some((first, rest)) if first & 1 == 1 => (Framing::Ndjson, rest),
        Some((_, rest)) => (Framing::Json, rest),
        None => (Framing::Json, data),
    };
    let rules = TimeRules {
        now_ms: 1_795_000_000_000,
        max_age_ms: 600_000,
    };
    if let Ok(parsed) = parse_body(body, framing, &rules) {
        for event in &parsed.events {
            assert!(validate_label(&event.label).is_ok());
            assert!(event.at_ms <= rules.now_ms + 60_000);
        }
        assert!(parsed.rejected.len() <= parsed.rejected_total);
    }
});
