"""The vectorised torch aggregation, for tensors on devices the Rust core does not serve (CUDA).

One dense mixing-matrix product per fragment, ``out[:, C_k] = W_k @ params[:, C_k]``: equal to the Rust
kernel up to float32 rounding (the products sum in another order). :func:`mosaic_fast.aggregate` sends
device tensors here; on CPU it runs too, which the benchmarks compare against the Rust kernel.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from . import _core

# Column selections per fragment map and device: slices for consecutive fragments, index tensors otherwise.
_SELECTIONS: weakref.WeakKeyDictionary[Any, dict[str, list[Any]]] = weakref.WeakKeyDictionary()


def _selections(torch: Any, fragments: _core.FragmentMap, device: Any) -> list[Any]:
    per_device = _SELECTIONS.setdefault(fragments, {})
    key = str(device)
    if key not in per_device:
        assignment = fragments.assignment()
        selections: list[Any] = []
        for k in range(fragments.n_fragments):
            cols = np.flatnonzero(assignment == k)
            if cols[-1] - cols[0] + 1 == len(cols):
                selections.append(slice(int(cols[0]), int(cols[-1]) + 1))
            else:
                selections.append(torch.from_numpy(cols).to(device))
        per_device[key] = selections
    return per_device[key]


def aggregate_torch(
    params: Any, graphs: _core.Graphs, fragments: _core.FragmentMap, *, out: Any = None
) -> Any:
    """Fragment-wise averaging of a float32 tensor (n_nodes, n_params), C-contiguous, on any device.

    out: optional tensor like params (same shape and device, not overlapping it). Returns ``out`` (or a
    new tensor). The arguments get the same checks and messages as :func:`mosaic_fast.aggregate`.
    """
    import torch

    _core.check_aggregate(params, graphs, fragments, out)
    if out is None:
        out = torch.empty_like(params)
    with torch.no_grad():
        for k, sel in enumerate(_selections(torch, fragments, params.device)):
            w = torch.from_numpy(graphs.mixing_matrix(k)).to(
                device=params.device, dtype=params.dtype
            )
            if isinstance(sel, slice):
                torch.matmul(w, params[:, sel], out=out[:, sel])
            else:
                out[:, sel] = w @ params[:, sel]
    return out
