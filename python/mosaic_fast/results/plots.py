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

from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import MosaicValueError
from .plot_curves import (
    alpha_figures,
    gain_round_figures,
    has_clock,
    rounds_figures,
    time_figures,
)
from .plot_degrees import GAIN_PANELS, degree_figures, gain_figures
from .plot_parts import BY_ALGORITHM, FigureWriter, Setting, split_settings
from .records import find_runs, group_runs, setting_label, varying_settings

FORMATS = ("png", "pdf", "svg")


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
    formats = _checked_formats(formats)
    settings = _settings_under(list(paths))
    varying = varying_settings([s.config for s in settings])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = FigureWriter(out, formats)
    _curve_figures(writer, settings, varying)
    _gain_vs_degree_figures(writer, settings, varying)
    _comparison_figures(writer, settings, varying)
    return writer.paths


def _checked_formats(formats: Sequence[str]) -> tuple[str, ...]:
    formats = tuple(formats)
    if not formats:
        raise MosaicValueError("formats is empty; choose from png, pdf, svg")
    for fmt in formats:
        if fmt not in FORMATS:
            raise MosaicValueError(f"unknown plot format {fmt!r}; choose from {', '.join(FORMATS)}")
    return formats


def _settings_under(paths: list[str | Path]) -> list[Setting]:
    """The runs under ``paths`` grouped by setting; none at all is an error."""
    runs = find_runs(paths)
    if not runs:
        raise MosaicValueError(
            f"no run folders (config.json + metrics.jsonl) under {', '.join(map(str, paths))}"
        )
    return [Setting(members[0].config, tuple(members)) for members in group_runs(runs)]


def _curve_figures(writer: FigureWriter, settings: list[Setting], varying: list[str]) -> None:
    """Per K against the round (and simulated time), for every combination of the other
    varying settings; with several algorithms, also the algorithms side by side in time."""
    split = [v for v in varying if v != "K"]
    for part in split_settings(settings, split):
        rounds_figures(writer, part, split)
        gain_round_figures(writer, part, split)
        if has_clock(part):
            time_figures(writer, part, split)
    if "algorithm" in varying:  # the algorithms side by side in time, per other setting
        split = [v for v in varying if v not in ("K", "algorithm")]
        for part in split_settings(settings, split):
            if has_clock(part):
                time_figures(writer, part, split, by=BY_ALGORITHM)


def _gain_vs_degree_figures(
    writer: FigureWriter, settings: list[Setting], varying: list[str]
) -> None:
    """The gain over K = 1 against the degree, when K = 1 ran beside other K on several
    networks."""
    ks = {s.config["K"] for s in settings}
    if 1 in ks and len(ks) > 1 and ({"degree", "nodes"} & set(varying)):
        split = [v for v in varying if v in GAIN_PANELS]
        for part in split_settings(settings, split):
            gain_figures(writer, part, split)


def _comparison_figures(writer: FigureWriter, settings: list[Setting], varying: list[str]) -> None:
    """Across degrees and across data distributions, when those vary."""
    for axis, draw in (("degree", degree_figures), ("alpha", alpha_figures)):
        if axis not in varying:
            continue
        split = [v for v in varying if v not in ("K", axis)]
        for part in split_settings(settings, split):
            # A comparison across one value is no comparison (e.g. alpha tied to the dataset).
            if len({str(setting_label(s.config, axis)) for s in part}) > 1:
                draw(writer, part, split)


__all__ = ["FORMATS", "Setting", "plot_runs"]
