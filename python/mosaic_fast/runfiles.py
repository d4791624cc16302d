"""The run folder: config.json, metrics.jsonl (append-only, fsynced), summary.json, checkpoint.pt.

Written by the engine, read by sweeps and plots; torch is imported only for checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import MosaicValueError

CONFIG, METRICS, SUMMARY, CHECKPOINT = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoint.pt",
)


def _atomic(path: Path, write) -> None:
    # Write a sibling temp file, fsync it, then rename: readers see the old or the new file, never half.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    _atomic(path, lambda fh: fh.write((json.dumps(obj, indent=2) + "\n").encode()))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MosaicValueError(f"{str(path)!r} is not valid JSON: {exc}") from None


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one complete JSON line and make it durable before returning."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def rewrite_metrics(path: Path, records: list[dict[str, Any]]) -> None:
    _atomic(path, lambda fh: fh.write("".join(json.dumps(r) + "\n" for r in records).encode()))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` in file order. A cut-short last line (a run killed while
    appending) is skipped; a bad line anywhere else is a MosaicValueError."""
    lines = path.read_text().splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise MosaicValueError(f"{str(path)!r} line {i + 1} is not valid JSON") from None
    return records


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    _atomic(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    # Our own file, holding numpy RNG states and arrays as well as tensors.
    return torch.load(path, map_location="cpu", weights_only=False)
