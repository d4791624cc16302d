"""The figures against the gossip degree: best and final metrics per K (Figs. 6-7), and the
paired gain over K = 1 on the same seed, one line per K and per other varying setting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .plot_parts import (
    FigureWriter,
    Setting,
    curve_colors,
    file_stem,
    metric_label,
    new_figure,
    std_label,
    title_context,
)
from .records import format_value, group_key, setting_label, setting_sort_key, varying_settings
from .summary import baseline_key, paired_difference

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def degree_figures(
    writer: FigureWriter, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    usable = [s for s in figure_settings if s.complete_runs]
    if not usable:
        return  # best/final values need complete runs
    first = usable[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = curve_colors(usable)
    panels = {
        "degree_performance": (
            ("best_node_mean", "Node-average", metric_label(metric, lower, "best")),
            ("best_avg_model", "Average model", metric_label(metric, lower, "best")),
        ),
        "degree_consensus": (
            ("final.consensus_distance", "Consensus distance", "Final consensus distance"),
            ("final.node_std", "Std of node performance", f"Final {std_label(metric).lower()}"),
        ),
    }
    by_k: dict[int, list[Setting]] = {}
    for s in usable:
        by_k.setdefault(s.config["K"], []).append(s)
    for kind, specs in panels.items():
        fig, axes = new_figure(1, 2)
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
        fig.suptitle(title_context(first.config, ("degree",)))
        writer.save(fig, file_stem(kind, first.config, split))


# Settings that split gain figures apart (their metrics do not share an axis); any other
# varying setting (nodes, rounds, ...) becomes its own line.
GAIN_PANELS = ("dataset", "alpha")


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


def gain_figures(
    writer: FigureWriter, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    """The paired difference to K = 1 (same seed) of the final node-average and average-model
    metric against the degree, one line per K and per other varying setting."""
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
    names, lines = _gain_lines(compared)
    fig, axes = new_figure(1, 2)
    panels = (
        ("final_node_mean", "Node-average"),
        ("final_avg_model", "Average model"),
    )
    degrees = sorted({s.config["degree"] for s in compared})
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        _draw_gain_lines(ax, lines, names, key, by_key)
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xticks(degrees)
        ax.set_xticklabels([str(d) for d in degrees])
        ax.minorticks_off()
        ax.set_xlabel("Degree")
        ax.set_title(f"{title}: K minus K=1, same seed")
        ax.set_ylabel(f"Δ final {metric_label(metric, lower).lower()}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    fig.suptitle(title_context(first.config, ("degree", *names)))
    writer.save(fig, file_stem("gain_vs_degree", first.config, split))


def _gain_lines(
    compared: Sequence[Setting],
) -> tuple[list[str], dict[tuple[Any, ...], list[Setting]]]:
    """The settings (besides K and the degree) that tell the lines apart, and each line's
    settings keyed by those settings' values and K, in legend order."""
    names = _distinguishing(
        [s.config for s in compared],
        [v for v in varying_settings([s.config for s in compared]) if v not in ("K", "degree")],
    )
    lines: dict[tuple[Any, ...], list[Setting]] = {}
    for s in compared:
        key = (*(setting_label(s.config, n) for n in names), s.config["K"])
        lines.setdefault(key, []).append(s)
    order = sorted(lines, key=lambda key: tuple(map(setting_sort_key, (*names, "K"), key)))
    return names, {key: lines[key] for key in order}


def _draw_gain_lines(
    ax: Axes,
    lines: dict[tuple[Any, ...], list[Setting]],
    names: Sequence[str],
    key: str,
    by_key: dict[Any, Setting],
) -> None:
    """One line per entry of ``lines``: the paired difference of summary field ``key`` to the
    K = 1 setting (in ``by_key``) against the degree."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    for i, (line, members) in enumerate(lines.items()):
        pts = sorted(members, key=lambda s: s.config["degree"])
        stats = np.array(
            [paired_difference(s.runs, by_key[baseline_key(s.config)].runs, key) for s in pts]
        )
        label = ", ".join(
            [f"{n}={format_value(v)}" for n, v in zip(names, line[:-1], strict=True)]
            + [f"K={line[-1]}"]
        )
        # Lines side by side at a shared degree: a small shift on the log axis.
        shift = 2 ** (0.04 * (i - (len(lines) - 1) / 2))
        ax.errorbar(
            [s.config["degree"] * shift for s in pts],
            stats[:, 0],
            yerr=stats[:, 1],
            color=palette(i % 10),
            marker="o",
            capsize=3,
            label=label,
        )
