"""Checks shared by the topology's readers: integer arguments, one-line messages, and files of
integers (``.npy``, or text with ``#`` comments and fields separated by whitespace or commas)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MosaicTypeError, MosaicValueError

_FIELD_SEPARATOR = re.compile(r"[,\s]+")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def require_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MosaicTypeError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise MosaicValueError(f"{name}={value} must be at least {minimum}")
    return int(value)


def read_text_rows(path: Path, what: str) -> tuple[list[list[int]], list[int]]:
    """Integer fields of every non-blank line (``#`` comments dropped) and the lines' numbers."""
    rows: list[list[int]] = []
    lines: list[int] = []
    with _open_text(path, what) as handle:
        for number, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            row = []
            for token in _FIELD_SEPARATOR.split(text):
                try:
                    row.append(int(token))
                except ValueError:
                    raise MosaicValueError(
                        f"{what} {path}, line {number}: {token!r} is not an integer "
                        "(use # for comments)"
                    ) from None
            rows.append(row)
            lines.append(number)
    return rows, lines


def _open_text(path: Path, what: str) -> Any:
    try:
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise MosaicValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def load_npy(path: Path, what: str) -> np.ndarray:
    try:
        matrix: np.ndarray = np.load(path, allow_pickle=False)
        return matrix
    except FileNotFoundError:
        raise MosaicValueError(f"{what} {path} does not exist") from None
    except (OSError, ValueError, EOFError) as exc:
        raise MosaicValueError(f"cannot read {what} {path} as .npy: {one_line(exc)}") from None


def existing(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MosaicValueError(f"{what} {path} does not exist")
    return path
