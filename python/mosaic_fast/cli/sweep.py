"""``mosaic-fast sweep``: run a grid of experiments (or rebuild a sweep's summary table).

Every ``run`` option works here as itself; the settings declared as sweep axes take comma lists.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import MosaicValueError
from ..results.summary import SUMMARY_MD
from ..settings import SETTINGS
from .common import OneLineCommand, OneLineError, one_line_errors
from .options import config_option, given, setting_options

if TYPE_CHECKING:
    from ..settings import ExperimentConfig
    from ..sweep import SweepGrid

# Settings that take a comma list here: every declared sweep axis (the seed among them).
_LISTS = tuple(s.name for s in SETTINGS.values() if s.axis)


@click.command("sweep", cls=OneLineCommand)
@setting_options(
    lists=_LISTS,
    notes={"alpha": "'iid' is the IID partition."},
    aliases={"seed": ("--seeds",)},
)
@click.option(
    "--set",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fix a setting for every cell without naming cells by it, e.g. --set rounds=50 "
    "--set lr=0.1. Repeatable.",
)
@config_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Sweep folder.")
@click.option("--dry-run", is_flag=True, help="List the cells (and their state) without running.")
@click.option(
    "--summarize",
    "summarize_dir",
    type=click.Path(file_okay=False),
    help="Only rebuild summary.csv/summary.md of an existing sweep folder.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def sweep(
    pairs: tuple[str, ...],
    config_file: str | None,
    out_dir: str | None,
    dry_run: bool,
    summarize_dir: str | None,
    quiet: bool,
    **options: Any,
) -> None:
    """Run every combination of the list-valued options; one run folder per cell.

    Options marked LIST take comma lists; each value they are given becomes part of the cell
    folder names (K=8_alpha=0.1_seed=0). Other options, --set and --config fix a setting for
    every cell. Complete cells are skipped and checkpointed ones resumed, so re-running the same
    command continues an interrupted sweep. Writes sweep.json, summary.csv and summary.md to --out.

    \b
    Example:
      mosaic-fast sweep --dataset fashion-mnist --K 1,2,4,8,16 --alpha iid,1,0.1 \\
          --degree 2,8,16 --seed 0,1,2 --rounds 200 --out sweeps/fmnist
    """
    from .. import sweep as sw

    with one_line_errors():
        if summarize_dir is not None:
            sw.summarize_sweep(summarize_dir)
            click.echo((Path(summarize_dir) / SUMMARY_MD).read_text(), nl=False)
            return
        if out_dir is None:
            raise OneLineError("--out is required (or use --summarize DIR)")
        grid, base = grid_and_base(options, pairs, config_file)
        cells = grid.cells(base)
        if dry_run:
            for cell in cells:
                click.echo(f"{cell.name}\t{sw.cell_state(Path(out_dir) / cell.name)}")
            click.echo(f"{len(cells)} cells")
            return
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", sw.DivergedCellsWarning)
            warnings.simplefilter("always", sw.CellsInUseWarning)
            sw.run_sweep(grid, out_dir, base=base, quiet=quiet)
        if not quiet:
            click.echo((Path(out_dir) / SUMMARY_MD).read_text(), nl=False)
        for warning in caught:
            if issubclass(warning.category, sw.DivergedCellsWarning):
                click.echo(
                    f"note: {warning.message}; marked in summary.md, not run again", err=True
                )
            elif issubclass(warning.category, sw.CellsInUseWarning):
                click.echo(f"note: {warning.message}", err=True)
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )


def grid_and_base(
    options: dict[str, Any], pairs: tuple[str, ...] = (), config_file: str | None = None
) -> tuple[SweepGrid, ExperimentConfig]:
    """The SweepGrid of the list options and the base config of --config, --set and the other
    options (later ones win; --set and an option for the same setting conflict)."""
    from .. import sweep as sw
    from ..settings import ExperimentConfig, load_toml

    from_line = given(options)
    axes = {
        (sw.SEEDS if name == "seed" else name): sw.parse_list(name, text)
        for name, text in from_line.items()
        if name in _LISTS
    }
    values = load_toml(config_file) if config_file is not None else {}
    for pair in pairs:
        name, value = sw.parse_setting(pair)
        clash = _option_setting(name, from_line)
        if clash is not None:
            raise MosaicValueError(f"--set {pair!r} conflicts with {SETTINGS[clash].option}")
        values[name] = value
    if "partition" in from_line and "alpha" in from_line:
        raise MosaicValueError("--partition conflicts with --alpha, which sets the partition")
    values.update((k, v) for k, v in from_line.items() if k not in _LISTS)
    return sw.SweepGrid(**axes), ExperimentConfig.from_dict(values)


def _option_setting(name: str, from_line: dict[str, Any]) -> str | None:
    """The option given on the command line that also sets ``name``, if any."""
    if name in from_line:
        return name
    if name == "partition" and "alpha" in from_line:
        return "alpha"  # the alpha axis sets the partition
    return None
