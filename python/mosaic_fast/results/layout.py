"""What a run folder holds and what state it is in: the files' names, the folder's status, and
the JSON it is written in (strict JSON, written atomically, read back with one-line errors).

:mod:`mosaic_fast.results.folder` writes run folders and :mod:`mosaic_fast.results.records` reads
them back; both spell the folder through this module.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import MosaicError, MosaicValueError
from ..settings import ExperimentConfig

CONFIG, METRICS, SUMMARY, CHECKPOINT, LOCK = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoint.pt",
    ".lock",
)
DIGEST = CHECKPOINT + ".sha256"
RUN_FILES = frozenset({CONFIG, METRICS, SUMMARY, CHECKPOINT, DIGEST, LOCK})
# The experiment trackers' folder (mosaic_fast.tracking): event files, the tracked runs' ids.
TRACKING = "tracking"
RUN_FILES = RUN_FILES | {TRACKING}
# Record fields measured by the machine's clock: the only ones two runs of one seed may differ in.
CLOCK_FIELDS = frozenset({"wall_time_s", "eval_time_s"})

# What a folder is in: finished (complete or diverged; never run again), resumable, or fresh.
COMPLETE, DIVERGED, RESUME, FRESH = "complete", "diverged", "resume", "fresh"


def written_temp(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """A sibling temp file of ``path`` holding what ``write(fh)`` wrote, fsynced (removed again if
    writing fails)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    # Write a sibling temp file, fsync it, then rename: readers see the old or the new file, never half.
    tmp = written_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-Infinity) replaced by None, in dicts, lists and
    tuples at any depth: JSON has no NaN, so every JSON file mosaic-fast writes holds null there
    (readers such as :func:`number_or_nan` turn it back into NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (``json.dumps`` with ``allow_nan=False``): non-finite floats
    become null (:func:`finite`), never the bare ``NaN`` that other JSON readers refuse."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


def write_json(path: Path, obj: Any) -> None:
    text = to_json(obj, indent=2) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode()))


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise MosaicValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise MosaicValueError(f"cannot read {str(path)!r}: {exc.strerror}") from None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` in file order. A cut-short last line (a run killed while
    appending) is skipped; a bad line anywhere else is a MosaicValueError."""
    lines = Path(path).read_text().splitlines()
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


def read_summary(folder: Path) -> dict[str, Any] | None:
    """The parsed ``summary.json``, or None when it is missing or half-written."""
    path = folder / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    return summary if isinstance(summary, dict) else None


def summary_status(summary: dict[str, Any] | None) -> str | None:
    """``complete`` or ``diverged`` for a finished run's summary (older folders only say
    ``"complete": true``), else None."""
    if summary is None:
        return None
    status = summary.get("status")
    if status in (COMPLETE, DIVERGED):
        known: str = status
        return known
    return COMPLETE if summary.get("complete") is True else None


def run_status(folder: str | Path) -> str:
    """``complete``, ``diverged``, ``resume`` (a checkpoint, not finished) or ``fresh``."""
    folder = Path(folder)
    status = summary_status(read_summary(folder))
    if status is not None:
        return status
    return RESUME if (folder / CHECKPOINT).is_file() else FRESH


def config_of(folder: str | os.PathLike[str]) -> ExperimentConfig:
    """The settings a run folder was started with (its ``config.json``)."""
    path = Path(folder) / CONFIG
    if not Path(folder).exists():
        raise MosaicValueError(f"run folder {str(folder)!r} does not exist")
    if not path.is_file():
        raise MosaicValueError(f"{str(folder)!r} holds no run (no {CONFIG})")
    head = read_json(path)
    if not isinstance(head, dict) or not isinstance(head.get("config"), dict):
        raise MosaicValueError(f"{str(path)!r} lacks the 'config' table of a mosaic-fast run")
    try:
        return ExperimentConfig.from_dict(head["config"])
    except MosaicError as exc:
        written_by = head.get("versions", {}).get("mosaic_fast", "an unknown version")
        raise MosaicValueError(
            f"{str(path)!r} was written by mosaic-fast {written_by} and cannot be read here: {exc}"
        ) from None
