//! `export::ExportQuery::parse` on arbitrary parameters: never panics, and an accepted
//! query keeps its rules.
#![no_main]

use gatherer::export::{ExportQuery, RawParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    |params: (Option<&str>, Option<&str>, Option<&str>, Option<&str>)| {
        let (from, to, iterator, limit) = params;
        let raw = RawParams {
            from,
            to,
            iterator,
            limit,
        };
        if let Ok(query) = ExportQuery::parse(raw, 500, 10_000) {
            assert!((1..=10_000).contains(&query.limit));
            if let (Some(from), Some(to)) = (query.from, query.to) {
                assert!(from <= to);
            }
        }
    }
);
