"""``mosaic-fast datasets``: which datasets have a local copy, and where."""

from __future__ import annotations

import click

from .common import OneLineCommand, one_line_errors


@click.command("datasets", cls=OneLineCommand)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Also look in this folder first.",
)
def datasets(data_dir: str | None) -> None:
    """List every dataset and the local copy found for it (searched like `run` searches)."""
    from ..data import dataset_names, locate_dataset

    with one_line_errors():
        rows = [(name, locate_dataset(name, data_dir)) for name in dataset_names()]
    width = max(len(name) for name, _ in rows)
    for name, path in rows:
        where = (
            f"found    {path}"
            if path is not None
            else "missing  (downloaded on first use when possible)"
        )
        click.echo(f"{name.ljust(width)}  {where}")
