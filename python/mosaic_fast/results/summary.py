"""Summary tables of a sweep folder: one row per setting, mean and 95% CI over seeds.

Written as ``summary.csv`` (pandas reads it) and ``summary.md``. Diverged runs are counted and
named per row, never averaged in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MosaicValueError
from .layout import COMPLETE, DIVERGED, FRESH, RESUME
from .records import (
    RunRecord,
    find_runs,
    format_value,
    group_key,
    group_runs,
    number_or_nan,
    setting_label,
    setting_sort_key,
    varying_settings,
)

if TYPE_CHECKING:
    import pandas as pd

SWEEP_FILE = "sweep.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
GAIN_CSV = "gain_by_round.csv"

SUMMARY_METRICS = (
    ("final_node_mean", "final node-average"),
    ("final_node_std", "final std over nodes"),
    ("final_avg_model", "final average model"),
    ("final_consensus_distance", "final consensus distance"),
    ("best_node_mean", "best node-average"),
    ("best_node_mean_round", "round of best node-average"),
    ("best_avg_model", "best average model"),
    ("final_sim_time_s", "simulated time (s)"),
    ("time_to_target_s", "time to target (s)"),
)


# Differences to K = 1 on the same seed (same partition, initial model and data order): they
# remove the seed-to-seed spread of the partition, which dwarfs the effect of K.
PAIRED_METRICS = (
    ("final_node_mean", "Δ final node-average vs K=1"),
    ("best_node_mean", "Δ best node-average vs K=1"),
    ("final_avg_model", "Δ final average model vs K=1"),
    ("final_consensus_distance", "Δ final consensus distance vs K=1"),
)


def baseline_key(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """:func:`group_key` of the K = 1 setting a run is compared with (itself when K = 1)."""
    return group_key({**config, "K": 1})


def paired_difference(
    runs: Sequence[RunRecord], baseline: Sequence[RunRecord], key: str
) -> tuple[float, float, int]:
    """Mean and 95% CI half-width over seeds of ``key`` (a :data:`SUMMARY_METRICS` quantity) in
    ``runs`` minus the same seed's value in ``baseline``, over the seeds complete in both, and
    their count. NaN (and 0) without a common seed."""
    from .stats import mean_ci

    base = {r.config["seed"]: _run_values(r)[key] for r in baseline if r.status == COMPLETE}
    diffs = [
        _run_values(r)[key] - base[r.config["seed"]]
        for r in runs
        if r.status == COMPLETE and r.config["seed"] in base
    ]
    if not diffs:
        return math.nan, math.nan, 0
    mean, half, count = mean_ci(diffs)
    return float(mean), float(half), int(count)


def paired_gain_by_round(
    runs: Sequence[RunRecord], baseline: Sequence[RunRecord], *, running: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The paired gain of ``runs`` over ``baseline`` (their K = 1 twins) at every evaluated round:
    the node-average metric minus the same seed's K = 1 value at the same round, sign-flipped
    where lower is better (so a positive gain is always an improvement). Complete runs only,
    unless ``running`` (runs still going add the rounds they have reached).

    Returns ``(rounds, mean, ci95, count)``, each of shape (n_rounds,): the rounds evaluated in
    some pair (int64), and over the seeds evaluated at that round in both runs the mean gain, the
    95% Student-t half-width (NaN with one seed) and the seed count (int64).
    """
    from .stats import mean_ci

    usable = (COMPLETE, RESUME, FRESH) if running else (COMPLETE,)
    base = {r.config["seed"]: r for r in baseline if r.status in usable}
    pairs = [
        (r, base[r.config["seed"]]) for r in runs if r.status in usable and r.config["seed"] in base
    ]
    gains: list[dict[int, float]] = []
    for run, twin in pairs:
        sign = -1.0 if run.lower_is_better else 1.0
        own = {rec["round"]: number_or_nan(rec.get("node_mean")) for rec in run.records}
        other = {rec["round"]: number_or_nan(rec.get("node_mean")) for rec in twin.records}
        gains.append({t: sign * (own[t] - other[t]) for t in own.keys() & other.keys()})
    rounds = np.array(sorted({t for g in gains for t in g}), dtype=np.int64)
    values = np.array([[g.get(int(t), math.nan) for t in rounds] for g in gains], dtype=np.float64)
    if not len(rounds):
        empty = np.zeros(0)
        return rounds, empty, empty, np.zeros(0, dtype=np.int64)
    mean, half, count = mean_ci(values.reshape(len(gains), len(rounds)), axis=0)
    return rounds, mean, half, count


