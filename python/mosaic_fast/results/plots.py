"""The paper's figures (Biswas et al. 2026, Figs. 4-10) drawn from run folders.

Runs are grouped by setting (config without seed); each curve or point is the mean over a
group's seeds with a 95% Student-t confidence band. Figures are built on matplotlib's
object API with the Agg canvas, so plotting never touches the global pyplot backend.

"Consensus distance" is the engine's ``consensus_distance``, the mean L2 distance of the node
models to their average, ``(1/n) sum_i ||x_i - xbar||_2`` (not the theory tool's squared norm).

Figure kinds (file name stem, then ``__<fixed settings>`` when other settings vary):

- ``rounds_performance`` (Fig. 4): node-average and average-model metric vs round, one line per K;
- ``rounds_consensus`` (Fig. 5): consensus distance and std of node metric vs round, per K;
- ``gain_by_round`` (when K = 1 and other K ran on the same seeds): the paired gain of the
  node-average over K = 1 (same seed, same round; positive is better) vs round, one line per K,
  with its 95% band and its peak;
- ``degree_performance`` (Fig. 6, when degrees vary): best node-average / average-model vs degree;
- ``degree_consensus`` (Fig. 7, when degrees vary): final consensus distance / node std vs degree;
- ``gain_vs_degree`` (when K = 1 and other K, and degrees or network sizes, vary): the paired
  difference to K = 1 on the same seed of the final node-average and average-model metric vs
  degree, one line per K and per other varying setting (say, the number of nodes);
- ``alpha_performance`` (Figs. 8-9, when data distributions vary): node-average (top) and
  average-model (bottom) vs round, one column per distribution;
- ``alpha_consensus`` (Fig. 10, when data distributions vary): consensus distance (top) and
  node std (bottom) vs round, one column per distribution.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MosaicValueError
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
from .stats import mean_ci
from .summary import baseline_key, paired_difference, paired_gain_by_round, peak_gain

FORMATS = ("png", "pdf", "svg")
# Settings named in titles, in this order, when they are the same for a whole figure.
_CONTEXT = ("nodes", "degree", "alpha", "topology", "fragmenter")


@dataclass(frozen=True)
class Setting:
    """The runs (one per seed) of one configuration; ``config`` is the first run's config."""

    config: dict[str, Any]
    runs: tuple[RunRecord, ...]

    @property
    def complete_runs(self) -> tuple[RunRecord, ...]:
        return tuple(r for r in self.runs if r.summary is not None)

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rounds, mean, ci95)`` of metrics field ``key`` over seeds, each shape (n_evals,):
        rounds int64 (union over seeds), mean/ci95 float64; a seed missing a round is left out
        there (ci95 is NaN where fewer than two seeds have the round)."""
        rounds = np.array(
            sorted({rec["round"] for r in self.runs for rec in r.records}), dtype=np.int64
        )
        index = {int(t): i for i, t in enumerate(rounds)}
        values = np.full((len(self.runs), len(rounds)), np.nan)
        for s, run in enumerate(self.runs):
            for rec in run.records:
                values[s, index[rec["round"]]] = number_or_nan(rec.get(key))
        mean, half, _ = mean_ci(values, axis=0)
        return rounds, mean, half

    def summary_stat(self, key: str) -> tuple[float, float]:
        """Mean and 95% CI half-width over the complete seeds of a summary quantity:
        ``best_node_mean``, ``best_avg_model`` or ``final.<metrics field>``."""
        vals = []
        for run in self.complete_runs:
            source = run.summary
            for part in key.split("."):
                source = source.get(part) if isinstance(source, dict) else None
            vals.append(number_or_nan(source))
        mean, half, _ = mean_ci(np.array(vals, dtype=np.float64))
        return float(mean), float(half)


def _metric_label(metric: str, lower: bool, what: str = "") -> str:
    name = {"accuracy": "test accuracy", "rmse": "test RMSE"}.get(metric, metric)
    text = f"{what} {name}".strip()
    text = text[0].upper() + text[1:]
    return f"{text} (lower is better)" if lower else text


def _std_label(metric: str) -> str:
    return {"accuracy": "Std of node accuracy", "rmse": "Std of node RMSE"}.get(
        metric, f"Std of node {metric}"
    )


def _alpha_title(label: Any) -> str:
    if label == "iid":
        return "IID"
    return f"α = {label:g}" if isinstance(label, float) else str(label)


def _context(config: dict[str, Any], skip: Iterable[str]) -> str:
    parts = [str(config.get("dataset"))]
    for name in _CONTEXT:
        if name in skip:
            continue
        value = setting_label(config, name)
        parts.append(_alpha_title(value) if name == "alpha" else f"{name}={value}")
    return ", ".join(parts)


def _file_stem(kind: str, config: dict[str, Any], split: Sequence[str]) -> str:
    if not split:
        return kind
    text = "_".join(f"{n}={format_value(setting_label(config, n))}" for n in split)
    return f"{kind}__{re.sub(r'[^A-Za-z0-9=._-]+', '-', text)}"


class _Writer:
    """Saves figures in every requested format and remembers the paths."""

    def __init__(self, out_dir: Path, formats: Sequence[str]):
        self.out_dir, self.formats, self.paths = out_dir, formats, []

    def save(self, fig, stem: str) -> None:
        for fmt in self.formats:
            path = self.out_dir / f"{stem}.{fmt}"
            fig.savefig(path, dpi=150)
            self.paths.append(path)


def _new_figure(nrows: int, ncols: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * ncols, 3.4 * nrows), layout="tight")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


# Curves are told apart by K, or by algorithm and K when a figure compares algorithms.
BY_K = ("K",)
BY_ALGORITHM = ("algorithm", "K")


def _curve_key(s: Setting, by: Sequence[str]) -> tuple:
    return tuple(s.config.get(f, "mosaic") if f == "algorithm" else s.config[f] for f in by)


def _curve_name(key: tuple, by: Sequence[str]) -> str:
    return " ".join(f"K={v}" if f == "K" else str(v) for f, v in zip(by, key, strict=True))


def _k_colors(settings: Sequence[Setting], by: Sequence[str] = BY_K) -> dict[tuple, Any]:
    """A colour per curve key: viridis over K, or a categorical palette across algorithms."""
    from matplotlib import colormaps

    keys = sorted({_curve_key(s, by) for s in settings})
    if by == BY_K:
        cmap = colormaps["viridis"]
        return {k: cmap(0.85 * i / max(len(keys) - 1, 1)) for i, k in enumerate(keys)}
    palette = colormaps["tab10"]
    return {k: palette(i % 10) for i, k in enumerate(keys)}


def _draw_curves(
    ax,
    settings: Sequence[Setting],
    key: str,
    colors: dict[tuple, Any],
    x_key: str | None = None,
    by: Sequence[str] = BY_K,
) -> None:
    """Metrics field ``key`` (mean and 95% CI over seeds) per curve key (``by``: K, or algorithm
    and K), against the round or, with ``x_key``, against that field's mean (``sim_time_s``)."""
    from matplotlib.ticker import MaxNLocator

    for s in sorted(settings, key=lambda s: _curve_key(s, by)):
        rounds, mean, half = s.curve(key)
        x = rounds if x_key is None else s.curve(x_key)[1]
        color = colors[_curve_key(s, by)]
        n = len(s.runs)
        ax.plot(
            x,
            mean,
            color=color,
            lw=1.6,
            label=_curve_name(_curve_key(s, by), by) + (f" ({n} seeds)" if n > 1 else ""),
        )
        low, high = _band(mean, half, key, s.runs[0].metric)
        ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
    if x_key is None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Round")
    ax.grid(alpha=0.3)


