//! The Numenta Anomaly Benchmark's scoring rule, for labelled series scored in process.
//!
//! `../shared/nab/nab_score.py` is the reference (it reproduces NAB's own code); this is the
//! same rule in Rust so that tests can score a detector on seeded synthetic series
//! ([`crate::synth::families`]) in milliseconds, without files or Python:
//!
//! * the first `min(floor(15 % of the rows), 750)` rows of a series are a learning period
//!   and never scored;
//! * a row whose score reaches the threshold is a detection; inside a labelled window only
//!   the earliest detection counts, worth more the earlier it is (NAB's scaled sigmoid of
//!   the position); a window without one costs `fn_weight`;
//! * a detection outside every window costs `fp_weight`, less when it comes shortly after
//!   a window ends;
//! * one threshold for a whole corpus, and the score normalised so that a detector that
//!   never fires scores about 0 and a perfect one 100 (the "null" detector, a constant
//!   0.5, is the zero).

/// NAB's cost matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// Reward of a window's best detection (at the window's start).
    pub tp_weight: f64,
    /// Cost of a detection outside the windows.
    pub fp_weight: f64,
    /// Cost of a window without a detection.
    pub fn_weight: f64,
}

impl Costs {
    /// NAB's "Standard" profile.
    pub const STANDARD: Costs = Costs {
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 1.0,
    };
    /// NAB's "Reward low FP" profile.
    pub const LOW_FP: Costs = Costs {
        tp_weight: 1.0,
        fp_weight: 0.22,
        fn_weight: 1.0,
    };
    /// NAB's "Reward low FN" profile.
    pub const LOW_FN: Costs = Costs {
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 2.0,
    };
}

/// One scored series: a score per row and its labelled windows (inclusive row ranges,
/// sorted, not overlapping).
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    /// Anomaly score per row.
    pub scores: &'a [f64],
    /// Labelled windows as inclusive `(first, last)` row indices.
    pub windows: &'a [(usize, usize)],
}

/// NAB's scaled sigmoid: `2 / (1 + e^(5p)) - 1`, -1 far past a window.
fn scaled_sigmoid(p: f64) -> f64 {
    if p > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * p).exp()) - 1.0
    }
}

/// Rows of the learning period, never scored.
pub fn probation(rows: usize) -> usize {
    // NAB: min(floor(0.15 n), 0.15 * 5000), then the first ceil of that is skipped.
    ((rows as f64 * 0.15).floor()).min(750.0) as usize
}

/// NAB-style windows for anomalies starting at `onsets`: each centred on its onset, 10 % of
/// the series divided by the number of anomalies wide (at least 2 rows), clipped to the
/// series, overlapping ones merged, those starting inside the learning period dropped.
pub fn windows(rows: usize, onsets: &[usize]) -> Vec<(usize, usize)> {
    if onsets.is_empty() || rows == 0 {
        return Vec::new();
    }
    let width = ((rows as f64 * 0.1 / onsets.len() as f64) as usize).max(2);
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut sorted = onsets.to_vec();
    sorted.sort_unstable();
    for onset in sorted {
        let first = onset.saturating_sub(width / 2);
        let last = (first + width - 1).min(rows - 1);
        match out.last_mut() {
            Some(prev) if first <= prev.1 => prev.1 = prev.1.max(last),
            _ => out.push((first, last)),
        }
    }
    let learning = probation(rows);
    out.retain(|w| w.0 >= learning);
    out
}

/// Per scored row: the window it belongs to (or none) and its unweighted value.
fn row_values(rows: usize, windows: &[(usize, usize)]) -> Vec<(Option<usize>, f64)> {
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = vec![(None, -1.0); rows];
    let mut prev: Option<(usize, f64)> = None;
    let mut next = 0;
    let mut i = 0;
    while i < rows {
        if let Some(&(a, b)) = windows.get(next) {
            if i == a {
                let width = (b - a + 1) as f64;
                for (j, slot) in out.iter_mut().enumerate().take(b.min(rows - 1) + 1).skip(a) {
                    let pos = -((b - j + 1) as f64) / width;
                    *slot = (Some(next), scaled_sigmoid(pos) / max_tp);
                }
                prev = Some((b, width));
                next += 1;
                i = b + 1;
                continue;
            }
        }
        out[i].1 = match prev {
            None => -1.0,
            Some((_, width)) if width <= 1.0 => -1.0,
            Some((b, width)) => scaled_sigmoid((i - b) as f64 / (width - 1.0)),
        };
        i += 1;
    }
    out
}

/// Raw NAB score of one series at `threshold`.
pub fn raw_score(series: Scored<'_>, threshold: f64, costs: Costs) -> f64 {
    let rows = series.scores.len();
    let values = row_values(rows, series.windows);
    let mut best: Vec<Option<f64>> = vec![None; series.windows.len()];
    let mut fp = 0.0;
    let start = probation(rows);
    for (&(window, unit), &score) in values.iter().zip(series.scores).skip(start) {
        let hit = score >= threshold;
        match window {
            Some(w) => {
                let slot = best[w].get_or_insert(-costs.fn_weight);
                if hit {
                    *slot = slot.max(unit * costs.tp_weight);
                }
            }
            None if hit => fp += unit * costs.fp_weight,
            None => {}
        }
    }
    fp + best.iter().flatten().sum::<f64>()
}

