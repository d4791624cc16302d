"""Where a run's gossip graphs and fragments come from: the built-in samplers and fragmenters, or the
user's own graphs (a callable, an edge list, an adjacency matrix, a file) and fragment assignments.

Edge direction, everywhere: a row ``(src, dst)`` of an edge list, or a nonzero entry ``[src, dst]`` of
an adjacency matrix, means that ``dst`` receives from ``src`` (``src`` sends its fragment to ``dst``),
as in :func:`mosaic_fast.sample_graphs`. Every node averages its own value with what it receives, with
uniform weights, so self loops are refused (the own value always counts) and so are repeated edges
(a repeat would still count once).

Files: ``.npy`` holds an integer ``(n_edges, 2)`` edge list or an ``(n_nodes, n_nodes)`` 0/1 (or
boolean) adjacency matrix; any other file is text, one ``src dst`` or ``src,dst`` pair per line (or
the ``n_nodes`` rows of an adjacency matrix), ``#`` starting a comment. With two nodes, a ``(2, 2)``
integer array is read as an edge list; save a boolean matrix for an adjacency matrix.

Assignments (``fragmenter = "assignment:FILE"``, or an array handed to the Python API) hold one
fragment id in ``0..K-1`` per coordinate of the flat parameter vector: ``.npy`` (one-dimensional,
integer) or text (integers separated by whitespace, commas or newlines, ``#`` comments).
"""

from .edges import read_edges
from .fragments import (
    ASSIGNMENT_PREFIX,
    BUILTIN_FRAGMENTERS,
    SmallLayerWarning,
    assignment_map,
    fragment_coordinates,
    fragments_for,
    read_assignment,
)
from .graphs import BUILTIN_TOPOLOGIES, EDGES_PREFIX, EdgeCallable, GraphSource

__all__ = [
    "ASSIGNMENT_PREFIX",
    "BUILTIN_FRAGMENTERS",
    "BUILTIN_TOPOLOGIES",
    "EDGES_PREFIX",
    "EdgeCallable",
    "GraphSource",
    "SmallLayerWarning",
    "assignment_map",
    "fragment_coordinates",
    "fragments_for",
    "read_assignment",
    "read_edges",
]
