#!/usr/bin/env python3
"""Leave-one-category-out scores of a detector on the NAB development set.

For each category with labelled windows: the Standard threshold is chosen on the other
categories (artificialNoAnomaly included), the held-out category is scored at that fixed
threshold, normalised against the null detector on that category, exactly as
nab_score.py --labels <subset> --thresholds <file> would. Published figures of ARTime,
Numenta HTM and contextOSE on the same split (from NAB_DIR/README.md) are printed beside.
Optionally scores other corpora in NAB's layout with their own corpus-wide threshold.

With --held-out NAME (a corpus given with --corpus, repeatable) it also prints the table
the keep/reject rule of docs/DETECT.md reads: every NAB category with windows and every
such corpus is a held-out category in turn, scored at the threshold chosen on all the
other data. That threshold maximises the sum of the normalised Standard scores of the
corpora on the fitting side (the NAB development set without the held category, pooled as
NAB pools it, and each other held-out corpus), so every corpus weighs the same in the
choice whatever its number of windows.

Usage (scripts/nab.sh --cv runs it):
  nab_cv.py --nab-dir DIR RESULTS_DIR [--corpus NAME ROOT RESULTS_DIR ...] [--held-out NAME ...]
"""

import argparse
import math
import os
import sys

# Published results on this split (../shared/nab/README.md, "Leave one category out").
PUBLISHED = {
    "artificialWithAnomaly": (70.35, 70.22, 73.00),
    "realAWSCloudwatch": (69.48, 73.42, 71.52),
    "realAdExchange": (61.86, 70.21, 72.02),
    "realTraffic": (86.86, 82.45, 84.07),
}
PUBLISHED_NAMES = ("ARTime", "HTM", "contextOSE")
PUBLISHED_MEAN = (72.13, 74.08, 75.15)
PUBLISHED_WORST = (61.86, 70.21, 71.52)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results", help="results/<detector> folder on the NAB development set")
    ap.add_argument("--nab-dir", required=True, help="folder with nab_score.py and data/")
    ap.add_argument("--by-category", action="append", default=[], metavar="NAME",
                    help="also print each category of corpus NAME at its corpus threshold")
    ap.add_argument("--held-out", action="append", default=[], metavar="NAME",
                    help="treat corpus NAME as one more held-out category (see above)")
    ap.add_argument("--corpus", nargs=3, action="append", default=[],
                    metavar=("NAME", "ROOT", "RESULTS"),
                    help="also score RESULTS on the corpus at ROOT (NAB layout)")
    a = ap.parse_args()
    sys.path.insert(0, a.nab_dir)
    import nab_score as ns  # noqa: E402  (the reference scorer, standard library only)
    import json

    root = os.path.join(a.nab_dir, "data")
    with open(os.path.join(root, "config", "profiles.json")) as fh:
        std = json.load(fh)["standard"]["CostMatrix"]

    def load(root_dir, results):
        corpus = ns.load_corpus(os.path.join(root_dir, "data"),
                                os.path.join(root_dir, "labels", "combined_windows.json"),
                                0.15)
        det = os.path.basename(os.path.normpath(results))
        scores = {rel: ns.load_scores(results, det, df) for rel, df in corpus.items()}
        return corpus, scores

    def normalised(sub, scores, threshold=None):
        null = ns.sweep(sub, {r: [0.5] * d.n for r, d in sub.items()}, std)["raw"]
        if threshold is None:
            r = ns.sweep(sub, scores, std)
            raw, threshold = r["raw"], r["threshold"]
        else:
            raw = math.fsum(ns.per_file_raw(d, scores[rel], threshold, std)
                            for rel, d in sub.items())
        perfect = std["tpWeight"] * sum(len(d.windows) for d in sub.values())
        return 100.0 * (raw - null) / (perfect - null), threshold

    def weighted_threshold(groups):
        """The threshold that maximises the sum of the normalised scores of `groups`
        (a list of (corpus subset, scores)): NAB's sweep, each group's points weighted by
        100 / (perfect - null) of that group."""
        tpw, fpw, fnw = std["tpWeight"], std["fpWeight"], std["fnWeight"]
        pts = []  # (score, global window id or -1, weighted value)
        gid = 0
        for sub, sc in groups:
            null = ns.sweep(sub, {r: [0.5] * d.n for r, d in sub.items()}, std)["raw"]
            perfect = tpw * sum(len(d.windows) for d in sub.values())
            k = 100.0 / (perfect - null)
            for rel, d in sub.items():
                s_ = sc[rel]
                for i in range(int(math.ceil(d.prob)), d.n):
                    w = d.win[i]
                    if w >= 0:
                        pts.append((s_[i], gid + w, d.unit[i] * tpw * k, -fnw * k))
                    else:
                        pts.append((s_[i], -1, d.unit[i] * fpw * k, 0.0))
                gid += len(d.windows)
        pts.sort(key=lambda p: p[0], reverse=True)
        best_win = {}
        total = 0.0  # relative to detecting nothing
        best = (total, float("inf"))
        j = 0
        while j < len(pts):
            thr = pts[j][0]
            while j < len(pts) and pts[j][0] == thr:
                _, w, v, miss = pts[j]
                if w < 0:
                    total += v
                else:
                    old = best_win.get(w, miss)
                    if v > old:
                        best_win[w] = v
                        total += v - old
                j += 1
            if total > best[0]:
                best = (total, thr)
        return best[1]

    corpus, scores = load(root, a.results)
    whole, whole_thr = normalised(corpus, scores)
    cats = sorted({rel.split("/")[0] for rel in corpus})
    rows = []
    for cat in cats:
        held = {r: d for r, d in corpus.items() if r.split("/")[0] == cat}
        if not any(d.windows for d in held.values()):
            continue
        rest = {r: d for r, d in corpus.items() if r.split("/")[0] != cat}
        _, thr = normalised(rest, scores)
        score, _ = normalised(held, scores, thr)
        rows.append((cat, thr, score))

    print("Leave one category out, NAB development set, Standard profile")
    print("%-24s %10s %8s %8s %8s %11s" % ("held-out category", "threshold", "Pulse",
                                            *PUBLISHED_NAMES))
    for cat, thr, score in rows:
        pub = PUBLISHED.get(cat, (float("nan"),) * 3)
        print("%-24s %10.4f %8.2f %8.2f %8.2f %11.2f" % (cat, thr, score, *pub))
    ours = [s for _, _, s in rows]
    print("%-24s %10s %8.2f %8.2f %8.2f %11.2f" % ("mean", "", sum(ours) / len(ours),
                                                   *PUBLISHED_MEAN))
    print("%-24s %10s %8.2f %8.2f %8.2f %11.2f" % ("worst", "", min(ours), *PUBLISHED_WORST))
    print("whole development set at its own threshold (%.4f): %.2f Standard"
          % (whole_thr, whole))
    loaded = {name: load(croot, results) for name, croot, results in a.corpus}
    if a.held_out:
        extra = [(name, loaded[name]) for name in a.held_out]
        held_rows = []
        for unit in [cat for cat, _, _ in rows] + a.held_out:
            groups = []
            if unit in cats:
                held = {r: d for r, d in corpus.items() if r.split("/")[0] == unit}
                held_scores = scores
                groups.append(({r: d for r, d in corpus.items()
                                if r.split("/")[0] != unit}, scores))
            else:
                held, held_scores = loaded[unit]
                groups.append((corpus, scores))
            groups += [(c, s) for name, (c, s) in extra if name != unit]
            thr = weighted_threshold(groups)
            held_rows.append((unit, thr, normalised(held, held_scores, thr)[0]))
        print()
        print("Held-out categories over all corpora (the keep/reject rule), Standard profile")
        print("%-44s %10s %8s" % ("held-out category", "threshold", "Pulse"))
        for unit, thr, score in held_rows:
            print("%-44s %10.4f %8.2f" % (unit.split(":")[0], thr, score))
        vals = [v for _, _, v in held_rows]
        print("%-44s %10s %8.2f" % ("mean", "", sum(vals) / len(vals)))
        print("%-44s %10s %8.2f" % ("worst", "", min(vals)))
        print()
    for name, croot, results in a.corpus:
        c, s = loaded[name]
        score, thr = normalised(c, s)
        print("%-44s %8.2f Standard (threshold %.4f)" % (name, score, thr))
        if name in a.by_category:
            parts = []
            for cat in sorted({rel.split("/")[0] for rel in c}):
                sub = {r: d for r, d in c.items() if r.split("/")[0] == cat}
                parts.append("%s %.1f" % (cat, normalised(sub, s, thr)[0]))
            print("    " + ", ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
