//! `wal::read_segment` on arbitrary bytes: never panics, whatever it is given. Labels are
//! checked once, when a request is parsed (`gatherer::label::Label`); the log holds only
//! those, behind a checksum, and its reader does not check them again.
#![no_main]

use gatherer::wal::read_segment;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = read_segment(data, |_, _, _, _| {});
});
