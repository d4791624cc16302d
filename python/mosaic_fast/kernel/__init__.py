"""The aggregation kernel's public API: fragment maps, per-fragment graph sampling and fragment-wise
averaging of all nodes. CPU arrays and tensors go to the Rust core (zero copy, GIL released); tensors on
other devices (CUDA) go to the index-tensor torch path in :mod:`mosaic_fast.kernel.torch_path`.

Array arguments are checked once per call, by the extension (``_core``), whichever path serves them:
this module only routes."""

from __future__ import annotations

import sys
import warnings
from typing import Any, TypeVar, cast

import numpy as np

from .. import _core
from ..errors import MosaicError, MosaicTypeError, MosaicValueError
from .torch_path import aggregate_torch

FragmentMap = _core.FragmentMap
Graphs = _core.Graphs

GRAPH_MODES = (
    "el-oracle",
    "el-oracle-pairing",
    "el-local",
    "pull",
    "undirected",
    "static",
    "ring",
    "complete",
    "edges",
    "shatter",
)

ArrayT = TypeVar("ArrayT")


def _require_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MosaicTypeError(f"{name}={value!r} must be an integer")


def num_threads() -> int:
    """Threads of the kernel's dedicated pool (``MOSAIC_NUM_THREADS``; default: all cores)."""
    return _core.num_threads()


def sample_graphs(
    n_nodes: int,
    n_fragments: int,
    degree: int,
    *,
    seed: int = 0,
    round: int = 0,
    mode: str = "el-oracle",
    edges: Any = None,
) -> Graphs:
    """Draw one gossip graph per fragment for ``round``.

    Each fragment's graph comes from its own counter-based stream keyed by ``(seed, round, fragment)``:
    independent across fragments and rounds, identical for any thread count. ``mode`` is one of
    :data:`GRAPH_MODES` (described in the README); ``edges`` (int, shape ``(n_edges, 2)``, rows ``(src, dst)``:
    ``dst`` receives from ``src``) is required for ``mode="edges"``, which gives every fragment that same
    graph (no node outside ``0..n_nodes``, no self loop, no edge twice). ``degree`` is ignored by ``ring``,
    ``complete`` and ``edges``. ``Graphs.from_edges(n_nodes, [edges_0, edges_1, ...], round=t)`` builds
    graphs that differ per fragment; :mod:`mosaic_fast.topology` reads them from files and callables.
    """
    for name, value in (
        ("n_nodes", n_nodes),
        ("K", n_fragments),
        ("degree", degree),
        ("seed", seed),
        ("round", round),
    ):
        _require_int(name, value)
    if edges is not None:
        try:
            edges = np.asarray(edges)
        except ValueError as exc:  # ragged nested lists
            raise MosaicValueError(
                f"edges must be an integer array of shape (n_edges, 2): {exc}"
            ) from None
    return _core.sample_graphs(
        int(n_nodes),
        int(n_fragments),
        int(degree),
        seed=int(seed),
        round=int(round),
        mode=mode,
        edges=edges,
    )


def empty_params(n_nodes: int, n_params: int, *, device: Any = "cpu") -> Any:
    """An uninitialised float32 torch tensor of shape (n_nodes, n_params), for parameter buffers.

    On CPU the memory comes from numpy's allocator, which asks Linux for transparent huge pages on
    large buffers (torch's allocator does not): with 64 rows read at once, the kernel then misses
    the TLB far less (measured at n=64, d=1e6: 18.8 ms instead of 21.6 ms per call). The buffer
    starts on a page boundary, so rows whose length is a multiple of 16 start on cache lines. Its pages are
    faulted in right away on the kernel's pool, so the first aggregate into it runs at the speed of
    the next ones instead of paying every page fault on the way. Elsewhere (CUDA) it is
    ``torch.empty``. On either, a buffer larger than the memory available now (the machine's, or
    the device's free memory) is a one-line MosaicValueError before anything is allocated.
    """
    import torch

    for name, value in (("n_nodes", n_nodes), ("n_params", n_params)):
        _require_int(name, value)
        if value < 1:
            raise MosaicValueError(f"{name}={value} must be at least 1")
    device = torch.device(device)
    n_bytes = 4 * int(n_nodes) * int(n_params)
    what = f"a parameter buffer of n_nodes={n_nodes} x n_params={n_params}"
    if device.type != "cpu":
        free = device_free_bytes(device)
        if free is not None and n_bytes > free:
            raise MosaicValueError(
                f"{what} needs {n_bytes / 2**30:.1f} GiB but {device} has {free / 2**30:.1f} GiB free"
            )
        return torch.empty(int(n_nodes), int(n_params), dtype=torch.float32, device=device)
    _core.check_memory(n_bytes, what)
    array = _page_aligned(int(n_nodes), int(n_params))
    _core.prefault(array)
    return torch.from_numpy(array)


