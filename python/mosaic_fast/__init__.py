"""mosaic-fast: decentralized learning with model fragmentation (Mosaic Learning), with a Rust core.

Kernel API (usable on its own as a drop-in aggregation kernel)::

    import numpy as np
    import mosaic_fast as mf

    params = np.random.rand(64, 100_000).astype(np.float32)      # (n_nodes, n_params)
    fragments = mf.FragmentMap.contiguous(100_000, 8)
    graphs = mf.sample_graphs(64, 8, 8, seed=0, round=0, mode="el-oracle")
    new_params = mf.aggregate(params, graphs, fragments)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._moved import install as _install_moved_modules
from ._version import __version__
from .errors import (
    CallbackError,
    DataNotFoundError,
    MosaicError,
    MosaicInternalError,
    MosaicTypeError,
    MosaicValueError,
    RunDiverged,
    RunFolderInUse,
    RunInterrupted,
)
from .kernel import (
    GRAPH_MODES,
    FragmentMap,
    Graphs,
    aggregate,
    empty_params,
    num_threads,
    sample_graphs,
)

_install_moved_modules()

_LAZY = {"Experiment", "Result", "RunState"}  # torch-heavy: imported on first use

if TYPE_CHECKING:  # what __getattr__ returns for them, for type checkers
    from .api import Experiment, Result, RunState


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mosaic_fast' has no attribute {name!r}")


__all__ = [
    "CallbackError",
    "DataNotFoundError",
    "Experiment",
    "Result",
    "RunDiverged",
    "RunFolderInUse",
    "RunInterrupted",
    "RunState",
    "MosaicError",
    "MosaicInternalError",
    "MosaicTypeError",
    "MosaicValueError",
    "__version__",
    "FragmentMap",
    "GRAPH_MODES",
    "Graphs",
    "aggregate",
    "empty_params",
    "num_threads",
    "sample_graphs",
]
