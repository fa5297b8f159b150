//! Throughput of the detectors, against a plain EWMA z-score measured in the same run.
//!
//! `cargo bench -p detect --bench detect` first prints a quick table (points per second and
//! the ratio to the baseline: how many times slower than the simplest streaming detector
//! each one is), then runs the criterion groups, which report throughput in elements/s.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use detect::sigma::{self, SigmaConfig, SigmaMethod};
use detect::{AutoConfig, AutoDetector};

const POINTS: usize = 100_000;
const STEP: i64 = 300;

/// A NAB-like series: daily wave, noise, a few spikes and a level shift (deterministic).
fn series() -> Vec<(i64, f64)> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    (0..POINTS)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let ts = 1_400_000_000 + i as i64 * STEP;
            let day = (ts % 86_400) as f64 / 86_400.0 * std::f64::consts::TAU;
            let mut v = 100.0 + 40.0 * day.sin() + 10.0 * noise;
            if i % 5003 == 0 {
                v += 200.0;
            }
            if i > POINTS / 2 {
                v += 30.0;
            }
            (ts, v)
        })
        .collect()
}

/// The baseline: exponentially weighted mean and variance, score = |z|.
fn ewma_z(data: &[(i64, f64)]) -> f64 {
    let (mut mean, mut var, mut acc) = (data[0].1, 1.0_f64, 0.0);
    for &(_, v) in data {
        let z = (v - mean) / var.sqrt().max(1e-9);
        acc += z.abs();
        let d = v - mean;
        mean += 0.05 * d;
        var = 0.95 * (var + 0.05 * d * d);
    }
    acc
}

fn auto(data: &[(i64, f64)]) -> f64 {
    let mut det = AutoDetector::new(AutoConfig::default());
    data.iter().map(|&(ts, v)| det.update(ts, v).score).sum()
}

/// `three_sigma` over a 30-step window, as the analyser runs it per step.
fn three_sigma(data: &[(i64, f64)]) -> f64 {
    let cfg = SigmaConfig::default();
    let mut acc = 0.0;
    for i in 1..data.len() {
        let history: Vec<f64> = data[i.saturating_sub(30)..i].iter().map(|p| p.1).collect();
        if let Some(j) = sigma::judge(SigmaMethod::ThreeSigma, &history, data[i].1, 30, &cfg) {
            acc += j.deviation.abs().min(1e9);
        }
    }
    acc
}

fn points_per_second(f: fn(&[(i64, f64)]) -> f64, data: &[(i64, f64)]) -> f64 {
    black_box(f(black_box(data))); // warm up
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        black_box(f(black_box(data)));
    }
    (runs * data.len()) as f64 / start.elapsed().as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let data = series();
    let base = points_per_second(ewma_z, &data);
    println!("baseline ewma_z: {:>12.0} points/s", base);
    for (name, f) in [
        ("auto", auto as fn(&[(i64, f64)]) -> f64),
        ("three_sigma", three_sigma),
    ] {
        let pps = points_per_second(f, &data);
        println!(
            "{name:>15}: {pps:>12.0} points/s, {:.1}x the baseline's time per point",
            base / pps
        );
    }
    let mut det = AutoDetector::new(AutoConfig::default());
    for &(ts, v) in &data {
        det.update(ts, v);
    }
    println!("auto state: {} bytes per series", det.state_bytes());

    let mut g = c.benchmark_group("detect");
    g.throughput(Throughput::Elements(data.len() as u64));
    g.sample_size(10);
    g.bench_function("baseline_ewma_z", |b| b.iter(|| ewma_z(black_box(&data))));
    g.bench_function("auto", |b| b.iter(|| auto(black_box(&data))));
    g.bench_function("three_sigma_30", |b| {
        b.iter(|| three_sigma(black_box(&data)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
