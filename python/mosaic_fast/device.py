"""Tensors on the run's device without waiting for it, and additions whose order does not
depend on the device's scheduling (the ``deterministic`` setting). torch is imported on first use:
importing mosaic_fast does not load it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


def host_to_device(array: np.ndarray, device: Any) -> torch.Tensor:
    """``array`` as a tensor on ``device`` without blocking the host: on CUDA it is copied into
    pinned memory and from there asynchronously (torch's pinned-memory cache keeps the block until
    the copy has run); on CPU it is the array itself (shared memory, no copy)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(array))
    device = torch.device(device)
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def add_rows_(target: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``target[index[r]] += values[r]`` for every r, each target row receiving its additions in
    the order of ``r`` (what ``index_add_`` does on CPU). On CUDA, ``index_add_`` adds with atomics
    in whatever order threads arrive; while torch's deterministic algorithms are on (the
    ``deterministic`` setting), this uses ``index_put_(accumulate=True)`` instead, which sorts the
    indices stably and adds each row's values one after another."""
    import torch

    if target.device.type == "cuda" and torch.are_deterministic_algorithms_enabled():
        return target.index_put_((index,), values, accumulate=True)
    return target.index_add_(0, index, values)