def peak_gain(rounds: np.ndarray, mean: np.ndarray, half: np.ndarray) -> tuple[float, float, float]:
    """The largest mean paired gain over rounds (round 0, where every K starts from the same
    models, excluded), its 95% half-width and its round; NaNs when there is none."""
    later = (rounds > 0) & np.isfinite(mean)
    if not later.any():
        return math.nan, math.nan, math.nan
    i = int(np.flatnonzero(later)[np.argmax(mean[later])])
    return float(mean[i]), float(half[i]), float(rounds[i])


def _run_values(run: RunRecord) -> dict[str, float]:
    summary = run.summary
    assert summary is not None  # read for complete runs only, which have their summary
    final = summary["final"]
    return {
        "final_node_mean": final["node_mean"],
        "final_node_std": final["node_std"],
        "final_avg_model": final["avg_model"],
        "final_consensus_distance": final["consensus_distance"],
        "best_node_mean": summary["best_node_mean"],
        "best_node_mean_round": number_or_nan(summary.get("best_node_mean_round")),
        "best_avg_model": summary["best_avg_model"],
        "wall_time_s": summary["wall_time_s"],
        "eval_time_s": number_or_nan(final.get("eval_time_s")),  # NaN: written before timing
        # Folders written before the simulated clock have neither.
        "final_sim_time_s": number_or_nan(final.get("sim_time_s")),
        "time_to_target_s": number_or_nan(summary.get("time_to_target_s")),
    }


def _setting_columns(out: Path, runs: Sequence[RunRecord]) -> list[str]:
    """The columns naming a row: the sweep's axes if ``sweep.json`` exists, else every
    setting that differs between the runs (seed excluded)."""
    sweep_file = out / SWEEP_FILE
    if sweep_file.is_file():
        grid = json.loads(sweep_file.read_text()).get("grid", {})
        axes = [k for k, v in grid.items() if v is not None and k not in ("seed", "seeds")]
        if axes:
            return axes
    return varying_settings([r.config for r in runs])


def summarize_sweep(out_dir: str | Path) -> pd.DataFrame:
    """Aggregate the finished runs under ``out_dir`` over seeds; write ``summary.csv``/``summary.md``.

    Runs are grouped by their settings without the seed. For each group and each quantity in
    :data:`SUMMARY_METRICS` the table holds ``<q>_mean`` and ``<q>_ci95`` (half-width of the
    95% Student-t interval over the complete seeds; NaN with one seed; times to target over the
    seeds that reached it, counted in ``n_reached_target``), plus ``n_seeds``,
    ``seeds``, ``n_diverged``, ``diverged_seeds``, ``wall_time_s_mean`` (training and
    gossip) and ``eval_time_s_mean`` (evaluation; NaN for runs written before it was timed). For K > 1, the
    :data:`PAIRED_METRICS` also as ``delta_<q>_mean``/``delta_<q>_ci95``: the setting minus its
    K = 1 twin on the same seed, over the ``n_paired`` seeds both completed (NaN without a twin
    in the folder). Returns it as a pandas DataFrame, one row per setting.
    """
    import pandas as pd

    out = Path(out_dir)
    runs = _finished_runs(out)
    columns = _setting_columns(out, runs)
    groups = group_runs(runs)
    by_key = {group_key(members[0].config): members for members in groups}
    rows: list[dict[str, Any]] = []
    gain_rows: list[dict[str, Any]] = []
    for members in groups:
        cfg = members[0].config
        baseline = by_key.get(baseline_key(cfg)) if cfg.get("K") != 1 else None
        row = {c: setting_label(cfg, c) for c in columns}
        curve = _fill_row(row, members, baseline or ())
        rows.append(row)
        gain_rows += [
            {
                **{c: row[c] for c in columns},
                "round": int(t),
                "gain_mean": float(m),
                "gain_ci95": float(h),
                "n_paired": int(n),
            }
            for t, m, h, n in zip(*curve, strict=True)
        ]
    table = pd.DataFrame(rows)
    _write_gain_table(out, gain_rows, columns)
    table = (
        table.sort_values(columns, key=_sort_key, kind="stable").reset_index(drop=True)
        if columns
        else table
    )
    table.to_csv(out / SUMMARY_CSV, index=False)
    (out / SUMMARY_MD).write_text(_markdown(table, columns))
    return table


