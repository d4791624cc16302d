"""The slow, obvious definitions of the kernel's operations: the test oracle.

The Rust kernel matches ``aggregate_reference`` bit for bit, because both add the own value then the
in-neighbours in ascending order in float32 and scale once by ``float32(1) / float32(1 + in_degree)``.
"""

from __future__ import annotations

import numpy as np

from .. import _core


def mixing_matrix_reference(graphs: _core.Graphs, k: int) -> np.ndarray:
    """Row-stochastic W of fragment ``k`` from the in-neighbour lists: float64 (n_nodes, n_nodes)."""
    n = graphs.n_nodes
    w = np.zeros((n, n))
    for i, sources in enumerate(graphs.in_neighbors(k)):
        weight = 1.0 / (1 + len(sources))
        w[i, i] = weight
        w[i, sources] = weight
    return w


def aggregate_reference(
    params: np.ndarray, graphs: _core.Graphs, fragments: _core.FragmentMap
) -> np.ndarray:
    """Fragment-wise averaging, written as plainly as possible. params: (n_nodes, n_params), read as
    float32; the shapes get the kernel's own checks."""
    x = np.ascontiguousarray(params, dtype=np.float32)
    _core.check_aggregate(x, graphs, fragments)
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
