"""Tables for docs/REPRODUCTION.md ("Faithful defaults") from the folders that
docs/reproduce_faithful.sh writes.

    python docs/analyze_faithful.py docs/results/faithful > docs/results/faithful/tables.md

Every setting with K > 1 is compared with its K = 1 twin on the same seed: the node-average's gain
at every evaluated round (mosaic_fast.results.summary.paired_gain_by_round), its peak over rounds with the
peak's round and 95% CI over seeds, the gain at fixed rounds, the best node-average of each K and
the values at the last round both reached. K = 1 has one fragment, so a K > 1 cell with another
fragmenter is paired with the random-fragment K = 1 cell of the same seed. Cells still running
count with the rounds they have reached (the tables say how far each got), so a study cut short
still reports the early curve, where the gain peaks.

Under heterogeneity the gain has two parts: fragments also mix models faster, which helps on IID
data too. The "beyond IID" table subtracts, per seed and round, the IID gain at the same size,
degree and K from the gain under label skew (alpha = 0.1 or 1).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import numpy as np

from mosaic_fast.results.layout import COMPLETE
from mosaic_fast.results.records import RunRecord, find_runs, group_key, group_runs
from mosaic_fast.results.stats import mean_ci
from mosaic_fast.results.summary import paired_gain_by_round, peak_gain

FIXED_ROUNDS = (15, 50, 100, 300)


def label(c: dict) -> str:
    alpha = {"iid": "IID", "dirichlet": f"α={c['alpha']}"}.get(c["partition"], c["partition"])
    parts = [c["dataset"], f"n={c['nodes']}", f"degree {c['degree']}", alpha]
    if c.get("init", "shared") != "shared":
        parts.append(f"init {c['init']}")
    return ", ".join(parts)


def twin_key(c: dict) -> tuple:
    """The K = 1 setting a run is compared with: K = 1 has one fragment whatever the map."""
    return group_key({**c, "K": 1, "fragmenter": "random", "block_size": 1024})


def iid_key(c: dict) -> tuple:
    return group_key({**c, "partition": "iid", "alpha": None})


def fmt(mean: float, half: float, digits: int = 2, scale: float = 100) -> str:
    """Accuracy in points (``scale`` 100); RMSE as it is (``scale`` 1, 4 digits)."""
    if not math.isfinite(mean):
        return "—"
    digits = digits if scale == 100 else 4
    text = f"{scale * mean:+.{digits}f}"
    return text if not math.isfinite(half) else f"{text} ± {scale * half:.{digits}f}"


def reached(runs: Sequence[RunRecord]) -> str:
    done = sum(r.status == COMPLETE for r in runs)
    last = [r.records[-1]["round"] for r in runs if r.records]
    if done == len(runs):
        return f"{done} seeds, complete"
    return f"{len(runs)} seeds ({done} complete; rounds {min(last)}-{max(last)} so far)"


def curve_at(rounds: np.ndarray, values: np.ndarray, t: int) -> float:
    hit = np.flatnonzero(rounds == t)
    return float(values[hit[0]]) if len(hit) else math.nan


def best_by_k(runs: Sequence[RunRecord], until: int) -> str:
    """Mean ± CI over seeds of each seed's best node-average up to round ``until`` (the rounds
    every run of the comparison has reached), and the mean round of it; RMSE: the lowest."""
    if until == 0:
        return "—"
    pick = min if runs[0].lower_is_better else max
    scale = 1 if runs[0].lower_is_better else 100
    best = [
        pick((rec for rec in r.records if 0 < rec["round"] <= until), key=lambda x: x["node_mean"])
        for r in runs
    ]
    mean, half, _ = mean_ci(np.array([b["node_mean"] for b in best]))
    at = np.mean([b["round"] for b in best])
    digits = 4 if scale == 1 else 1
    core = f"{scale * float(mean):.{digits}f}"
    core += f" ± {scale * float(half):.{digits}f}" if np.isfinite(half) else ""
    return f"{core} (round {at:.0f})"


def _avg_model_delta(members, base, last: int) -> str:
    """The average model's metric, K minus K = 1 on the same seed, at round ``last``."""
    at = {
        (r.config["seed"], r.config["K"]): rec["avg_model"]
        for r in (*members, *base)
        for rec in r.records
        if rec["round"] == last
    }
    k = members[0].config["K"]
    diffs = [at[(s, k)] - at[(s, 1)] for s, kk in at if kk == k and (s, 1) in at]
    mean, half, _ = mean_ci(np.array(diffs))
    sign = -1 if members[0].lower_is_better else 1
    return fmt(sign * float(mean), float(half), scale=1 if members[0].lower_is_better else 100)


def _value(runs: Sequence[RunRecord], v: float) -> str:
    return f"{v:.4f}" if runs[0].lower_is_better else f"{100 * v:.1f}"