# Fields that cannot be negative; accuracy also cannot pass 1.
_NON_NEGATIVE = frozenset({"consensus_distance", "node_std", "sent_params_per_node", "train_loss"})


def _band(mean: np.ndarray, half: np.ndarray, key: str, metric: str) -> tuple[np.ndarray, ...]:
    """The 95% band ``mean -+ half`` clipped to the values ``key`` can take: with two or three
    seeds the t-interval is wide and would reach below 0 (a std, a distance, an accuracy) or
    above 1 (an accuracy)."""
    low, high = mean - half, mean + half
    floor = 0.0 if key in _NON_NEGATIVE or metric in ("accuracy", "rmse") else None
    ceiling = 1.0 if metric == "accuracy" and key in ("node_mean", "avg_model") else None
    if floor is not None:
        low, high = np.maximum(low, floor), np.maximum(high, floor)
    if ceiling is not None:
        low, high = np.minimum(low, ceiling), np.minimum(high, ceiling)
    return low, high


def _rounds_figures(
    writer: _Writer, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    first = figure_settings[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = _k_colors(figure_settings)
    panels = {
        "rounds_performance": (
            ("node_mean", "Node-average", _metric_label(metric, lower)),
            ("avg_model", "Average model", _metric_label(metric, lower)),
        ),
        "rounds_consensus": (
            ("consensus_distance", "Consensus distance", "Consensus distance"),
            ("node_std", "Std of node performance", _std_label(metric)),
        ),
    }
    for kind, specs in panels.items():
        fig, axes = _new_figure(1, 2)
        for ax, (key, title, ylabel) in zip(axes[0], specs, strict=True):
            _draw_curves(ax, figure_settings, key, colors)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
        axes[0][0].legend(fontsize="small")
        fig.suptitle(_context(first.config, ()))
        writer.save(fig, _file_stem(kind, first.config, split))


def _gain_round_figures(
    writer: _Writer, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    """The paired gain over K = 1 (same seed, same round) against the round, one line per K,
    with its 95% band: the gain peaks early and shrinks, which one final value hides."""
    by_key = {group_key(s.config): s for s in figure_settings}
    compared = [
        s for s in figure_settings if s.config["K"] != 1 and baseline_key(s.config) in by_key
    ]
    # Runs still going count with the rounds they reached, as in the other curves.
    curves = [
        (s, paired_gain_by_round(s.runs, by_key[baseline_key(s.config)].runs, running=True))
        for s in compared
    ]
    curves = [(s, c) for s, c in curves if len(c[0])]
    if not curves:
        return
    first = curves[0][0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = _k_colors(figure_settings)
    fig, axes = _new_figure(1, 1)
    fig.set_size_inches(9.2, 4.2)  # as wide as the two-panel figures: the titles fit
    ax = axes[0][0]
    for s, (rounds, mean, half, count) in sorted(curves, key=lambda sc: sc[0].config["K"]):
        color = colors[_curve_key(s, BY_K)]
        peak, _, at = peak_gain(rounds, mean, half)
        seeds = int(count.max())
        label = f"K={s.config['K']} ({seeds} seed{'s' if seeds > 1 else ''}; peak {peak:+.3g} at round {at:.0f})"
        ax.plot(rounds, mean, color=color, lw=1.6, marker=".", label=label)
        ax.fill_between(rounds, mean - half, mean + half, color=color, alpha=0.2, lw=0)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("Round")
    ax.set_ylabel(f"{'K=1 minus K' if lower else 'K minus K=1'}, node-average {metric}")
    ax.set_title("Gain over K=1: same seed, same round (mean, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle(_context(first.config, ()))
    writer.save(fig, _file_stem("gain_by_round", first.config, split))


def _has_clock(settings: Sequence[Setting]) -> bool:
    return all("sim_time_s" in rec for s in settings for r in s.runs for rec in r.records)


def _time_figures(
    writer: _Writer,
    figure_settings: Sequence[Setting],
    split: Sequence[str],
    by: Sequence[str] = BY_K,
) -> None:
    """The node-average metric against simulated time, and (with a target) the time to reach it;
    one curve and bar per K, or (``by=BY_ALGORITHM``) per algorithm and K."""
    first = figure_settings[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = _k_colors(figure_settings, by)
    suffix = "" if by == BY_K else "_algorithms"
    fig, axes = _new_figure(1, 1)
    fig.set_size_inches(9, 4)  # as wide as the two-panel figures: the title names the setting
    ax = axes[0][0]
    _draw_curves(ax, figure_settings, "node_mean", colors, x_key="sim_time_s", by=by)
    ax.set_xlabel("Simulated time (s)")
    ax.set_ylabel(_metric_label(metric, lower))
    ax.set_title("Node-average against simulated time")
    ax.legend(fontsize="small")
    fig.suptitle(_context(first.config, ()))
    writer.save(fig, _file_stem("time_performance" + suffix, first.config, split))

    target = first.config.get("target")
    if target is None:
        return
    fig, axes = _new_figure(1, 1)
    fig.set_size_inches(9, 4)
    ax = axes[0][0]
    ordered = sorted(figure_settings, key=lambda s: _curve_key(s, by))
    for i, s in enumerate(ordered):
        mean, half = s.summary_stat(
            "time_to_target_s"
        )  # seeds that never reached it: NaN, left out
        reached = sum(r.summary.get("time_to_target_s") is not None for r in s.complete_runs)
        if reached:
            color = colors[_curve_key(s, by)]
            ax.bar(i, mean, yerr=None if math.isnan(half) else half, color=color)
        ax.annotate(f"{reached}/{len(s.complete_runs)}", (i, 0), ha="center", va="bottom")
    ax.set_xticks(range(len(ordered)), [_curve_name(_curve_key(s, by), by) for s in ordered])
    ax.set_ylabel("Simulated time (s)")
    ax.set_title(
        f"Time to node-average {metric} {'<=' if lower else '>='} {target:g} (seeds reached)"
    )
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(_context(first.config, ()))
    writer.save(fig, _file_stem("time_to_target" + suffix, first.config, split))


def _degree_figures(
    writer: _Writer, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    usable = [s for s in figure_settings if s.complete_runs]
    if not usable:
        return  # best/final values need complete runs
    first = usable[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = _k_colors(usable)
    panels = {
        "degree_performance": (
            ("best_node_mean", "Node-average", _metric_label(metric, lower, "best")),
            ("best_avg_model", "Average model", _metric_label(metric, lower, "best")),
        ),
        "degree_consensus": (
            ("final.consensus_distance", "Consensus distance", "Final consensus distance"),
            ("final.node_std", "Std of node performance", f"Final {_std_label(metric).lower()}"),
        ),
    }
    by_k: dict[int, list[Setting]] = {}
    for s in usable:
        by_k.setdefault(s.config["K"], []).append(s)
    for kind, specs in panels.items():
        fig, axes = _new_figure(1, 2)
        for ax, (key, title, ylabel) in zip(axes[0], specs, strict=True):
            for k in sorted(by_k):
                pts = sorted(by_k[k], key=lambda s: s.config["degree"])
                xs = np.array([s.config["degree"] for s in pts])
                stats = np.array([s.summary_stat(key) for s in pts])
                ax.errorbar(
                    xs,
                    stats[:, 0],
                    yerr=stats[:, 1],
                    color=colors[(k,)],
                    marker="o",
                    capsize=3,
                    label=f"K={k}",
                )
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({s.config["degree"] for s in usable}))
            ax.set_xticklabels([str(d) for d in sorted({s.config["degree"] for s in usable})])
            ax.set_xlabel("Degree")
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize="small")
        fig.suptitle(_context(first.config, ("degree",)))
        writer.save(fig, _file_stem(kind, first.config, split))


# Settings that split gain figures apart (their metrics do not share an axis); any other
# varying setting (nodes, rounds, ...) becomes its own line.
_GAIN_PANELS = ("dataset", "alpha")


def _distinguishing(configs: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """The fewest of ``names`` (network size first) that tell the configs apart as all do: a
    setting that always changes together with an earlier one (say the rounds of a study that
    ran each network size for its own number of rounds) does not lengthen the legend."""
    ordered = sorted(names, key=lambda n: n != "nodes")
    everything = {tuple(setting_label(c, n) for n in ordered) for c in configs}
    kept: list[str] = []
    for name in ordered:
        if len({tuple(setting_label(c, n) for n in kept) for c in configs}) == len(everything):
            break
        kept.append(name)
    return kept


def _gain_figures(
    writer: _Writer, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    by_key = {group_key(s.config): s for s in figure_settings}
    compared = [
        s
        for s in figure_settings
        if s.config["K"] != 1 and baseline_key(s.config) in by_key and s.complete_runs
    ]
    if len({(s.config["degree"], s.config["nodes"]) for s in compared}) < 2:
        return  # one network: nothing to draw a trend over
    first = compared[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    names = _distinguishing(
        [s.config for s in compared],
        [v for v in varying_settings([s.config for s in compared]) if v not in ("K", "degree")],
    )
    lines: dict[tuple, list[Setting]] = {}
    for s in compared:
        key = (*(setting_label(s.config, n) for n in names), s.config["K"])
        lines.setdefault(key, []).append(s)
    order = sorted(lines, key=lambda key: tuple(map(setting_sort_key, (*names, "K"), key)))
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    fig, axes = _new_figure(1, 2)
    panels = (
        ("final_node_mean", "Node-average"),
        ("final_avg_model", "Average model"),
    )
    degrees = sorted({s.config["degree"] for s in compared})
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, line in enumerate(order):
            pts = sorted(lines[line], key=lambda s: s.config["degree"])
            stats = np.array(
                [paired_difference(s.runs, by_key[baseline_key(s.config)].runs, key) for s in pts]
            )
            label = ", ".join(
                [f"{n}={format_value(v)}" for n, v in zip(names, line[:-1], strict=True)]
                + [f"K={line[-1]}"]
            )
            # Lines side by side at a shared degree: a small shift on the log axis.
            shift = 2 ** (0.04 * (i - (len(order) - 1) / 2))
            ax.errorbar(
                [s.config["degree"] * shift for s in pts],
                stats[:, 0],
                yerr=stats[:, 1],
                color=palette(i % 10),
                marker="o",
                capsize=3,
                label=label,
            )
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(degrees)
        ax.set_xticklabels([str(d) for d in degrees])
        ax.minorticks_off()
        ax.set_xlabel("Degree")
        ax.set_title(f"{title}: K minus K=1, same seed")
        ax.set_ylabel(f"Δ final {_metric_label(metric, lower).lower()}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(_context(first.config, ("degree", *names)))
    writer.save(fig, _file_stem("gain_vs_degree", first.config, split))


def _alpha_figures(
    writer: _Writer, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    first = figure_settings[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = _k_colors(figure_settings)
    columns: dict[Any, list[Setting]] = {}
    for s in figure_settings:
        columns.setdefault(setting_label(s.config, "alpha"), []).append(s)
    order = sorted(columns, key=lambda v: setting_sort_key("alpha", v))
    rows = {
        "alpha_performance": (
            ("node_mean", "Node-average", _metric_label(metric, lower)),
            ("avg_model", "Average model", _metric_label(metric, lower)),
        ),
        "alpha_consensus": (
            ("consensus_distance", "Consensus distance", "Consensus distance"),
            ("node_std", "Std of node performance", _std_label(metric)),
        ),
    }
    for kind, specs in rows.items():
        fig, axes = _new_figure(2, len(order))
        for r, (key, title, ylabel) in enumerate(specs):
            for c, label in enumerate(order):
                ax = axes[r][c]
                _draw_curves(ax, columns[label], key, colors)
                ax.set_title(f"{title}, {_alpha_title(label)}")
                if c == 0:
                    ax.set_ylabel(ylabel)
            # Shared y range per row, so distributions compare at a glance.
            lows, highs = zip(*(axes[r][c].get_ylim() for c in range(len(order))), strict=True)
            for c in range(len(order)):
                axes[r][c].set_ylim(min(lows), max(highs))
        axes[0][0].legend(fontsize="small")
        fig.suptitle(_context(first.config, ("alpha",)))
        writer.save(fig, _file_stem(kind, first.config, split))


def _split(settings: Sequence[Setting], fields: Sequence[str]) -> list[list[Setting]]:
    """Partition ``settings`` by their values of ``fields``, in sorted order of those values."""
    out: dict[tuple, list[Setting]] = {}
    for s in settings:
        out.setdefault(tuple(setting_label(s.config, f) for f in fields), []).append(s)
    order = sorted(out, key=lambda key: tuple(map(setting_sort_key, fields, key)))
    return [out[key] for key in order]


def plot_runs(
    paths: Iterable[str | Path], out_dir: str | Path, formats: Sequence[str] = ("png", "pdf")
) -> list[Path]:
    """Draw every applicable figure kind for the runs found under ``paths``.

    Args:
        paths: run folders, sweep folders or any folders above them; every folder holding
            ``config.json`` and ``metrics.jsonl`` at any depth is used.
        out_dir: where the figures go (created if missing).
        formats: file formats, a subset of ``("png", "pdf", "svg")``.

    Returns:
        The written files, in drawing order.
    """
    formats = tuple(formats)
    if not formats:
        raise MosaicValueError("formats is empty; choose from png, pdf, svg")
    for fmt in formats:
        if fmt not in FORMATS:
            raise MosaicValueError(f"unknown plot format {fmt!r}; choose from {', '.join(FORMATS)}")
    paths = list(paths)
    runs = find_runs(paths)
    if not runs:
        raise MosaicValueError(
            f"no run folders (config.json + metrics.jsonl) under {', '.join(map(str, paths))}"
        )
    settings = [Setting(members[0].config, tuple(members)) for members in group_runs(runs)]
    varying = varying_settings([s.config for s in settings])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, formats)

    split = [v for v in varying if v != "K"]
    for part in _split(settings, split):
        _rounds_figures(writer, part, split)
        _gain_round_figures(writer, part, split)
        if _has_clock(part):
            _time_figures(writer, part, split)
    if "algorithm" in varying:  # the algorithms side by side in time, per other setting
        split = [v for v in varying if v not in ("K", "algorithm")]
        for part in _split(settings, split):
            if _has_clock(part):
                _time_figures(writer, part, split, by=BY_ALGORITHM)
    ks = {s.config["K"] for s in settings}
    if 1 in ks and len(ks) > 1 and ({"degree", "nodes"} & set(varying)):
        split = [v for v in varying if v in _GAIN_PANELS]
        for part in _split(settings, split):
            _gain_figures(writer, part, split)
    for axis, draw in (("degree", _degree_figures), ("alpha", _alpha_figures)):
        if axis not in varying:
            continue
        split = [v for v in varying if v not in ("K", axis)]
        for part in _split(settings, split):
            # A comparison across one value is no comparison (e.g. alpha tied to the dataset).
            if len({str(setting_label(s.config, axis)) for s in part}) > 1:
                draw(writer, part, split)
    return writer.paths


__all__ = ["FORMATS", "Setting", "plot_runs"]
