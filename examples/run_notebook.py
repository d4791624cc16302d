"""Execute a notebook in place of a reader, failing on the first cell that raises:
``python examples/run_notebook.py examples/quickstart.ipynb``. ``.ci/run`` runs the quick start
this way with ``MOSAIC_NOTEBOOK_TINY=1`` (a few rounds), which the notebook reads for its size.
The executed copy is written only with ``--out FILE``; the notebook itself stays unexecuted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="write the executed notebook here")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    notebook = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=args.timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(args.notebook.parent)}},
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        print(f"{args.notebook}: a cell failed:\n{exc}", file=sys.stderr)
        return 1
    if args.out is not None:
        nbformat.write(notebook, args.out)
    print(f"{args.notebook}: {len(notebook.cells)} cells ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
