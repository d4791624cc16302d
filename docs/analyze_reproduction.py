"""Tables for docs/REPRODUCTION.md from the run folders that docs/reproduce.sh writes.

    python docs/analyze_reproduction.py docs/results > docs/results/tables.md

One table per setting family (everything but K and the seed equal). For every K: final and best
node-average metric, its std over nodes, the average model's metric and the consensus distance, as
mean ± 95% CI over seeds, plus the paired difference to K=1 on the same seed (same partition and
initial model; mosaic_fast.results.summary.paired_difference), which removes the large seed-to-seed
variation of the partition, how much the node average still moved over the last evaluation
interval, and the seconds a cell spent training and evaluating (and evaluation's share of them).
Under each table, the paired node-average difference at every evaluated round.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict

import numpy as np

from mosaic_fast.results.records import find_runs, group_key, group_runs, varying_settings
from mosaic_fast.results.stats import mean_ci
from mosaic_fast.results.summary import baseline_key, paired_difference

COLUMNS = {
    "final node-avg": lambda s: s["final"]["node_mean"],
    "best node-avg": lambda s: s["best_node_mean"],
    "node std": lambda s: s["final"]["node_std"],
    "avg model": lambda s: s["final"]["avg_model"],
    "consensus dist": lambda s: s["final"]["consensus_distance"],
}
PAIRED = {
    "Δ final node-avg vs K=1 (paired)": "final_node_mean",
    "Δ avg model vs K=1 (paired)": "final_avg_model",
    "Δ consensus dist vs K=1 (paired)": "final_consensus_distance",
}
# How flat the curve is at the end: the node average's change since the evaluation before the last.
FLATNESS = "node-avg change over the last eval interval"
TIMES = {
    "train s/cell": lambda s: s["wall_time_s"],
    "eval s/cell": lambda s: s["final"].get("eval_time_s", math.nan),  # NaN: not yet timed
    "eval share": lambda s: (
        s["final"].get("eval_time_s", math.nan)
        / (s["final"].get("eval_time_s", math.nan) + s["wall_time_s"])
    ),
}


def fmt(values: list[float], digits: int = 4) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "—"
    mean, half, count = mean_ci(np.asarray(values, dtype=float))
    if count < 2 or not np.isfinite(half):
        return f"{float(mean):.{digits}f}"
    return f"{float(mean):.{digits}f} ± {float(half):.{digits}f}"


def fmt_pair(mean: float, half: float, digits: int = 4) -> str:
    if not math.isfinite(mean):
        return "—"
    sign = "+" if mean >= 0 else "−"
    text = f"{sign}{abs(mean):.{digits}f}"
    return text if not math.isfinite(half) else f"{text} ± {half:.{digits}f}"


def last_change(records) -> float:
    if len(records) < 2:
        return math.nan
    return records[-1]["node_mean"] - records[-2]["node_mean"]


def title(c: dict) -> str:
    if c["partition"] == "natural":
        dist = "natural"
    elif c["partition"] == "iid":
        dist = "iid"
    else:
        dist = f"alpha={c['alpha']:g}"
    parts = [c["dataset"], dist, f"{c['nodes']} nodes", f"degree {c['degree']}"]
    parts += [f"{c['rounds']} rounds", f"H={c['local_steps']}", f"lr {c['lr']:g}"]
    if c.get("optimizer", "sgd") != "sgd":
        parts.append(c["optimizer"])
    if c.get("momentum"):
        parts.append(f"momentum {c['momentum']:g}")
    return ", ".join(parts)


def main(paths: list[str]) -> None:
    # Synchronous rounds only: docs/analyze_divshare.py tabulates the asynchronous runs.
    runs = [
        r
        for r in find_runs(paths)
        if r.summary is not None and r.config.get("algorithm", "mosaic") == "mosaic"
    ]
    settings = group_runs(runs)
    by_key = {group_key(members[0].config): members for members in settings}
    families: dict[tuple, list[list]] = defaultdict(list)
    for members in settings:
        families[baseline_key(members[0].config)].append(members)
    named = defaultdict(list)
    for family in families.values():
        named[title(family[0][0].config)].append(family)
    blocks = []
    for name, same in named.items():
        # Families that the title does not tell apart are named by what differs between them.
        differ = varying_settings([f[0][0].config for f in same])
        for family in same:
            config = family[0][0].config
            extra = "".join(f", {k}={config.get(k)}" for k in differ if k not in ("K", "seed"))
            blocks.append((name + extra, family[0][0].metric, family))
    for name, metric, family in sorted(blocks, key=lambda b: b[:2]):
        print(f"\n### {name} ({metric})\n")
        header = ["K", "seeds", *COLUMNS, *PAIRED, FLATNESS, *TIMES]
        print("| " + " | ".join(header) + " |")
        print("|---" * len(header) + "|")
        for members in sorted(family, key=lambda m: m[0].config["K"]):
            config = members[0].config
            summaries = [r.summary for r in members]
            cells = [fmt([f(s) for s in summaries]) for f in COLUMNS.values()]
            baseline = by_key.get(baseline_key(config))
            for key in PAIRED.values():
                if config["K"] == 1 or baseline is None:
                    cells.append("—")
                else:
                    mean, half, _ = paired_difference(members, baseline, key)
                    cells.append(fmt_pair(mean, half))
            cells.append(fmt([last_change(r.records) for r in members]))
            cells += [
                fmt([f(s) for s in summaries], 1 if "s/cell" in name else 3)
                for name, f in TIMES.items()
            ]
            print(f"| {config['K']} | {len(members)} | " + " | ".join(cells) + " |")
        gain_by_round(family, by_key)


def gain_by_round(family: list[list], by_key: dict) -> None:
    """Δ node-average vs K=1 (same seed) at every evaluated round, for each K > 1: whether the
    gain grows or fades with training."""
    compared = [m for m in family if m[0].config["K"] != 1 and baseline_key(m[0].config) in by_key]
    if not compared:
        return
    rounds = sorted({rec["round"] for m in compared for r in m for rec in r.records} - {0})
    print("\nΔ node-avg vs K=1 (paired) by round:\n")
    print("| K | " + " | ".join(f"round {t}" for t in rounds) + " |")
    print("|---" * (len(rounds) + 1) + "|")
    for members in sorted(compared, key=lambda m: m[0].config["K"]):
        base = {
            r.config["seed"]: {rec["round"]: rec["node_mean"] for rec in r.records}
            for r in by_key[baseline_key(members[0].config)]
        }
        cells = []
        for t in rounds:
            diffs = [
                rec["node_mean"] - base[r.config["seed"]][t]
                for r in members
                if r.config["seed"] in base
                for rec in r.records
                if rec["round"] == t and t in base[r.config["seed"]]
            ]
            cells.append(fmt_pair(*pair_stats(diffs)))
        print(f"| {members[0].config['K']} | " + " | ".join(cells) + " |")


def pair_stats(diffs: list[float]) -> tuple[float, float]:
    if not diffs:
        return math.nan, math.nan
    mean, half, _ = mean_ci(np.asarray(diffs, dtype=float))
    return float(mean), float(half)


if __name__ == "__main__":
    main(sys.argv[1:] or ["docs/results"])
