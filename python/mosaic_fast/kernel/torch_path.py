"""The torch aggregation, for tensors on devices the Rust core does not serve (CUDA).

Bit-identical to the Rust kernel (and to :func:`mosaic_fast.kernel.reference.aggregate_reference`): for
receiver ``i`` and coordinate ``c`` of fragment ``k``,
``out[i, c] = (x[i, c] + x[j_1, c] + ... + x[j_m, c]) * (float32(1) / float32(1 + m))`` with the
in-neighbours ``j_1 < ... < j_m`` added left to right in float32. Each addition here is one
elementwise ``add_`` of gathered rows (one in-neighbour slot of every receiver at once), so every
coordinate sees the same additions in the same order on any device; nothing is summed by a reduction
kernel (whose order is unspecified), atomics or a matrix product.

Per call, each fragment's graph becomes small index tensors on the tensor's device (no copy of the
parameters leaves the device): receivers sorted by in-degree, descending and stable, with their
in-neighbours as a ``(max in-degree) x n`` table, so that slot ``s`` is a prefix of the receivers
(those with more than ``s`` in-neighbours) and uneven in-degrees need no mask. Constant in-degree,
the sampled modes' usual case, keeps the receivers in node order and writes straight into ``out``.
Columns are processed in chunks so that each temporary stays below :data:`CHUNK_BYTES`
(:data:`CPU_CHUNK_BYTES` on CPU).
:func:`mosaic_fast.aggregate` sends device tensors here; CPU tensors run too (the tests compare them
with the Rust kernel bit for bit).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core
from ..device import host_to_device

# Bytes of one (rows x column-chunk) float32 temporary on a device; a chunk holds at most three of
# them (the gathered fragment columns, the running sums and one gathered in-neighbour slot).
CHUNK_BYTES = 64 << 20
# On CPU tensors a chunk that stays in cache is faster (measured at n=32, d=2e5, degree 8, 2-core
# Xeon: 34 ms at 4 MiB, 66 ms at 64 MiB for K=1).
CPU_CHUNK_BYTES = 4 << 20


@dataclass(frozen=True)
class _FragmentPlan:
    """One fragment's graph as index tensors on the device.

    order: receivers in summation order (descending in-degree, stable), or None for node order.
    slots: (max in-degree, n) in-neighbours; row ``s`` lists the ``s``-th in-neighbour (ascending
        per receiver) of the first ``counts[s]`` receivers of ``order``.
    counts: receivers that have an ``s``-th in-neighbour, per slot (host ints: no device sync).
    scale: float32 (n, 1) or (1, 1), ``float32(1) / float32(1 + in-degree)`` in ``order``.
    """

    order: Any
    slots: Any
    counts: tuple[int, ...]
    scale: Any


# Column selections per fragment map and device: slices for consecutive fragments, index tensors
# otherwise. Both keys are frozen extension objects, so a cached entry never goes stale.
_SELECTIONS: weakref.WeakKeyDictionary[Any, dict[str, list[Any]]] = weakref.WeakKeyDictionary()
# Index tensors per graphs object and device, dropped with the graphs (repeated calls reuse them).
_PLANS: weakref.WeakKeyDictionary[Any, dict[str, list[_FragmentPlan]]] = weakref.WeakKeyDictionary()


def fragment_columns(fragments: _core.FragmentMap, device: Any) -> list[Any]:
    """Every fragment's columns: a slice where they are consecutive (a view, no gather), else an
    int64 index tensor on ``device``; cached per fragment map and device (do not modify)."""

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
                selections.append(host_to_device(cols, device))
        per_device[key] = selections
    return per_device[key]


def _fragment_arrays(
    graphs: _core.Graphs, k: int
) -> tuple[np.ndarray | None, np.ndarray, tuple[int, ...], np.ndarray]:
    """Host arrays of fragment ``k``'s plan: (order or None, slots, counts, scale)."""
    indptr, senders = graphs.in_csr(k)
    n = graphs.n_nodes
    degrees = np.diff(indptr)
    one = np.float32(1.0)
    if (degrees == degrees[0]).all():
        degree = int(degrees[0])
        slots = senders.reshape(n, degree).T
        scale = np.full((1, 1), one / np.float32(1 + degree), dtype=np.float32)
        return None, np.ascontiguousarray(slots), (n,) * degree, scale
    order = np.argsort(-degrees, kind="stable")
    sorted_degrees = degrees[order]
    max_degree = int(sorted_degrees[0])
    # slots[s, r]: the s-th in-neighbour of receiver order[r]; zero past its in-degree (never read).
    slots = np.zeros((max_degree, n), dtype=np.int64)
    starts = indptr[order]
    counts = tuple(int(np.count_nonzero(sorted_degrees > s)) for s in range(max_degree))
    for s, count in enumerate(counts):
        slots[s, :count] = senders[starts[:count] + s]
    scale = (one / (one + sorted_degrees.astype(np.float32))).reshape(n, 1)
    return order, slots, counts, scale


