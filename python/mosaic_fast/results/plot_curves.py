"""The figures of curves against the round or simulated time: per K (Figs. 4-5), the paired
gain over K = 1 by round, the time figures, and one column per data distribution (Figs. 8-10)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .plot_parts import (
    BY_K,
    FigureWriter,
    Setting,
    alpha_title,
    curve_colors,
    curve_key,
    curve_name,
    draw_curves,
    file_stem,
    metric_label,
    new_figure,
    std_label,
    title_context,
)
from .records import group_key, setting_label, setting_sort_key
from .summary import baseline_key, paired_gain_by_round, peak_gain


def rounds_figures(
    writer: FigureWriter, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    first = figure_settings[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = curve_colors(figure_settings)
    panels = {
        "rounds_performance": (
            ("node_mean", "Node-average", metric_label(metric, lower)),
            ("avg_model", "Average model", metric_label(metric, lower)),
        ),
        "rounds_consensus": (
            ("consensus_distance", "Consensus distance", "Consensus distance"),
            ("node_std", "Std of node performance", std_label(metric)),
        ),
    }
    for kind, specs in panels.items():
        fig, axes = new_figure(1, 2)
        for ax, (key, title, ylabel) in zip(axes[0], specs, strict=True):
            draw_curves(ax, figure_settings, key, colors)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
        axes[0][0].legend(fontsize="small")
        fig.suptitle(title_context(first.config, ()))
        writer.save(fig, file_stem(kind, first.config, split))


def gain_round_figures(
    writer: FigureWriter, figure_settings: Sequence[Setting], split: Sequence[str]
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
    colors = curve_colors(figure_settings)
    fig, axes = new_figure(1, 1)
    fig.set_size_inches(9.2, 4.2)  # as wide as the two-panel figures: the titles fit
    ax = axes[0][0]
    for s, (rounds, mean, half, count) in sorted(curves, key=lambda sc: sc[0].config["K"]):
        color = colors[curve_key(s, BY_K)]
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
    fig.suptitle(title_context(first.config, ()))
    writer.save(fig, file_stem("gain_by_round", first.config, split))


def has_clock(settings: Sequence[Setting]) -> bool:
    return all("sim_time_s" in rec for s in settings for r in s.runs for rec in r.records)


def time_figures(
    writer: FigureWriter,
    figure_settings: Sequence[Setting],
    split: Sequence[str],
    by: Sequence[str] = BY_K,
) -> None:
    """The node-average metric against simulated time, and (with a target) the time to reach it;
    one curve and bar per K, or (``by=BY_ALGORITHM``) per algorithm and K."""
    first = figure_settings[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = curve_colors(figure_settings, by)
    suffix = "" if by == BY_K else "_algorithms"
    fig, axes = new_figure(1, 1)
    fig.set_size_inches(9, 4)  # as wide as the two-panel figures: the title names the setting
    ax = axes[0][0]
    draw_curves(ax, figure_settings, "node_mean", colors, x_key="sim_time_s", by=by)
    ax.set_xlabel("Simulated time (s)")
    ax.set_ylabel(metric_label(metric, lower))
    ax.set_title("Node-average against simulated time")
    ax.legend(fontsize="small")
    fig.suptitle(title_context(first.config, ()))
    writer.save(fig, file_stem("time_performance" + suffix, first.config, split))

    target = first.config.get("target")
    if target is None:
        return
    fig, axes = new_figure(1, 1)
    fig.set_size_inches(9, 4)
    ax = axes[0][0]
    ordered = sorted(figure_settings, key=lambda s: curve_key(s, by))
    for i, s in enumerate(ordered):
        mean, half = s.summary_stat(
            "time_to_target_s"
        )  # seeds that never reached it: NaN, left out
        reached = sum(
            r.summary is not None and r.summary.get("time_to_target_s") is not None
            for r in s.complete_runs
        )
        if reached:
            color = colors[curve_key(s, by)]
            ax.bar(i, mean, yerr=None if math.isnan(half) else half, color=color)
        ax.annotate(f"{reached}/{len(s.complete_runs)}", (i, 0), ha="center", va="bottom")
    ax.set_xticks(range(len(ordered)), [curve_name(curve_key(s, by), by) for s in ordered])
    ax.set_ylabel("Simulated time (s)")
    ax.set_title(
        f"Time to node-average {metric} {'<=' if lower else '>='} {target:g} (seeds reached)"
    )
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(title_context(first.config, ()))
    writer.save(fig, file_stem("time_to_target" + suffix, first.config, split))


def alpha_figures(
    writer: FigureWriter, figure_settings: Sequence[Setting], split: Sequence[str]
) -> None:
    first = figure_settings[0]
    metric, lower = first.runs[0].metric, first.runs[0].lower_is_better
    colors = curve_colors(figure_settings)
    columns: dict[Any, list[Setting]] = {}
    for s in figure_settings:
        columns.setdefault(setting_label(s.config, "alpha"), []).append(s)
    order = sorted(columns, key=lambda v: setting_sort_key("alpha", v))
    rows = {
        "alpha_performance": (
            ("node_mean", "Node-average", metric_label(metric, lower)),
            ("avg_model", "Average model", metric_label(metric, lower)),
        ),
        "alpha_consensus": (
            ("consensus_distance", "Consensus distance", "Consensus distance"),
            ("node_std", "Std of node performance", std_label(metric)),
        ),
    }
    for kind, specs in rows.items():
        fig, axes = new_figure(2, len(order))
        for r, (key, title, ylabel) in enumerate(specs):
            for c, label in enumerate(order):
                ax = axes[r][c]
                draw_curves(ax, columns[label], key, colors)
                ax.set_title(f"{title}, {alpha_title(label)}")
                if c == 0:
                    ax.set_ylabel(ylabel)
            # Shared y range per row, so distributions compare at a glance.
            lows, highs = zip(*(axes[r][c].get_ylim() for c in range(len(order))), strict=True)
            for c in range(len(order)):
                axes[r][c].set_ylim(min(lows), max(highs))
        axes[0][0].legend(fontsize="small")
        fig.suptitle(title_context(first.config, ("alpha",)))
        writer.save(fig, file_stem(kind, first.config, split))
