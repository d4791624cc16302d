"""Tables and figures of the DivShare section of docs/REPRODUCTION.md, from the run folders that
docs/reproduce_divshare.sh writes.

    python docs/analyze_divshare.py docs/results docs/img/reproduction > docs/results/divshare-tables/tables.md

Per dataset and straggler fraction, per method (the sweep folder's name): time to the target
(mean ± 95 % CI over the seeds that reached it, and how many did), the node-average metric, the
average model's metric and the training loss at the time budget, the traffic delivered per node
over the budget, and DivShare's speed-up over each baseline in time to target, paired by seed. Figures: the
node-average metric against simulated time (one panel per straggler fraction), and time to target.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from mosaic_fast.results.records import RunRecord, find_runs
from mosaic_fast.results.stats import mean_ci

DATASETS = {
    # docs/reproduce_divshare.sh: DivShare's own setting (H steps per iteration, a queue per peer,
    # max-min links; 60 nodes, J = 6, DivShare K = 10).
    "divshare-code-fmnist": "Fashion-MNIST, 5 shards per node, DivShare's setting (60 nodes)",
    # docs/reproduce_divshare_v1.sh: the earlier engine rules (one step per communication).
    "divshare-fmnist": "Fashion-MNIST, Dirichlet α = 0.1",
    "divshare-movielens": "MovieLens",
    "divshare-movielens-step0.5": "MovieLens, 0.5 s steps",
}
# Sweep folder -> label, in table order.
METHODS = {
    "divshare-K10": "DivShare (K = 10)",
    "divshare-K8": "DivShare (K = 8)",
    "swift": "Swift",
    "adpsgd": "AD-PSGD",
    "el-K1": "EL, synchronous (K = 1)",
    "mosaic-K8": "Mosaic, synchronous (K = 8)",
    "local-only": "No communication (control)",
}
# A second threshold per dataset, chosen after seeing the curves (the sweeps' own target is in
# their config): where the first one is crossed by noise near a plateau, or reached by no one.
SECOND_TARGETS = {"divshare-movielens": 1.08}
COLORS = {
    "divshare-K10": "tab:red",
    "divshare-K8": "tab:red",
    "swift": "tab:blue",
    "adpsgd": "tab:green",
    "el-K1": "tab:gray",
    "mosaic-K8": "tab:purple",
    "local-only": "black",
}


def fmt(values: list[float], digits: int) -> str:
    """``mean ± half-width`` (95 % Student t) of the finite values; ``—`` when there are none."""
    mean, half, count = mean_ci(np.asarray(values, dtype=float))
    if count == 0:
        return "—"
    if count < 2 or not np.isfinite(half):
        return f"{float(mean):.{digits}f}"
    return f"{float(mean):.{digits}f} ± {float(half):.{digits}f}"


def time_to(run: RunRecord, target: float) -> float:
    """First evaluated simulated time, within the time budget, whose node-average reaches
    ``target``; NaN if none does. (A synchronous run's last evaluation is at the end of the round
    in progress at the budget, up to one round after it: it counts for the values at the budget,
    which favours the synchronous runs, but not for reaching the target in time.)"""
    budget = run.config["time_budget"]
    for rec in run.records:
        if rec["sim_time_s"] > budget + 1e-9:
            break
        value = rec["node_mean"]
        if (value <= target) if run.lower_is_better else (value >= target):
            return float(rec["sim_time_s"])
    return math.nan


def traffic_mb(run: RunRecord) -> float:
    """Megabytes delivered per node over the run (messages still queued or dropped at the end do
    not count), from the last record's per-round average."""
    last = run.records[-1]
    rounds = last.get("local_steps_per_node", last["round"] * run.config["local_steps"])
    return last["sent_bytes_per_node"] * rounds / run.config["local_steps"] / 1e6


