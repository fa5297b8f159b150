//! `detect-csv`: runs a detector over `timestamp,value` CSV files (the Numenta Anomaly
//! Benchmark's format) and writes `timestamp,value,anomaly_score,label` files.
//!
//! This is how the quality of `crates/detect` is measured (`scripts/nab.sh`); it is also a
//! quick way to try a detector on an exported series. Each input file gets a fresh detector
//! and is read whole, but scored strictly in order: the score of row `t` depends on rows
//! `0..=t` only. The time spent inside the detector is measured separately from parsing and
//! writing and reported with `--bench`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use detect::{AutoConfig, AutoDetector, SigmaConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Method {
    /// The streaming detector (`detect::AutoDetector`).
    Auto,
    /// The brief's window method: the window includes the judged step.
    #[value(name = "three_sigma")]
    ThreeSigma,
    /// The window is the steps before the judged one.
    #[value(name = "last_point")]
    LastPoint,
}

/// Score `timestamp,value` CSV files with a Pulse detector.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Detection method.
    #[arg(long, value_enum, default_value = "auto")]
    method: Method,
    /// Input CSV files (header `timestamp,value`).
    #[arg(required_unless_present = "write_families")]
    inputs: Vec<PathBuf>,
    /// Instead of scoring, write the synthetic stress families (`detect::synth::families`)
    /// into this folder in the benchmark's layout (`data/<family>/<family>-<seed>.csv`,
    /// `labels/combined_windows.json`, `config/profiles.json`), for `nab_score.py`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["output", "out_dir"])]
    write_families: Option<PathBuf>,
    /// Series per family for `--write-families`.
    #[arg(long, default_value_t = 4)]
    seeds: u64,
    /// Output file (only with a single input; default: standard output).
    #[arg(short, long, conflicts_with = "out_dir")]
    output: Option<PathBuf>,
    /// Write one output per input into this directory, keeping the input's path relative to
    /// `--root` (default: just the file name) and prefixing the file name with `--prefix`.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// See `--out-dir`.
    #[arg(long)]
    root: Option<PathBuf>,
    /// See `--out-dir`.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Window length in steps for `three_sigma` / `last_point`.
    #[arg(long, default_value_t = 30)]
    window: usize,
    /// Print points, detector seconds and points per second to standard error.
    #[arg(long)]
    bench: bool,
    /// Debugging: append the expected value and deviation of `auto` as extra columns.
    #[arg(long, hide = true)]
    debug: bool,
    /// Experimental: set an internal knob of `auto` (`name=value`), repeatable.
    #[arg(long = "param", hide = true)]
    params: Vec<String>,
}

