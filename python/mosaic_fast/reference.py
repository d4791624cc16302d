"""Pure numpy/torch references of the kernel's operations.

``aggregate_reference`` is the slow, obvious definition (used by the tests: the Rust kernel matches it
bit for bit, because both add the own value then the in-neighbours in ascending order in float32 and
scale once by ``float32(1) / float32(1 + in_degree)``). ``aggregate_torch`` is the fast vectorised
path for tensors on devices the Rust core does not serve (CUDA): one dense mixing-matrix product per
fragment, equal to the reference up to float32 rounding.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .errors import MosaicValueError
from .kernel import FragmentMap, Graphs


def mixing_matrix_reference(graphs: Graphs, k: int) -> np.ndarray:
    """Row-stochastic W of fragment ``k`` from the in-neighbour lists: float64 (n_nodes, n_nodes)."""
    n = graphs.n_nodes
    w = np.zeros((n, n))
    for i, sources in enumerate(graphs.in_neighbors(k)):
        weight = 1.0 / (1 + len(sources))
        w[i, i] = weight
        w[i, sources] = weight
    return w


def _check(params_shape: tuple[int, ...], graphs: Graphs, fragments: FragmentMap) -> None:
    if len(params_shape) != 2:
        raise MosaicValueError(
            f"params must have shape (n_nodes, n_params), got shape {params_shape}"
        )
    n, d = params_shape
    if n != graphs.n_nodes:
        raise MosaicValueError(
            f"params has {n} rows but the graphs are for n_nodes={graphs.n_nodes}"
        )
    if d != fragments.n_params:
        raise MosaicValueError(
            f"params has {d} columns but the fragment map is for n_params={fragments.n_params}"
        )
    if fragments.n_fragments != graphs.n_fragments:
        raise MosaicValueError(
            f"the fragment map has K={fragments.n_fragments} fragments but the graphs have K={graphs.n_fragments}"
        )


def aggregate_reference(params: np.ndarray, graphs: Graphs, fragments: FragmentMap) -> np.ndarray:
    """Fragment-wise averaging, written as plainly as possible. params: float32 (n_nodes, n_params)."""
    x = np.asarray(params, dtype=np.float32)
    _check(x.shape, graphs, fragments)
    out = np.empty_like(x)
    assignment = fragments.assignment()
    for k in range(fragments.n_fragments):
        cols = np.flatnonzero(assignment == k)
        for i, sources in enumerate(graphs.in_neighbors(k)):
            acc = x[i, cols].copy()
            for j in sources:
                acc += x[j, cols]
            out[i, cols] = acc * (np.float32(1.0) / np.float32(1 + len(sources)))
    return out


# Column selections per fragment map and device: slices for consecutive fragments, index tensors otherwise.
_SELECTIONS: weakref.WeakKeyDictionary[Any, dict[str, list[Any]]] = weakref.WeakKeyDictionary()


def _selections(torch: Any, fragments: FragmentMap, device: Any) -> list[Any]:
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


def aggregate_torch(params: Any, graphs: Graphs, fragments: FragmentMap, *, out: Any = None) -> Any:
    """Vectorised torch aggregation on any device: ``out[:, C_k] = W_k @ params[:, C_k]`` per fragment.

    params: float32 tensor (n_nodes, n_params). out: optional tensor like params (not aliasing it).
    """
    import torch

    _check(tuple(params.shape), graphs, fragments)
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