def collect(root: Path) -> dict[tuple[str, float], dict[str, list[RunRecord]]]:
    """(dataset folder, straggler fraction) -> method -> complete runs ordered by seed."""
    groups: dict[tuple[str, float], dict[str, list[RunRecord]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for folder in DATASETS:
        if not (root / folder).is_dir():
            continue
        for run in find_runs([root / folder]):
            if run.summary is None:
                continue
            method = run.path.parent.name
            groups[(folder, run.config["stragglers"])][method].append(run)
    for methods in groups.values():
        for runs in methods.values():
            runs.sort(key=lambda r: r.config["seed"])
    return groups


def divshare(by_method: dict[str, list[RunRecord]]) -> str:
    """The DivShare method's folder name of a group (K = 10 in DivShare's setting, else K = 8)."""
    return "divshare-K10" if "divshare-K10" in by_method else "divshare-K8"


def speedups(by_method: dict[str, list[RunRecord]], target: float, budget: float) -> list[str]:
    """DivShare's time to target against each baseline's, paired by seed: the ratio where both
    reached it; where only DivShare did, at least budget / DivShare's time."""
    lines = []
    ours = divshare(by_method)
    div = {r.config["seed"]: time_to(r, target) for r in by_method.get(ours, [])}
    for method in METHODS:
        if method == ours or method not in by_method:
            continue
        runs = by_method[method]
        exact, bounds = [], []
        for r in runs:
            mine, theirs = div.get(r.config["seed"], math.nan), time_to(r, target)
            if math.isnan(mine):
                continue
            if math.isnan(theirs):
                bounds.append(budget / mine)
            else:
                exact.append(theirs / mine)
        parts = []
        if exact:
            parts.append(f"{fmt(exact, 2)}× on the {len(exact)} seed(s) where both reached it")
        if bounds:
            parts.append(
                f"≥ {min(bounds):.1f}× on the {len(bounds)} seed(s) where only DivShare did "
                "(budget / DivShare's time)"
            )
        if not parts:
            parts.append("no seed where DivShare reached the target")
        lines.append(f"- vs {METHODS[method]}: " + "; ".join(parts))
    return lines


def paired_final(by_method: dict[str, list[RunRecord]]) -> list[str]:
    """DivShare's node-average metric at the budget minus each baseline's, paired by seed (same
    partition and initial model), mean ± 95 % CI, and relative to the baseline's (the paper's
    "19.4 % better accuracy" is relative)."""
    ours = divshare(by_method)
    div = {r.config["seed"]: r.records[-1]["node_mean"] for r in by_method[ours]}
    lines = []
    for method, label in METHODS.items():
        if method == ours or method not in by_method:
            continue
        pairs = [
            (div[r.config["seed"]], r.records[-1]["node_mean"])
            for r in by_method[method]
            if r.config["seed"] in div
        ]
        diffs = [a - b for a, b in pairs]
        relative = [100.0 * (a - b) / abs(b) for a, b in pairs if b]
        lines.append(
            f"- vs {label}: {fmt(diffs, 4)}, {fmt(relative, 1)} % of the baseline's "
            f"({len(diffs)} seeds)"
        )
    return lines


def table(by_method: dict[str, list[RunRecord]]) -> tuple[list[str], float, float]:
    """The markdown table of one dataset and straggler fraction; also the target and budget."""
    first = next(iter(by_method.values()))[0]
    target, budget = first.config["target"], first.config["time_budget"]
    metric = first.metric
    sign = "≤" if first.lower_is_better else "≥"
    lines = [
        f"| method | time to {metric} {sign} {target:g} (s) | seeds reached | "
        f"node-avg {metric} at budget | avg-model {metric} | train loss at budget | "
        "traffic per node (MB delivered) | steps per node |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, label in METHODS.items():
        runs = by_method.get(method, [])
        if not runs:
            continue
        finals = [r.records[-1] for r in runs]
        times = [time_to(r, target) for r in runs]
        steps = [
            f.get("local_steps_per_node", f["round"] * r.config["local_steps"])
            for f, r in zip(finals, runs, strict=True)
        ]
        lines.append(
            f"| {label} | {fmt(times, 1)} | {sum(not math.isnan(t) for t in times)}/{len(runs)} | "
            f"{fmt([f['node_mean'] for f in finals], 4)} | {fmt([f['avg_model'] for f in finals], 4)} | "
            f"{fmt([f['train_loss'] for f in finals], 3)} | {fmt([traffic_mb(r) for r in runs], 0)} | "
            f"{fmt(steps, 0)} |"
        )
    return lines, target, budget


def target_table(by_method: dict[str, list[RunRecord]], target: float) -> list[str]:
    """Time to ``target`` per method (mean ± CI over the seeds that reached it, and how many)."""
    first = next(iter(by_method.values()))[0]
    sign = "≤" if first.lower_is_better else "≥"
    lines = [
        f"| method | time to {first.metric} {sign} {target:g} (s) | seeds reached |",
        "|---|---|---|",
    ]
    for method, label in METHODS.items():
        runs = by_method.get(method, [])
        if runs:
            times = [time_to(r, target) for r in runs]
            reached = sum(not math.isnan(t) for t in times)
            lines.append(f"| {label} | {fmt(times, 1)} | {reached}/{len(runs)} |")
    return lines


def curves(runs: list[RunRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean simulated time, mean and 95 % half-width of the node average, per evaluation index
    (the seeds of one method are evaluated at the same times, up to a synchronous round)."""
    kept = [r.records for r in runs]
    length = min(map(len, kept))
    t = np.array([[rec["sim_time_s"] for rec in records[:length]] for records in kept])
    y = np.array([[rec["node_mean"] for rec in records[:length]] for records in kept])
    mean, half, _ = mean_ci(y)
    return t.mean(axis=0), mean, np.nan_to_num(half)


def figures(groups, img_root: Path) -> list[Path]:
    """Per dataset: node average against simulated time, and time to target, one panel per
    straggler fraction. Returns the written files."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    for folder, title in DATASETS.items():
        fractions = sorted(f for (d, f) in groups if d == folder)
        if not fractions:
            continue
        out = img_root / folder
        out.mkdir(parents=True, exist_ok=True)
        perf = Figure(figsize=(5.2 * len(fractions), 3.8), layout="tight")
        FigureCanvasAgg(perf)
        bars = Figure(figsize=(5.2 * len(fractions), 3.8), layout="tight")
        FigureCanvasAgg(bars)
        perf_axes = perf.subplots(1, len(fractions), squeeze=False)[0]
        bar_axes = bars.subplots(1, len(fractions), squeeze=False)[0]
        for ax, bax, fraction in zip(perf_axes, bar_axes, fractions, strict=True):
            by_method = groups[(folder, fraction)]
            first = next(iter(by_method.values()))[0]
            target, metric = first.config["target"], first.metric
            names = [m for m in METHODS if m in by_method]
            for i, method in enumerate(names):
                runs = by_method[method]
                t, mean, half = curves(runs)
                ax.plot(t, mean, color=COLORS[method], lw=1.6, marker=".", label=METHODS[method])
                ax.fill_between(t, mean - half, mean + half, color=COLORS[method], alpha=0.15, lw=0)
                times = [time_to(r, target) for r in runs]
                reached = [x for x in times if not math.isnan(x)]
                if reached:
                    # Bars: the mean over the seeds that reached the target; dots: each seed
                    # (with 2-3 seeds a t interval is wider than the data and says less).
                    bax.bar(i, float(np.mean(reached)), color=COLORS[method], alpha=0.8)
                    bax.scatter([i] * len(reached), reached, color="black", s=14, zorder=3)
                bax.annotate(
                    f"{len(reached)}/{len(runs)} seeds",
                    (i, 1.0),
                    xycoords=("data", "axes fraction"),
                    ha="center",
                    va="top",
                    fontsize="small",
                )
            ax.axhline(target, color="black", lw=0.8, ls=":")
            ax.set_xlabel("Simulated time (s)")
            ax.set_ylabel(f"Node-average {metric}")
            ax.set_title(f"{title}, {fraction:.0%} stragglers")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
            bax.set_xticks(
                range(len(names)),
                [METHODS[m].split(",")[0].split(" (")[0] for m in names],
                rotation=15,
            )
            bax.set_ylabel("Simulated time (s)")
            sign = "≤" if first.lower_is_better else "≥"
            bax.set_title(
                f"{fraction:.0%} stragglers: time to {metric} {sign} {target:g}\n"
                "(bars: mean of the seeds that reached it; dots: seeds)",
                fontsize="medium",
            )
            bax.set_ylim(0, first.config["time_budget"] * 1.1)
            bax.set_xlim(-0.6, len(names) - 0.4)
            bax.grid(alpha=0.3, axis="y")
        for fig, stem in ((perf, "time_performance"), (bars, "time_to_target")):
            path = out / f"{stem}.png"
            fig.savefig(path, dpi=110)
            written.append(path)
    return written


def main(results: str, img_root: str) -> None:
    groups = collect(Path(results))
    for (folder, fraction), by_method in sorted(groups.items()):
        lines, target, budget = table(by_method)
        print(f"\n### {DATASETS[folder]}, {fraction:.0%} stragglers (budget {budget:g} s)\n")
        print("\n".join(lines))
        print("\nDivShare's speed-up in time to target, paired by seed:\n")
        print("\n".join(speedups(by_method, target, budget)))
        if divshare(by_method) in by_method:
            print(
                f"\nDivShare's node-average {next(iter(by_method.values()))[0].metric} at the "
                "budget minus the baseline's, paired by seed:\n"
            )
            print("\n".join(paired_final(by_method)))
        second = SECOND_TARGETS.get(folder)
        if second is not None:
            print(f"\nA second threshold, {second:g}, chosen after seeing the curves:\n")
            print("\n".join(target_table(by_method, second)))
            print()
            print("\n".join(speedups(by_method, second, budget)))
    for path in figures(groups, Path(img_root)):
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python docs/analyze_divshare.py RESULTS_DIR IMG_DIR")
    main(sys.argv[1], sys.argv[2])