/// Seconds since the Unix epoch of a NAB timestamp `YYYY-MM-DD HH:MM:SS[.fff]` (UTC; a `T`
/// separator and plain unix seconds are accepted too).
fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<i64>() {
        return Some(secs);
    }
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[10] != b' ' && b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYY-MM-DD HH:MM:SS` of unix seconds (UTC; Howard Hinnant's `civil_from_days`).
fn format_timestamp(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Writes the stress families in the benchmark's layout under `dir`.
fn write_families(dir: &Path, seeds: u64) -> Result<()> {
    use detect::synth::families::Family;
    let mut labels = String::from("{");
    for family in Family::ALL {
        let name = family.name().replace(' ', "-");
        let folder = dir.join("data").join(&name);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        for seed in 1..=seeds {
            let series = family.generate(seed);
            let mut text = String::from("timestamp,value\n");
            for &(ts, v) in &series.points {
                let _ = writeln!(text, "{},{v}", format_timestamp(ts));
            }
            let file = format!("{name}-{seed}.csv");
            std::fs::write(folder.join(&file), text)
                .with_context(|| format!("writing {}", folder.join(&file).display()))?;
            let windows: Vec<String> = series
                .windows()
                .iter()
                .map(|&(a, b)| {
                    format!(
                        "[\"{}.000000\", \"{}.000000\"]",
                        format_timestamp(series.points[a].0),
                        format_timestamp(series.points[b].0)
                    )
                })
                .collect();
            if labels.len() > 1 {
                labels.push_str(",\n");
            }
            let _ = write!(labels, "\"{name}/{file}\": [{}]", windows.join(", "));
        }
    }
    labels.push_str("}\n");
    for (sub, file, text) in [
        ("labels", "combined_windows.json", labels.as_str()),
        ("config", "profiles.json", PROFILES),
    ] {
        let folder = dir.join(sub);
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        std::fs::write(folder.join(file), text)
            .with_context(|| format!("writing {}", folder.join(file).display()))?;
    }
    Ok(())
}

/// NAB's three cost profiles, as `nab_score.py` reads them.
const PROFILES: &str = r#"{
 "standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
 "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0}},
 "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}}
}
"#;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One parsed input row: the timestamp text is kept to be written back unchanged.
struct Row {
    stamp: String,
    ts: i64,
    value_text: String,
    value: f64,
}

fn read_rows(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let (Some(ti), Some(vi)) = (
        cols.iter().position(|c| *c == "timestamp"),
        cols.iter().position(|c| *c == "value"),
    ) else {
        bail!(
            "{}: header must have timestamp and value columns",
            path.display()
        );
    };
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(stamp), Some(value_text)) = (fields.get(ti), fields.get(vi)) else {
            bail!("{}:{}: missing column", path.display(), n + 2);
        };
        let ts = parse_timestamp(stamp)
            .with_context(|| format!("{}:{}: bad timestamp {stamp:?}", path.display(), n + 2))?;
        let value: f64 = value_text
            .trim()
            .parse()
            .with_context(|| format!("{}:{}: bad value {value_text:?}", path.display(), n + 2))?;
        rows.push(Row {
            stamp: stamp.trim().to_owned(),
            ts,
            value_text: value_text.trim().to_owned(),
            value,
        });
    }
    Ok(rows)
}

/// Maps a sigma deviation onto `[0, 1]`: `|d| / (|d| + 3)`, so the default alarm (3) is 0.5.
fn sigma_score(deviation: f64) -> f64 {
    let a = deviation.abs();
    if a.is_nan() {
        0.0
    } else if a.is_infinite() {
        1.0
    } else {
        a / (a + 3.0)
    }
}

fn score_rows(args: &Args, auto: &AutoConfig, rows: &[Row], extra: &mut Vec<String>) -> Vec<f64> {
    match args.method {
        Method::Auto => {
            let mut det = AutoDetector::new(auto.clone());
            rows.iter()
                .map(|r| {
                    let s = det.update(r.ts, r.value);
                    if args.debug {
                        extra.push(format!(",{},{},{:?}", s.expected, s.deviation, s.verdict));
                    }
                    s.score
                })
                .collect()
        }
        Method::ThreeSigma | Method::LastPoint => {
            let cfg = SigmaConfig::default();
            let n = args.window.max(2);
            let mut window: VecDeque<f64> = VecDeque::with_capacity(n + 1);
            let mut buf = Vec::with_capacity(n + 1);
            rows.iter()
                .map(|r| {
                    buf.clear();
                    buf.extend(window.iter().copied());
                    let j = if args.method == Method::ThreeSigma {
                        buf.push(r.value);
                        let start = buf.len().saturating_sub(n);
                        detect::sigma::three_sigma(&buf[start..], &cfg)
                    } else {
                        detect::sigma::last_point(&buf, r.value, &cfg)
                    };
                    window.push_back(r.value);
                    if window.len() > n {
                        window.pop_front();
                    }
                    j.map_or(0.0, |j| sigma_score(j.deviation))
                })
                .collect()
        }
    }
}

fn render(rows: &[Row], scores: &[f64], extra: &[String]) -> String {
    let mut out = String::with_capacity(rows.len() * 48);
    out.push_str("timestamp,value,anomaly_score,label");
    out.push_str(if extra.is_empty() {
        "\n"
    } else {
        ",expected,deviation,verdict\n"
    });
    for (i, (r, s)) in rows.iter().zip(scores).enumerate() {
        // Scores carry their resolution in the far tail: print all significant digits.
        let _ = write!(out, "{},{},{:e},0", r.stamp, r.value_text, s);
        out.push_str(extra.get(i).map_or("", String::as_str));
        out.push('\n');
    }
    out
}

fn output_path(args: &Args, input: &Path) -> Result<Option<PathBuf>> {
    let Some(dir) = &args.out_dir else {
        return Ok(args.output.clone());
    };
    let rel = match &args.root {
        Some(root) => input
            .strip_prefix(root)
            .with_context(|| format!("{} is not under {}", input.display(), root.display()))?
            .to_path_buf(),
        None => PathBuf::from(input.file_name().context("input has no file name")?),
    };
    let name = rel
        .file_name()
        .context("input has no file name")?
        .to_string_lossy();
    let mut out = dir.join(&rel);
    out.set_file_name(format!("{}{}", args.prefix, name));
    Ok(Some(out))
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.write_families {
        return write_families(dir, args.seeds);
    }
    if args.inputs.len() > 1 && args.out_dir.is_none() {
        bail!("several inputs need --out-dir");
    }
    let mut auto = AutoConfig::default();
    for p in &args.params {
        let (k, v) = p.split_once('=').context("--param takes name=value")?;
        let v: f64 = v
            .parse()
            .with_context(|| format!("--param {k}: bad number"))?;
        if !auto.tuning.set(k, v) {
            bail!("--param: unknown knob {k}");
        }
    }
    let mut points = 0usize;
    let mut spent = Duration::ZERO;
    let mut max_bytes = 0usize;
    for input in &args.inputs {
        let rows = read_rows(input)?;
        let started = Instant::now();
        let mut extra = Vec::new();
        let scores = score_rows(&args, &auto, &rows, &mut extra);
        spent += started.elapsed();
        points += rows.len();
        if args.bench && args.method == Method::Auto {
            let mut det = AutoDetector::new(auto.clone());
            for r in &rows {
                det.update(r.ts, r.value);
            }
            max_bytes = max_bytes.max(det.state_bytes());
        }
        let text = render(&rows, &scores, &extra);
        match output_path(&args, input)? {
            Some(path) => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            None => print!("{text}"),
        }
    }
    if args.bench {
        let secs = spent.as_secs_f64();
        eprintln!(
            "points={points} detector_seconds={secs:.6} points_per_second={:.0} max_state_bytes={max_bytes}",
            points as f64 / secs.max(1e-12)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nab_timestamps_parse_to_unix_seconds() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_timestamp("2014-04-01 00:05:00"), Some(1_396_310_700));
        assert_eq!(parse_timestamp("2000-03-01T12:00:00"), Some(951_912_000));
        assert_eq!(
            parse_timestamp("2011-07-01 00:15:01.000"),
            Some(1_309_479_301)
        );
        assert_eq!(parse_timestamp("1396310700"), Some(1_396_310_700));
        assert_eq!(parse_timestamp("2014-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn formatted_timestamps_parse_back() {
        for secs in [
            0,
            951_912_000,
            1_396_310_700,
            1_400_457_600 + 4031 * 300,
            -86_401,
        ] {
            assert_eq!(
                parse_timestamp(&format_timestamp(secs)),
                Some(secs),
                "{secs}"
            );
        }
        assert_eq!(format_timestamp(1_396_310_700), "2014-04-01 00:05:00");
    }

    #[test]
    fn sigma_scores_stay_in_the_unit_interval() {
        assert_eq!(sigma_score(0.0), 0.0);
        assert_eq!(sigma_score(-3.0), 0.5);
        assert_eq!(sigma_score(f64::INFINITY), 1.0);
        assert_eq!(sigma_score(f64::NAN), 0.0);
    }
}
