"""The arguments of :mod:`mosaic_fast.network.scheduler`, checked once at the boundary and
converted to what the Rust core reads: node ids, byte counts and times as contiguous int64/float64
arrays (no copy when they already are), links, latency, and the queueing and sharing options.
A wrong type is a MosaicTypeError, a wrong shape or value a MosaicValueError, each one line."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import MosaicTypeError, MosaicValueError

BANDWIDTH_SHARING = ("max-min", "min-share")
"""The link-sharing rules (see :mod:`mosaic_fast.network.scheduler`); the first is the default."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def require_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise MosaicTypeError(f"{name}={value!r} must be an integer")


def require_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise MosaicTypeError(f"{name}={value!r} must be a number")
    return float(value)


def float_array(name: str, value: Any, length: int | None = None) -> FloatArray:
    """A contiguous float64 1-D array (no copy when it already is one); a number is broadcast to
    ``length`` when given."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MosaicTypeError(f"{name} must be an array of numbers: {exc}") from None
    if array.ndim == 0 and length is not None:
        return np.full(length, float(array))
    if array.ndim != 1:
        raise MosaicValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise MosaicValueError(f"{name} has {array.shape[0]} values, expected {length}")
    return np.ascontiguousarray(array)


def int_array(name: str, value: Any) -> IntArray:
    """A contiguous int64 1-D array (no copy when it already is one); only integer input."""
    array = np.asarray(value)
    if array.size == 0:
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise MosaicTypeError(f"{name} must be integers, got dtype {array.dtype}")
    if array.ndim != 1:
        raise MosaicValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.int64)


def latency_arg(value: Any) -> Any:
    if isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool):
        return float(value)
    try:
        return np.ascontiguousarray(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise MosaicTypeError(
            f"latency must be a number or an array of shape (n_nodes,) or (n_nodes, n_nodes): {exc}"
        ) from None


def transfer_arrays(
    src: Any, dst: Any, nbytes: Any, ready_time: Any, default_ready: float
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    sources, targets = int_array("src", src), int_array("dst", dst)
    if targets.shape[0] != sources.shape[0]:
        raise MosaicValueError(
            f"dst has {targets.shape[0]} values but src has {sources.shape[0]}: one per transfer"
        )
    m = sources.shape[0]
    sizes = float_array("bytes", nbytes, m)
    ready = float_array("ready_time", default_ready if ready_time is None else ready_time, m)
    return sources, targets, sizes, ready


def scheduler_options(
    fifo_per_sender: Any, fifo_per_pair: Any, bandwidth_sharing: Any
) -> dict[str, Any]:
    """The core's keyword arguments, checked: one queue kind at most, a known sharing rule."""
    if bandwidth_sharing not in BANDWIDTH_SHARING:
        raise MosaicValueError(
            f"bandwidth_sharing={bandwidth_sharing!r} must be one of {', '.join(BANDWIDTH_SHARING)}"
        )
    if fifo_per_sender and fifo_per_pair:
        raise MosaicValueError(
            "fifo_per_sender and fifo_per_pair are exclusive: one queue per sender or per pair"
        )
    return {
        "fifo_per_sender": bool(fifo_per_sender),
        "fifo_per_pair": bool(fifo_per_pair),
        "bandwidth_sharing": bandwidth_sharing,
    }
