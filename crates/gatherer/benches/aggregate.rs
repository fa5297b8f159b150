//! The aggregation core alone: events per second per core through `Aggregator::record`,
//! against the same sums kept in one plain `HashMap` in the same run (the floor any
//! per-series aggregation pays), for few and for many distinct series.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gatherer::bucket::Aggregator;

const EVENTS: u64 = 100_000;

fn events(series: u64) -> Vec<(String, i64, i64)> {
    (0..EVENTS)
        .map(|i| {
            let s = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) % series;
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
        let input = events(series);
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
                        aggregator.record(label, *id, *value, 1_795_000_000_000);
                    }
                    black_box(aggregator.drain_all().len())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, aggregate);
criterion_main!(benches);