def device_free_bytes(device: Any) -> int | None:
    """Bytes that can still be allocated on a CUDA ``device`` (free memory, plus what torch's
    caching allocator holds unused); None for other devices or when CUDA cannot say."""
    import torch

    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + cached)


_PAGE_FLOATS = 1024  # 4 KiB


def _page_aligned(n_nodes: int, n_params: int) -> np.ndarray:
    """An uninitialised (n_nodes, n_params) float32 array starting on a 4 KiB boundary. numpy's
    large buffers start 16 bytes into a page, so every row's cache lines straddle the kernel's tiles
    and its streaming stores write partial lines (n=10,000, d=40,000: 172 -> 158 ms aligned)."""
    flat = np.empty(n_nodes * n_params + _PAGE_FLOATS, dtype=np.float32)
    skip = (-flat.ctypes.data % (4 * _PAGE_FLOATS)) // 4
    return flat[skip : skip + n_nodes * n_params].reshape(n_nodes, n_params)


def _torch_module() -> Any:
    # Only look at torch if the caller already imported it: a tensor cannot exist otherwise.
    return sys.modules.get("torch")


def device_aggregate(
    params: Any, graphs: Graphs, fragments: FragmentMap, *, out: Any = None
) -> Any:
    """The aggregation of a tensor on a device the Rust core does not serve: the fused Triton kernel
    on CUDA where Triton imports (:mod:`.triton_path`), else the torch index path
    (:mod:`.torch_path`); both are bit-identical to the Rust kernel."""
    from . import triton_path

    if params.device.type == "cuda" and triton_path.available() and not _TRITON_FAILED:
        try:
            return triton_path.aggregate_triton(params, graphs, fragments, out=out)
        except MosaicError:
            raise  # the arguments' checks: the torch path would refuse them too
        except Exception as exc:  # the kernel does not build or run on this device
            _TRITON_FAILED.append(exc)
            warnings.warn(
                f"the fused Triton aggregation failed ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); using the torch index path "
                "for the rest of this process (MOSAIC_DEVICE_KERNEL=torch chooses it)",
                RuntimeWarning,
                stacklevel=2,
            )
    return aggregate_torch(params, graphs, fragments, out=out)


# The fused kernel's failure, once it has failed in this process (then the torch path serves).
_TRITON_FAILED: list[Exception] = []


def aggregate(
    params: ArrayT, graphs: Graphs, fragments: FragmentMap, *, out: ArrayT | None = None
) -> ArrayT:
    """Fragment-wise averaging of every node's parameters (one synchronous gossip round).

    For node ``i`` and coordinate ``c`` of fragment ``k``: the average of its own value and the values of
    its in-neighbours in ``graphs`` for fragment ``k`` (uniform weights; no arrival keeps the own value).

    params: float32, shape (n_nodes, n_params), C-contiguous; a numpy array or a torch tensor.
    out: optional buffer of the same type, dtype, shape and device, not overlapping ``params``; written
        in place without allocating. Returns ``out`` (or a new array/tensor).

    CPU inputs run on the Rust core with the GIL released; CUDA tensors use the fused Triton kernel
    (or, without Triton, the index-tensor torch path): see :func:`device_aggregate`.
    """
    # The result has the type of ``params`` (``out`` itself when given), which the casts state.
    torch = _torch_module()
    if torch is None or not isinstance(params, torch.Tensor):
        return cast(ArrayT, _core.aggregate(params, graphs, fragments, out))
    if params.device.type != "cpu":
        return cast(ArrayT, device_aggregate(params, graphs, fragments, out=out))
    result = _core.aggregate(params, graphs, fragments, out)
    # A new output is a numpy array (numpy's allocator: huge pages); hand it back as a tensor.
    return cast(ArrayT, result if out is not None else torch.from_numpy(result))