def _plans(torch: Any, graphs: _core.Graphs, device: Any) -> list[_FragmentPlan]:
    """Every fragment's plan on ``device``: two host-to-device copies in all (indices, scales),
    neither blocking the host."""
    per_device = _PLANS.setdefault(graphs, {})
    key = str(device)
    if key in per_device:
        return per_device[key]
    host = [_fragment_arrays(graphs, k) for k in range(graphs.n_fragments)]
    index_parts: list[np.ndarray] = []
    for order, slots, _, _ in host:
        if order is not None:
            index_parts.append(order)
        index_parts.append(slots.reshape(-1))
    indices = host_to_device(np.concatenate(index_parts), device)
    scales = host_to_device(np.concatenate([h[3].reshape(-1) for h in host]), device)
    plans: list[_FragmentPlan] = []
    at = scale_at = 0
    for order, slots, counts, scale in host:
        order_t = None
        if order is not None:
            order_t = indices[at : at + len(order)]
            at += len(order)
        slots_t = indices[at : at + slots.size].view(slots.shape)
        at += slots.size
        scale_t = scales[scale_at : scale_at + scale.size].view(scale.shape)
        scale_at += scale.size
        plans.append(_FragmentPlan(order_t, slots_t, counts, scale_t))
    per_device[key] = plans
    return plans


def _chunk_width(n_nodes: int, device: Any) -> int:
    """Columns per chunk: an (n_nodes x width) float32 temporary fits the device's chunk bytes."""
    limit = CPU_CHUNK_BYTES if device.type == "cpu" else CHUNK_BYTES
    return max(1, limit // (4 * n_nodes))


def _average_chunk(plan: _FragmentPlan, x_cols: Any, acc: Any) -> Any:
    """Add every in-neighbour slot of ``x_cols`` (all rows, one chunk of columns) into ``acc`` (the
    receivers' own rows, in ``plan.order``), then scale: the kernel's additions in its order."""
    for s, count in enumerate(plan.counts):
        neighbours = x_cols.index_select(0, plan.slots[s, :count])
        if count == acc.shape[0]:
            acc.add_(neighbours)
        else:
            acc[:count].add_(neighbours)
    return acc.mul_(plan.scale)


def aggregate_torch(
    params: Any, graphs: _core.Graphs, fragments: _core.FragmentMap, *, out: Any = None
) -> Any:
    """Fragment-wise averaging of a float32 tensor (n_nodes, n_params), C-contiguous, on any device.

    Bit-identical to the Rust kernel on the same values (see the module docstring for the order of
    additions); ``params`` never leaves its device. out: optional tensor like params (same shape and
    device, not overlapping it). Returns ``out`` (or a new tensor). The arguments get the same checks
    and messages as :func:`mosaic_fast.aggregate`.
    """
    import torch

    _core.check_aggregate(params, graphs, fragments, out)
    if out is None:
        out = torch.empty_like(params)
    device = params.device
    width = _chunk_width(params.shape[0], device)
    with torch.no_grad():
        plans = _plans(torch, graphs, device)
        for plan, sel in zip(plans, fragment_columns(fragments, device), strict=True):
            if isinstance(sel, slice):
                for a in range(sel.start, sel.stop, width):
                    b = min(a + width, sel.stop)
                    x_cols = params[:, a:b]
                    if plan.order is None:
                        # Node order: sum straight into out's columns.
                        _average_chunk(plan, x_cols, out[:, a:b].copy_(x_cols))
                    else:
                        acc = _average_chunk(plan, x_cols, x_cols.index_select(0, plan.order))
                        out[:, a:b].index_copy_(0, plan.order, acc)
            else:
                for a in range(0, len(sel), width):
                    cols = sel[a : a + width]
                    x_cols = params.index_select(1, cols)
                    if plan.order is None:
                        acc = _average_chunk(plan, x_cols, x_cols.clone())
                        out.index_copy_(1, cols, acc)
                    else:
                        acc = _average_chunk(plan, x_cols, x_cols.index_select(0, plan.order))
                        out.index_put_((plan.order[:, None], cols[None, :]), acc)
    return out
