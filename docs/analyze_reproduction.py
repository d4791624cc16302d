"""Tables for docs/REPRODUCTION.md from the run folders that docs/reproduce.sh writes.

    python docs/analyze_reproduction.py docs/results > docs/results/tables.md

For every data distribution and K: final and best node-average metric, its std over nodes, the
average model's metric and the consensus distance, as mean ± 95% CI over seeds, plus the paired
difference to K=1 on the same seed (same partition and initial model), which removes the large
seed-to-seed variation of the partition.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

from mosaic_fast.stats import mean_ci
from mosaic_fast.runfolder import find_runs

COLUMNS = {
    "final node-avg": lambda s: s["final"]["node_mean"],
    "best node-avg": lambda s: s["best_node_mean"],
    "node std": lambda s: s["final"]["node_std"],
    "avg model": lambda s: s["final"]["avg_model"],
    "consensus dist": lambda s: s["final"]["consensus_distance"],
}


def fmt(values: list[float], digits: int = 4) -> str:
    mean, half, count = mean_ci(np.asarray(values, dtype=float))
    if count < 2 or not np.isfinite(half):
        return f"{float(mean):.{digits}f}"
    return f"{float(mean):.{digits}f} ± {float(half):.{digits}f}"


def main(paths: list[str]) -> None:
    runs = [r for r in find_runs(paths) if r.summary is not None]
    groups: dict[tuple, dict[int, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in runs:
        c = r.config
        dist = "natural" if c["partition"] == "natural" else ("iid" if c["partition"] == "iid" else f"alpha={c['alpha']:g}")
        groups[(c["dataset"], dist, c["degree"], r.metric)][c["K"]][c["seed"]] = r.summary
    for (dataset, dist, degree, metric), by_k in sorted(groups.items()):
        print(f"\n### {dataset}, {dist}, degree {degree} ({metric})\n")
        names = list(COLUMNS)
        print("| K | seeds | " + " | ".join(names) + " | Δ final node-avg vs K=1 (paired) | Δ avg model vs K=1 (paired) |")
        print("|---" * (len(names) + 4) + "|")
        base = by_k.get(1, {})
        for k in sorted(by_k):
            seeds = by_k[k]
            cells = [fmt([COLUMNS[n](s) for s in seeds.values()]) for n in names]
            common = sorted(set(seeds) & set(base))
            if k == 1 or not common:
                diffs = ["—", "—"]
            else:
                diffs = [
                    fmt([COLUMNS[n](seeds[s]) - COLUMNS[n](base[s]) for s in common])
                    for n in ("final node-avg", "avg model")
                ]
            print(f"| {k} | {len(seeds)} | " + " | ".join(cells + diffs) + " |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["docs/results"])
