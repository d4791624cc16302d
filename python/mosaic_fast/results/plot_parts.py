"""What every figure of :mod:`mosaic_fast.results.plots` is drawn with: a :class:`Setting` (one
configuration's runs over seeds, with its mean curves), labels and titles, the colour of each curve,
and a writer that saves a figure in every requested format."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .records import RunRecord, format_value, number_or_nan, setting_label, setting_sort_key
from .stats import mean_ci

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


def metric_label(metric: str, lower: bool, what: str = "") -> str:
    name = {"accuracy": "test accuracy", "rmse": "test RMSE"}.get(metric, metric)
    text = f"{what} {name}".strip()
    text = text[0].upper() + text[1:]
    return f"{text} (lower is better)" if lower else text


def std_label(metric: str) -> str:
    return {"accuracy": "Std of node accuracy", "rmse": "Std of node RMSE"}.get(
        metric, f"Std of node {metric}"
    )


def alpha_title(label: Any) -> str:
    if label == "iid":
        return "IID"
    return f"α = {label:g}" if isinstance(label, float) else str(label)


def title_context(config: dict[str, Any], skip: Iterable[str]) -> str:
    parts = [str(config.get("dataset"))]
    for name in _CONTEXT:
        if name in skip:
            continue
        value = setting_label(config, name)
        parts.append(alpha_title(value) if name == "alpha" else f"{name}={value}")
    return ", ".join(parts)


def file_stem(kind: str, config: dict[str, Any], split: Sequence[str]) -> str:
    if not split:
        return kind
    text = "_".join(f"{n}={format_value(setting_label(config, n))}" for n in split)
    return f"{kind}__{re.sub(r'[^A-Za-z0-9=._-]+', '-', text)}"


class FigureWriter:
    """Saves figures in every requested format and remembers the paths."""

    def __init__(self, out_dir: Path, formats: Sequence[str]):
        self.out_dir, self.formats = out_dir, formats
        self.paths: list[Path] = []

    def save(self, fig: Figure, stem: str) -> None:
        for fmt in self.formats:
            path = self.out_dir / f"{stem}.{fmt}"
            fig.savefig(path, dpi=150)
            self.paths.append(path)


def new_figure(nrows: int, ncols: int) -> tuple[Figure, np.ndarray]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * ncols, 3.4 * nrows), layout="tight")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


# Curves are told apart by K, or by algorithm and K when a figure compares algorithms.
BY_K = ("K",)
BY_ALGORITHM = ("algorithm", "K")


def curve_key(s: Setting, by: Sequence[str]) -> tuple[Any, ...]:
    return tuple(s.config.get(f, "mosaic") if f == "algorithm" else s.config[f] for f in by)


def curve_name(key: tuple[Any, ...], by: Sequence[str]) -> str:
    return " ".join(f"K={v}" if f == "K" else str(v) for f, v in zip(by, key, strict=True))


def curve_colors(
    settings: Sequence[Setting], by: Sequence[str] = BY_K
) -> dict[tuple[Any, ...], Any]:
    """A colour per curve key: viridis over K, or a categorical palette across algorithms."""
    from matplotlib import colormaps

    keys = sorted({curve_key(s, by) for s in settings})
    if by == BY_K:
        cmap = colormaps["viridis"]
        return {k: cmap(0.85 * i / max(len(keys) - 1, 1)) for i, k in enumerate(keys)}
    palette = colormaps["tab10"]
    return {k: palette(i % 10) for i, k in enumerate(keys)}


def draw_curves(
    ax: Axes,
    settings: Sequence[Setting],
    key: str,
    colors: dict[tuple[Any, ...], Any],
    x_key: str | None = None,
    by: Sequence[str] = BY_K,
) -> None:
    """Metrics field ``key`` (mean and 95% CI over seeds) per curve key (``by``: K, or algorithm
    and K), against the round or, with ``x_key``, against that field's mean (``sim_time_s``)."""
    from matplotlib.ticker import MaxNLocator

    for s in sorted(settings, key=lambda s: curve_key(s, by)):
        rounds, mean, half = s.curve(key)
        x = rounds if x_key is None else s.curve(x_key)[1]
        color = colors[curve_key(s, by)]
        n = len(s.runs)
        ax.plot(
            x,
            mean,
            color=color,
            lw=1.6,
            label=curve_name(curve_key(s, by), by) + (f" ({n} seeds)" if n > 1 else ""),
        )
        low, high = band(mean, half, key, s.runs[0].metric)
        ax.fill_between(x, low, high, color=color, alpha=0.2, lw=0)
    if x_key is None:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Round")
    ax.grid(alpha=0.3)


# Fields that cannot be negative; accuracy also cannot pass 1.
_NON_NEGATIVE = frozenset({"consensus_distance", "node_std", "sent_params_per_node", "train_loss"})


def band(mean: np.ndarray, half: np.ndarray, key: str, metric: str) -> tuple[np.ndarray, ...]:
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


def split_settings(settings: Sequence[Setting], fields: Sequence[str]) -> list[list[Setting]]:
    """Partition ``settings`` by their values of ``fields``, in sorted order of those values."""
    out: dict[tuple[Any, ...], list[Setting]] = {}
    for s in settings:
        out.setdefault(tuple(setting_label(s.config, f) for f in fields), []).append(s)
    order = sorted(out, key=lambda key: tuple(map(setting_sort_key, fields, key)))
    return [out[key] for key in order]