def main(paths: list[str]) -> None:
    runs = [r for r in find_runs(paths) if r.records]
    settings = {group_key(m[0].config): m for m in group_runs(runs)}
    rows, curves = [], {}
    for key, members in sorted(settings.items(), key=lambda kv: str(kv[0])):
        c = members[0].config
        if c["K"] == 1 or twin_key(c) not in settings:
            continue
        seeds = {r.config["seed"] for r in members}
        base = [r for r in settings[twin_key(c)] if r.config["seed"] in seeds]  # the pairs only
        members = [r for r in members if r.config["seed"] in {b.config["seed"] for b in base}]
        if not members:
            continue
        rounds, mean, half, count = paired_gain_by_round(members, base, running=True)
        if not len(rounds):
            continue
        curves[key] = (rounds, mean, half, count, members, base)
        rows.append(key)
    print("| setting | K | fragmenter | runs (K / K=1) | peak gain (round; seeds) |", end="")
    print(" ".join(f" gain @{t} |" for t in FIXED_ROUNDS), end="")
    print(" best node-avg K=1 | best node-avg K | last common round: K=1 → K | avg-model Δ there |")
    print("|---" * (9 + len(FIXED_ROUNDS)) + "|")
    for key in rows:
        rounds, mean, half, count, members, base = curves[key]
        c = members[0].config
        peak, peak_half, at = peak_gain(rounds, mean, half)
        sc = 1 if members[0].lower_is_better else 100
        fixed = [
            fmt(curve_at(rounds, mean, t), curve_at(rounds, half, t), scale=sc)
            for t in FIXED_ROUNDS
        ]
        last = min(r.records[-1]["round"] for r in (*members, *base))
        k1 = np.mean([rec["node_mean"] for r in base for rec in r.records if rec["round"] == last])
        kk = np.mean(
            [rec["node_mean"] for r in members for rec in r.records if rec["round"] == last]
        )
        print(
            f"| {label(c)} | {c['K']} | {c['fragmenter']} | {reached(members)} / {reached(base)} | "
            f"**{fmt(peak, peak_half, scale=sc)}** ({at:.0f}; {curve_at(rounds, count, at):.0f} seeds) | "
            + " | ".join(fixed)
            + f" | {best_by_k(base, last)} | {best_by_k(members, last)} | {last}: {_value(base, k1)} → {_value(base, kk)} | {_avg_model_delta(members, base, last)} |"
        )
    print()
    print(
        "Gain beyond IID (the gain under label skew, α = 0.1 or 1, minus the IID gain; same seed, "
        "size, degree and K; points):"
    )
    print()
    print("| setting | K | peak (round) |" + "".join(f" @{t} |" for t in FIXED_ROUNDS))
    print("|---" * (3 + len(FIXED_ROUNDS)) + "|")
    for key in rows:
        rounds, mean, half, count, members, base = curves[key]
        c = members[0].config
        if c["partition"] == "iid" or iid_key(c) not in curves:
            continue
        skewed = _per_seed(members, base)
        iid_members, iid_base = curves[iid_key(c)][4:]
        iid = _per_seed(iid_members, iid_base)
        common = sorted(set(skewed) & set(iid))
        diffs = {
            t: [skewed[s][t] - iid[s][t] for s in common if t in skewed[s] and t in iid[s]]
            for t in sorted({t for s in common for t in skewed[s]})
        }
        ts = np.array([t for t in diffs if diffs[t]])
        stats = [mean_ci(np.array(diffs[t])) for t in ts]
        m = np.array([float(s[0]) for s in stats])
        h = np.array([float(s[1]) for s in stats])
        peak, peak_half, at = peak_gain(ts, m, h)
        fixed = [fmt(curve_at(ts, m, t), curve_at(ts, h, t)) for t in FIXED_ROUNDS]
        print(
            f"| {label(c)} | {c['K']} | {fmt(peak, peak_half)} ({at:.0f}) | "
            + " | ".join(fixed)
            + " |"
        )
    print()
    print("Consensus distance (mean over seeds) at the last round every run reached:")
    print()
    print("| setting | K | fragmenter | round | K=1 | K | K / K=1 |")
    print("|---|---|---|---|---|---|---|")
    for key in rows:
        members, base = curves[key][4:]
        c = members[0].config
        last = min(r.records[-1]["round"] for r in (*members, *base))
        k1, kk = (
            np.mean(
                [
                    rec["consensus_distance"]
                    for r in runs
                    for rec in r.records
                    if rec["round"] == last
                ]
            )
            for runs in (base, members)
        )
        print(
            f"| {label(c)} | {c['K']} | {c['fragmenter']} | {last} | {k1:.4g} | {kk:.4g} | "
            f"{kk / k1:.2f} |"
        )
    print()
    print("Paired gain by round (accuracy points or RMSE, mean ± 95% CI over seeds):")
    for key in rows:
        rounds, mean, half, count, members, _ = curves[key]
        c = members[0].config
        sc = 1 if members[0].lower_is_better else 100
        points = ", ".join(
            f"{t}: {fmt(m, h, 1, sc)}" for t, m, h in zip(rounds, mean, half, strict=True) if t > 0
        )
        print(f"\n- {label(c)}, K={c['K']} {c['fragmenter']}: {points}")


def _per_seed(members, base) -> dict[int, dict[int, float]]:
    """seed -> round -> gain over the same seed's K = 1 (runs still going included)."""
    out = {}
    for run in members:
        twin = [b for b in base if b.config["seed"] == run.config["seed"]]
        if twin:
            rounds, gain, _, _ = paired_gain_by_round([run], twin, running=True)
            out[run.config["seed"]] = dict(zip(rounds.tolist(), gain.tolist(), strict=True))
    return out


if __name__ == "__main__":
    main(sys.argv[1:] or ["docs/results/faithful"])
