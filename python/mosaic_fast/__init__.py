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

from importlib import import_module
from typing import Any

from .errors import (
    DataNotFoundError,
    MosaicError,
    MosaicInternalError,
    MosaicTypeError,
    MosaicValueError,
)

__version__ = "0.1.0"

# Kernel names resolve on first use so that `import mosaic_fast.data` does not load the extension.
_KERNEL_NAMES = (
    "FragmentMap",
    "Graphs",
    "sample_graphs",
    "aggregate",
    "num_threads",
    "GRAPH_MODES",
)


def __getattr__(name: str) -> Any:
    if name in _KERNEL_NAMES:
        return getattr(import_module(".kernel", __name__), name)
    raise AttributeError(f"module 'mosaic_fast' has no attribute {name!r}")


__all__ = [
    "DataNotFoundError",
    "MosaicError",
    "MosaicInternalError",
    "MosaicTypeError",
    "MosaicValueError",
    "__version__",
    *_KERNEL_NAMES,
]
