"""``mosaic-fast sweep``: run a grid of experiments (or rebuild a sweep's summary table)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import MosaicError, MosaicValueError
from ..summary import SUMMARY_MD

# (option, SweepGrid field, element type, help)
_GRID_OPTIONS = (
    ("--K", "K", int, "Numbers of fragments, e.g. 1,2,4,8,16."),
    ("--alpha", "alpha", float, "Data distributions: 'iid' or Dirichlet alphas, e.g. iid,1,0.1."),
    ("--degree", "degree", int, "Out-degrees of the gossip graphs, e.g. 2,8,16."),
    ("--nodes", "nodes", int, "Numbers of nodes, e.g. 16,64."),
    ("--topology", "topology", str, "Graph samplers, e.g. el-oracle,static."),
    ("--fragmenter", "fragmenter", str, "Fragmenters, e.g. contiguous,random."),
    ("--seeds", "seeds", int, "Seeds, e.g. 0,1,2 (default: the base config's seed)."),
)


def _grid_options(func):
    for flag, field, _, help_ in reversed(_GRID_OPTIONS):
        func = click.option(flag, f"grid_{field}", metavar="LIST", help=help_)(func)
    return func


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(2)


@click.command("sweep")
@_grid_options
@click.option("--dataset", default=None, help="Dataset of every cell (default: the base config's).")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fix any other config field for every cell, e.g. --set rounds=50 --set lr=0.1. Repeatable.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file with base settings ([run] table or top level); --dataset/--set override it.",
)
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
    dataset, settings, config_file, out_dir, dry_run, summarize_dir, quiet, **grid_text
) -> None:
    """Run every combination of the list-valued options; one run folder per cell.

    Complete cells are skipped and checkpointed ones resumed, so re-running the same command
    continues an interrupted sweep. Writes sweep.json, summary.csv and summary.md to --out.

    \b
    Example:
      mosaic-fast sweep --dataset fashion-mnist --K 1,2,4,8,16 --alpha iid,1,0.1 \\
          --degree 2,8,16 --seeds 0,1,2 --set rounds=200 --out sweeps/fmnist
    """
    from .. import sweep as sw

    try:
        if summarize_dir is not None:
            table_path = Path(summarize_dir) / SUMMARY_MD
            sw.summarize_sweep(summarize_dir)
            click.echo(table_path.read_text(), nl=False)
            return
        if out_dir is None:
            _fail("--out is required (or use --summarize DIR)")
        grid = _build_grid(sw, grid_text)
        base = _build_base(sw, config_file, dataset, settings, grid)
        cells = grid.cells(base)
        if dry_run:
            for cell in cells:
                click.echo(f"{cell.name}\t{sw.cell_state(Path(out_dir) / cell.name)}")
            click.echo(f"{len(cells)} cells")
            return
        sw.run_sweep(grid, out_dir, base=base, quiet=quiet)
        if not quiet:
            click.echo((Path(out_dir) / SUMMARY_MD).read_text(), nl=False)
    except MosaicError as exc:
        _fail(str(exc))


def _build_grid(sw, grid_text: dict[str, str | None]):
    values = {}
    for flag, field, kind, _ in _GRID_OPTIONS:
        text = grid_text[f"grid_{field}"]
        if text is not None:
            values[field] = sw.parse_list(flag.lstrip("-"), text, kind)
    return sw.SweepGrid(**values)


def _build_base(sw, config_file, dataset, settings, grid):
    from ..config import ExperimentConfig, load_toml

    values = load_toml(config_file) if config_file is not None else {}
    if dataset is not None:
        values["dataset"] = dataset
    for pair in settings:
        key, value = sw.parse_setting(pair)
        axis = {"seed": "seeds", "partition": "alpha"}.get(key, key)
        if axis in (*sw.AXES, "seeds") and getattr(grid, axis) is not None:
            raise MosaicValueError(f"--set {pair!r} conflicts with the grid option --{axis}")
        values[key] = value
    return ExperimentConfig.from_dict(values)