/// The corpus-wide threshold that maximises the raw score, and that score.
pub fn best_threshold(corpus: &[Scored<'_>], costs: Costs) -> (f64, f64) {
    // (score, global window id or none, value) of every scored row.
    let mut points = Vec::new();
    let mut windows_seen = std::collections::HashSet::new();
    let mut base = 0;
    for series in corpus {
        let rows = series.scores.len();
        let values = row_values(rows, series.windows);
        let start = probation(rows);
        for (&(window, unit), &score) in values.iter().zip(series.scores).skip(start) {
            match window {
                Some(w) => {
                    windows_seen.insert(base + w);
                    points.push((score, Some(base + w), unit * costs.tp_weight));
                }
                None => points.push((score, None, unit * costs.fp_weight)),
            }
        }
        base += series.windows.len();
    }
    points.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut best_in_window: std::collections::HashMap<usize, f64> = Default::default();
    let mut total = -costs.fn_weight * windows_seen.len() as f64;
    let mut best = (f64::INFINITY, total);
    let mut j = 0;
    while j < points.len() {
        let threshold = points[j].0;
        while j < points.len() && points[j].0 == threshold {
            let (_, window, value) = points[j];
            match window {
                None => total += value,
                Some(w) => {
                    let old = best_in_window.entry(w).or_insert(-costs.fn_weight);
                    if value > *old {
                        total += value - *old;
                        *old = value;
                    }
                }
            }
            j += 1;
        }
        if total > best.1 {
            best = (threshold, total);
        }
    }
    best
}

/// The normalised score (0: the null detector, 100: perfect) of a corpus at `threshold`,
/// or at its best threshold when `None`; returns the score and the threshold used.
pub fn normalised(corpus: &[Scored<'_>], threshold: Option<f64>, costs: Costs) -> (f64, f64) {
    let nulls: Vec<Vec<f64>> = corpus.iter().map(|s| vec![0.5; s.scores.len()]).collect();
    let null_corpus: Vec<Scored<'_>> = corpus
        .iter()
        .zip(&nulls)
        .map(|(s, n)| Scored {
            scores: n,
            windows: s.windows,
        })
        .collect();
    let (_, null_raw) = best_threshold(&null_corpus, costs);
    let (threshold, raw) = match threshold {
        Some(t) => (t, corpus.iter().map(|s| raw_score(*s, t, costs)).sum()),
        None => best_threshold(corpus, costs),
    };
    let perfect = costs.tp_weight * corpus.iter().map(|s| s.windows.len()).sum::<usize>() as f64;
    (100.0 * (raw - null_raw) / (perfect - null_raw), threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two series of 200 rows (30 rows of probation), windows and scores such that every
    /// branch counts: an early and a late hit, a miss, false positives before any window,
    /// right after one and long after one. Expected values from `nab_score.py`.
    type Windows = Vec<Vec<(usize, usize)>>;

    fn corpus() -> (Vec<Vec<f64>>, Windows) {
        let mut a = vec![0.0; 200];
        a[10] = 0.9; // probation: not scored
        a[40] = 0.6; // before any window: a full false positive
        a[62] = 0.8; // window 50..=69, late hit
        a[75] = 0.7; // just after the window: a cheap false positive
        a[150] = 0.95; // long after: a full false positive
        let mut b = vec![0.0; 200];
        b[101] = 0.5; // window 100..=139, early hit
        b[120] = 0.99; // later in the same window: counts nothing more
        (
            vec![a, b],
            vec![vec![(50, 69)], vec![(100, 139), (160, 179)]],
        )
    }

    #[test]
    fn scores_match_the_reference_scorer() {
        let (scores, windows) = corpus();
        let corpus: Vec<Scored<'_>> = scores
            .iter()
            .zip(&windows)
            .map(|(s, w)| Scored {
                scores: s,
                windows: w,
            })
            .collect();
        let (score, threshold) = normalised(&corpus, None, Costs::STANDARD);
        assert_eq!(threshold, 0.8);
        assert!((score - 58.695_325_112_2).abs() < 1e-6, "{score}");
        let (at_07, _) = normalised(&corpus, Some(0.7), Costs::STANDARD);
        assert!((at_07 - 57.488_788_689_5).abs() < 1e-6, "{at_07}");
        let (low_fn, _) = normalised(&corpus, None, Costs::LOW_FN);
        assert!((low_fn - 61.352_438_963_7).abs() < 1e-6, "{low_fn}");
    }

    #[test]
    fn windows_are_centred_merged_and_clear_of_the_learning_period() {
        assert_eq!(windows(1000, &[500]), vec![(450, 549)]);
        assert_eq!(windows(1000, &[500, 520]), vec![(475, 544)]);
        // Starts inside the 150 learning rows: dropped.
        assert_eq!(windows(1000, &[160, 700]), vec![(675, 724)]);
        assert!(windows(1000, &[]).is_empty());
    }
}
