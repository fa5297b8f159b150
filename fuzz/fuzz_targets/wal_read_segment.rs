//! `wal::read_segment` on arbitrary bytes: never panics; whatever it reads back passes
//! the same validation as ingest.
#![no_main]

use gatherer::ingest::validate_label;
use gatherer::wal::read_segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_segment(data, |label, _, _, _| {
        assert!(validate_label(label).is_ok());
    });
});
