"""``mosaic-fast plot``: draw the paper's figures from run or sweep folders."""

from __future__ import annotations

from pathlib import Path

import click

from .common import one_line_errors


@click.command("plot")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Folder for the figures (default: PATHS[0]/plots).",
)
@click.option(
    "--format",
    "formats",
    default="png,pdf",
    show_default=True,
    metavar="LIST",
    help="Comma-separated file formats: png, pdf, svg.",
)
def plot(paths: tuple[str, ...], out_dir: str | None, formats: str) -> None:
    """Draw node-average / average-model metric, consensus distance (mean L2 distance to the
    average model) and node std vs rounds per K, and (when they vary) best metric vs degree and per-distribution panels.

    Every folder under PATHS holding config.json and metrics.jsonl is used; runs that differ
    only in their seed are averaged, with 95% confidence bands over seeds.
    """
    from ..results.plots import plot_runs

    with one_line_errors():
        fmts = [f.strip().lower() for f in formats.split(",") if f.strip()]
        written = plot_runs(
            paths, out_dir if out_dir is not None else Path(paths[0]) / "plots", fmts
        )
    for path in written:
        click.echo(str(path))
