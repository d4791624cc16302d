"""The fused device aggregation: one Triton kernel per fragment, bit-identical to the Rust kernel.

Each program instance owns one receiver ``i`` and one block of ``BLOCK`` of its fragment's columns:
it loads ``x[i, cols]``, adds ``x[j, cols]`` for the in-neighbours ``j`` of ``i`` in ascending order
(left to right, float32), multiplies once by ``float32(1) / float32(1 + in-degree)`` (computed on
the host, as the Rust kernel computes it) and stores the block: every input value is read once per
receiving neighbour (and once as the receiver's own), every output value written once, and no
temporary of ``x``'s size exists. The order of additions and the final multiply are the Rust
kernel's (``rust/core/src/aggregate.rs``), so results match it bit for bit on the same inputs; no
reduction, atomics or fused multiply-add is involved (the kernel is compiled without FP fusion:
its PTX for sm_80 and sm_90, compiled here without a GPU, holds ``add.rn.f32`` and ``mul.rn.f32``
only).

Programs are numbered column block by column block (all receivers of block 0, then block 1, ...),
so that the receivers reading the same columns run together and find their neighbours' values in
the device's L2 cache: from memory, ``x`` is then read about once.

Per graphs object and device, the fragments' in-neighbour lists (CSR) and scales are copied to the
device once, from pinned memory without blocking the host; :mod:`.torch_path` caches the
fragment maps' column selections. Under ``TRITON_INTERPRET=1`` the kernel runs on CPU tensors (the
tests compare it with the Rust kernel there); :func:`available` says whether it can run on a device.
"""

from __future__ import annotations

import functools
import os
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core
from ..device import host_to_device
from .torch_path import fragment_columns

# Columns per program: 1,024 float32 (4 KiB per row read), four warps.
BLOCK = 1024
# Compiler options of every launch: four warps; no FP fusion, so additions and the multiply stay
# IEEE (``.rn``) and nothing is contracted into a fused multiply-add.
LAUNCH_OPTIONS = {"num_warps": 4, "enable_fp_fusion": False}


@functools.cache
def available() -> bool:
    """Whether Triton imports (it ships with CUDA builds of torch). ``MOSAIC_DEVICE_KERNEL=torch``
    turns the fused kernel off, so that device tensors take the torch index path."""
    if os.environ.get("MOSAIC_DEVICE_KERNEL", "") == "torch":
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernel() -> Any:
    """The jitted kernel (Triton imported and the kernel defined on first use only)."""
    import triton
    import triton.language as tl

    # Triton reads a kernel's annotations itself (tl.constexpr), so its parameters carry no types.
    @triton.jit  # type: ignore[untyped-decorator]
    def average_fragment(  # type: ignore[no-untyped-def]
        x_ptr,
        out_ptr,
        cols_ptr,
        col_start,
        n_cols,
        n_nodes,
        indptr_ptr,
        senders_ptr,
        scale_ptr,
        stride,
        GATHER: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        pid = tl.program_id(0)
        i = pid % n_nodes  # receiver
        b = pid // n_nodes  # column block
        offs = b * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n_cols
        if GATHER:
            cols = tl.load(cols_ptr + offs, mask=mask, other=0)
        else:
            cols = col_start + offs.to(tl.int64)
        row = i.to(tl.int64) * stride
        acc = tl.load(x_ptr + row + cols, mask=mask, other=0.0)
        start = tl.load(indptr_ptr + i)
        end = tl.load(indptr_ptr + i + 1)
        for p in range(start, end):
            j = tl.load(senders_ptr + p)
            acc += tl.load(x_ptr + j.to(tl.int64) * stride + cols, mask=mask, other=0.0)
        scale = tl.load(scale_ptr + i)
        tl.store(out_ptr + row + cols, acc * scale, mask=mask)

    return average_fragment


@dataclass(frozen=True)
class _FragmentCSR:
    """One fragment's in-neighbours on the device: indptr int64 (n+1,), senders int64 (edges,)
    ascending per receiver, scale float32 (n,) = float32(1) / float32(1 + in-degree)."""

    indptr: Any
    senders: Any
    scale: Any


_CSRS: weakref.WeakKeyDictionary[Any, dict[str, list[_FragmentCSR]]] = weakref.WeakKeyDictionary()


def _csrs(graphs: _core.Graphs, device: Any) -> list[_FragmentCSR]:
    """Every fragment's CSR on ``device``: two host-to-device copies in all, cached per graphs."""
    per_device = _CSRS.setdefault(graphs, {})
    key = str(device)
    if key in per_device:
        return per_device[key]
    one = np.float32(1.0)
    parts, scales, shapes = [], [], []
    for k in range(graphs.n_fragments):
        indptr, senders = graphs.in_csr(k)
        parts += [np.asarray(indptr, dtype=np.int64), np.asarray(senders, dtype=np.int64)]
        scales.append(one / (one + np.diff(indptr).astype(np.float32)))
        shapes.append((len(indptr), len(senders)))
    indices = host_to_device(np.concatenate(parts), device)
    scale = host_to_device(np.concatenate(scales), device)
    n = graphs.n_nodes
    csrs, at = [], 0
    for k, (n_ptr, n_send) in enumerate(shapes):
        csrs.append(
            _FragmentCSR(
                indices[at : at + n_ptr],
                indices[at + n_ptr : at + n_ptr + n_send],
                scale[k * n : (k + 1) * n],
            )
        )
        at += n_ptr + n_send
    per_device[key] = csrs
    return csrs


def aggregate_triton(
    params: Any,
    graphs: _core.Graphs,
    fragments: _core.FragmentMap,
    *,
    out: Any = None,
    block: int = BLOCK,
) -> Any:
    """Fragment-wise averaging of a float32 tensor (n_nodes, n_params), C-contiguous, on a CUDA
    device (or on CPU under ``TRITON_INTERPRET=1``), by the fused kernel.

    Bit-identical to the Rust kernel on the same values. out: optional tensor like params (same
    shape and device, not overlapping it). block: columns per program, a power of two (the tests
    use small ones). Returns ``out`` (or a new tensor). The arguments get the same checks and
    messages as :func:`mosaic_fast.aggregate`.
    """
    import torch

    _core.check_aggregate(params, graphs, fragments, out)
    if out is None:
        out = torch.empty_like(params)
    n, d = params.shape
    kernel = _kernel()
    csrs = _csrs(graphs, params.device)
    selections = fragment_columns(fragments, params.device)
    dummy = csrs[0].indptr  # the pointer a contiguous fragment's kernel never reads
    with torch.no_grad():
        for csr, sel in zip(csrs, selections, strict=True):
            if isinstance(sel, slice):
                cols, start, n_cols, gather = dummy, sel.start, sel.stop - sel.start, False
            else:
                cols, start, n_cols, gather = sel, 0, sel.shape[0], True
            grid = (n * ((n_cols + block - 1) // block),)
            kernel[grid](
                params,
                out,
                cols,
                start,
                n_cols,
                n,
                csr.indptr,
                csr.senders,
                csr.scale,
                d,
                GATHER=gather,
                BLOCK=block,
                **LAUNCH_OPTIONS,
            )
    return out