def _finished_runs(out: Path) -> list[RunRecord]:
    """The complete and diverged runs under ``out``; a missing folder or none is an error."""
    if not out.is_dir():
        raise MosaicValueError(f"sweep folder {str(out)!r} does not exist")
    runs = [r for r in find_runs([out]) if r.status in (COMPLETE, DIVERGED)]
    if not runs:
        raise MosaicValueError(f"no finished runs (summary.json) under {str(out)!r}")
    return runs


def _fill_row(
    row: dict[str, Any], members: Sequence[RunRecord], baseline: Sequence[RunRecord]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add one setting's statistics over seeds to its ``row`` (after the setting columns), and
    return its paired gain by round over ``baseline`` (its K = 1 twin's runs, or none)."""
    complete = [r for r in members if r.status == COMPLETE]
    diverged = [r for r in members if r.status == DIVERGED]
    row["metric"] = members[0].metric
    row["lower_is_better"] = members[0].lower_is_better
    values = [_run_values(r) for r in complete]
    _fill_seed_statistics(row, values)
    row["n_reached_target"] = sum(math.isfinite(v["time_to_target_s"]) for v in values)
    row["n_seeds"] = len(complete)
    row["seeds"] = " ".join(str(s) for s in sorted(r.config["seed"] for r in complete))
    row["n_diverged"] = len(diverged)
    row["diverged_seeds"] = " ".join(str(s) for s in sorted(r.config["seed"] for r in diverged))
    row["wall_time_s_mean"] = (
        float(sum(v["wall_time_s"] for v in values) / len(values)) if values else math.nan
    )
    eval_times = [v["eval_time_s"] for v in values if math.isfinite(v["eval_time_s"])]
    row["eval_time_s_mean"] = sum(eval_times) / len(eval_times) if eval_times else math.nan
    row["n_paired"] = 0
    for key, _ in PAIRED_METRICS:
        mean, half, count = paired_difference(members, baseline, key)
        row[f"delta_{key}_mean"], row[f"delta_{key}_ci95"] = mean, half
        row["n_paired"] = count
    curve = paired_gain_by_round(members, baseline)
    row["peak_gain_mean"], row["peak_gain_ci95"], row["peak_gain_round"] = peak_gain(*curve[:3])
    return curve


def _fill_seed_statistics(row: dict[str, Any], values: Sequence[dict[str, float]]) -> None:
    """``<q>_mean`` and ``<q>_ci95`` over the complete seeds' ``values`` for every quantity of
    :data:`SUMMARY_METRICS`."""
    from .stats import mean_ci

    for key, _ in SUMMARY_METRICS:
        # Seeds that never reached the target (or have no clock) have no time: left out,
        # and the markdown says how many reached it.
        present = [v[key] for v in values if math.isfinite(v[key])]
        mean = half = math.nan
        if present:
            mean_a, half_a, _n = mean_ci(present)
            mean, half = float(mean_a), float(half_a)
        row[f"{key}_mean"], row[f"{key}_ci95"] = mean, half


def _write_gain_table(out: Path, gain_rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    """``gain_by_round.csv``: one row per (setting with a K = 1 twin, evaluated round)."""
    import pandas as pd

    path = out / GAIN_CSV
    if not gain_rows:
        path.unlink(missing_ok=True)  # no K = 1 twin any more: no stale table
        return
    table = pd.DataFrame(gain_rows)
    order = [*columns, "round"]
    table.sort_values(order, key=_sort_key, kind="stable").to_csv(path, index=False)


def _sort_key(col: pd.Series) -> pd.Series:
    return col.map(lambda v: setting_sort_key(col.name, v))


def _fmt(mean: float, half: float) -> str:
    if not math.isfinite(mean):
        return "—"
    digits = 4
    return f"{mean:.{digits}g}" if not math.isfinite(half) else f"{mean:.{digits}g} ± {half:.2g}"


def _peak_cell(row: pd.Series) -> str:
    if not math.isfinite(row["peak_gain_mean"]):
        return "—"
    return (
        f"{_fmt(row['peak_gain_mean'], row['peak_gain_ci95'])} (round {row['peak_gain_round']:.0f})"
    )


def _seeds_cell(row: pd.Series) -> str:
    if not row["n_diverged"]:
        return str(row["n_seeds"])
    return f"{row['n_seeds']} (+{row['n_diverged']} diverged: seed {row['diverged_seeds']})"


def _markdown(table: pd.DataFrame, columns: Sequence[str]) -> str:
    paired = bool(table["n_paired"].any())  # some row has a K = 1 row to compare with
    deltas = PAIRED_METRICS if paired else ()
    header = [
        *columns,
        *(label for _, label in SUMMARY_METRICS),
        *(f"{label} (paired)" for _, label in deltas),
        *(["peak paired gain vs K=1 (round)"] if paired else []),
        "seeds",
        "wall time (s)",
        "evaluation time (s)",
    ]
    lines = [
        *_markdown_intro(table, paired),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(_markdown_cells(row, columns, paired)) + " |")
    return "\n".join(lines) + "\n"


def _markdown_intro(table: pd.DataFrame, paired: bool) -> list[str]:
    """The title and the lines that say how to read the table."""
    metrics = sorted(set(table["metric"]))
    lower = bool(table["lower_is_better"].iloc[0])
    lines = [
        "# Sweep summary",
        "",
        f"Metric: {', '.join(metrics)} ({'lower' if lower else 'higher'} is better); 'best' is the "
        f"{'minimum' if lower else 'maximum'} over evaluations.",
        "Values are mean ± half-width of the 95% Student-t confidence interval over seeds. "
        "With a single seed the interval is undefined and only the mean is shown.",
    ]
    if paired:
        lines.append(
            "Paired columns: K minus K=1 on the same seed (same partition and initial model), "
            "over the seeds both completed. The peak paired gain is the largest mean over rounds "
            "of the node-average's improvement on K=1 at the same round (gain_by_round.csv has "
            "the whole curve)."
        )
    if table["n_diverged"].any():
        lines.append(
            "Diverged runs (non-finite loss or parameters) are left out of the statistics and "
            "counted in the seeds column; a row whose every seed diverged reads 'diverged'."
        )
    return lines


def _markdown_cells(row: pd.Series, columns: Sequence[str], paired: bool) -> list[str]:
    """One table row's cells: the setting, then its statistics (or 'diverged' throughout)."""
    deltas = PAIRED_METRICS if paired else ()
    cells = [format_value(row[c]) for c in columns]
    if row["n_seeds"] == 0:
        cells += ["diverged" for _ in (*SUMMARY_METRICS, *deltas, *(("",) if paired else ()))]
        return [*cells, _seeds_cell(row), "—", "—"]
    cells += [_fmt(row[f"{k}_mean"], row[f"{k}_ci95"]) for k, _ in SUMMARY_METRICS]
    if 0 < row["n_reached_target"] < row["n_seeds"]:
        cells[-1] += f" ({row['n_reached_target']}/{row['n_seeds']} seeds reached it)"
    cells += [_fmt(row[f"delta_{k}_mean"], row[f"delta_{k}_ci95"]) for k, _ in deltas]
    if paired:
        cells.append(_peak_cell(row))
    cells += [_seeds_cell(row), f"{row['wall_time_s_mean']:.1f}"]
    cells.append(_fmt(row["eval_time_s_mean"], math.nan))
    return cells
