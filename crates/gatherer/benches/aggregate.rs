//! The aggregation core alone: events per second per core through the aggregator, against
//! the same sums kept in one plain `HashMap` in the same run (the floor any per-series
//! aggregation pays), for few and for many distinct series; one event at a time
//! (`record`) and a request's batch at a time (`record_all`).
//!
//! Before the timings it prints the heap bytes held per open series, counted by the
//! allocator, against the same plain `HashMap` (owned label, id, totals).

use std::alloc::System;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::SystemTime;

use cap::Cap;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use gatherer::bucket::{Aggregator, Totals};

/// The system allocator, counting the bytes currently allocated.
#[global_allocator]
static ALLOCATED: Cap<System> = Cap::new(System, usize::MAX);

const EVENTS: u64 = 100_000;
const AT_MS: i64 = 1_795_000_000_000;

/// `n` events spread over `series` distinct (label, id), as bench.lua's labels look.
fn events(n: u64, series: u64) -> Vec<(String, i64, i64)> {
    (0..n)
        .map(|i| {
            let s = if n == series {
                i
            } else {
                (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % series
            };
            (
                format!("label{}", s % 90 + 10),
                (s / 90) as i64,
                (i % 100) as i64,
            )
        })
        .collect()
}

fn aggregate(c: &mut Criterion) {
    let mut group = c.benchmark_group("aggregate");
    group.throughput(Throughput::Elements(EVENTS));
    for series in [100u64, 100_000] {
        let input = events(EVENTS, series);
        group.bench_with_input(
            BenchmarkId::new("hashmap_baseline", series),
            &input,
            |b, input| {
                b.iter(|| {
                    let mut sums: HashMap<(&str, i64), (i64, u32)> = HashMap::new();
                    for (label, id, value) in input {
                        let entry = sums.entry((label.as_str(), *id)).or_default();
                        entry.0 += value;
                        entry.1 += 1;
                    }
                    black_box(sums.len())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("aggregator_record", series),
            &input,
            |b, input| {
                b.iter(|| {
                    let aggregator = Aggregator::new(2, 32);
                    for (label, id, value) in input {
                        aggregator.record(label, *id, *value, AT_MS);
                    }
                    black_box(aggregator.drain_all().len())
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("aggregator_record_all_1000", series),
            &input,
            |b, input| {
                b.iter(|| {
                    let aggregator = Aggregator::new(2, 32);
                    for request in input.chunks(1000) {
                        aggregator
                            .record_all(request, |(label, id, value)| (label, *id, *value, AT_MS));
                    }
                    black_box(aggregator.drain_all().len())
                })
            },
        );
    }
    group.finish();
}

/// Heap bytes per open series once `series` distinct series are open.
fn bytes_per_series() {
    println!("heap bytes per open series (allocator count; plain HashMap<(String, i64), Totals> in brackets)");
    for series in [100_000u64, 1_000_000] {
        let input = events(series, series);
        let before = ALLOCATED.allocated();
        let aggregator = Aggregator::new(2, 32);
        for (label, id, value) in &input {
            aggregator.record(label, *id, *value, AT_MS);
        }
        let held = ALLOCATED.allocated() - before;
        // The same rows drained into a batch, as they wait for MySQL during an outage: the
        // vector of deltas (their labels are the aggregator's shared copies).
        let deltas = aggregator.drain_all();
        let queued = deltas.capacity() * std::mem::size_of::<gatherer::bucket::Delta>();
        drop(deltas);
        drop(aggregator);
        let before = ALLOCATED.allocated();
        let mut plain: HashMap<(String, i64), Totals> = HashMap::new();
        for (label, id, value) in &input {
            plain.insert(
                (label.clone(), *id),
                Totals {
                    sum: *value,
                    events: 1,
                    min: *value,
                    max: *value,
                },
            );
        }
        let baseline = ALLOCATED.allocated() - before;
        drop(plain);
        println!(
            "  {series:>9} series: {:.1} bytes [{:.1}], ratio {:.2}; drained into a batch waiting for MySQL: {:.1} bytes a row",
            held as f64 / series as f64,
            baseline as f64 / series as f64,
            held as f64 / baseline as f64,
            queued as f64 / series as f64
        );
    }
}

/// Million events per second of one benchmark of this run, from criterion's estimates
/// (`None` when it did not run in this run, e.g. filtered out: its file is older).
fn million_per_second(id: &str, series: u64, run_started: SystemTime) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    let path = target.join(format!(
        "criterion/aggregate/{id}/{series}/new/estimates.json"
    ));
    if std::fs::metadata(&path).ok()?.modified().ok()? < run_started {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let nanos = estimates["mean"]["point_estimate"].as_f64()?;
    Some(EVENTS as f64 / nanos * 1e3)
}

fn print_ratios(run_started: SystemTime) {
    println!("\n| series | plain HashMap, M events/s | record | ratio | record_all (1 000 per call) | ratio |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for series in [100u64, 100_000] {
        let (Some(base), Some(one), Some(all)) = (
            million_per_second("hashmap_baseline", series, run_started),
            million_per_second("aggregator_record", series, run_started),
            million_per_second("aggregator_record_all_1000", series, run_started),
        ) else {
            continue;
        };
        println!(
            "| {series} | {base:.1} | {one:.1} | {:.2} | {all:.1} | {:.2} |",
            one / base,
            all / base
        );
    }
}

/// Heap bytes per idempotency key held, for UUID keys and the reply of a single event.
fn bytes_per_idempotency_key() {
    use gatherer::idempotency::{Accepted, KeyStore};
    let keys = 200_000usize;
    let reply: std::sync::Arc<[u8]> = std::sync::Arc::from(&br#"{"ok":true,"accepted":1}"#[..]);
    let before = ALLOCATED.allocated();
    let store = KeyStore::new(std::time::Duration::from_secs(600), keys);
    for i in 0..keys {
        let key = format!("{:08x}-{:04x}-4000-8000-{:012x}", i * 7_919, i % 65_536, i);
        let accepted = Accepted {
            key: key.into(),
            accepted_ms: AT_MS,
            reply: reply.clone(),
        };
        store.restore(accepted, true, AT_MS);
    }
    let held = ALLOCATED.allocated() - before;
    println!(
        "heap bytes per idempotency key (UUID, single-event reply), {keys} keys: {:.1}",
        held as f64 / keys as f64
    );
    drop(store);
}

criterion_group!(benches, aggregate);

fn main() {
    let run_started = SystemTime::now();
    bytes_per_series();
    bytes_per_idempotency_key();
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios(run_started);
}
