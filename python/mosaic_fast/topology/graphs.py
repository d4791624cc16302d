"""Each round's per-fragment gossip graphs: :class:`GraphSource`, from a built-in mode or the
user's own graphs (a callable, an edge list, an adjacency matrix, a file)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MosaicTypeError, MosaicValueError
from ..kernel import GRAPH_MODES, Graphs, sample_graphs
from ..user_code import FILE_PREFIXES, File, decode
from .edges import EdgeOrigin, edge_array, read_edges
from .inputs import one_line, require_int

EdgeCallable = Callable[[int, int], Any]
"""``(round, fragment) -> edge list or adjacency matrix`` of that fragment's graph in that round."""

EDGES_PREFIX = FILE_PREFIXES["edges"]
BUILTIN_TOPOLOGIES = tuple(mode for mode in GRAPH_MODES if mode != "edges")


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class GraphSource:
    """Each round's per-fragment gossip graphs: :meth:`graphs` ``(round)`` gives a :class:`Graphs`.

    Make one with :meth:`from_setting`. Built-in modes sample from streams keyed by
    ``(seed, round, fragment)``; user graphs are whatever the user gives, checked every time. Either
    way the same inputs give the same graphs whatever the thread count.
    """

    def __init__(
        self, n_nodes: int, n_fragments: int, label: str, make: Callable[[int], Graphs]
    ) -> None:
        self.n_nodes, self.n_fragments, self.label = n_nodes, n_fragments, label
        self._make = make

    @classmethod
    def from_setting(
        cls,
        topology: str,
        n_nodes: int,
        n_fragments: int,
        degree: int,
        seed: int,
        user: Any = None,
    ) -> GraphSource:
        """The graphs a run's ``topology`` setting names, or the user's own.

        ``topology``: a built-in mode (:data:`BUILTIN_TOPOLOGIES`) or ``"edges:FILE"`` (one static graph
        for every fragment and round, read once). ``user``, when given, is the object the setting stands
        for (``topology`` is then only its label):

        - a callable ``(round, fragment) -> edges``: a fresh graph per fragment and round, as the
          paper's per-fragment graphs; called ``K`` times per round, fragments in order;
        - an edge list (array-like ``(n_edges, 2)``, rows ``(src, dst)``) or ``(n_nodes, n_nodes)``
          adjacency matrix: that graph for every fragment and round;
        - a path (``str`` or ``os.PathLike``) to an edge or adjacency file.

        ``degree`` and ``seed`` matter to the built-in modes only. Static graphs are checked here,
        callables' graphs at every :meth:`graphs` call.
        """
        n_nodes = require_int("n_nodes", n_nodes, 2)
        n_fragments = require_int("K", n_fragments, 1)
        if user is not None:
            return cls._from_user(user, n_nodes, n_fragments, seed)
        if not isinstance(topology, str):
            raise MosaicTypeError(
                f"topology={topology!r} must be a mode name or edges:FILE; pass Python objects as user"
            )
        code = decode("topology", topology)
        if isinstance(code, File) and code.kind == "edges":
            return cls._static(read_edges(code.path, n_nodes), n_nodes, n_fragments, seed, topology)
        if topology == "edges":
            raise MosaicValueError(
                "topology 'edges' needs its edges: use edges:FILE, or hand the edge list to the "
                "Python API"
            )
        if topology not in BUILTIN_TOPOLOGIES:
            raise MosaicValueError(
                f"unknown topology {topology!r}; choose one of {', '.join(BUILTIN_TOPOLOGIES)}, "
                "or edges:FILE"
            )
        degree = require_int("degree", degree, 0)
        seed = require_int("seed", seed, 0)

        def builtin(round: int) -> Graphs:
            return sample_graphs(
                n_nodes, n_fragments, degree, seed=seed, round=round, mode=topology
            )

        return cls(n_nodes, n_fragments, topology, builtin)

    @classmethod
    def _from_user(cls, user: Any, n_nodes: int, n_fragments: int, seed: int) -> GraphSource:
        if isinstance(user, (str, os.PathLike)):
            label = f"{EDGES_PREFIX}{os.fspath(user)}"
            return cls._static(read_edges(user, n_nodes), n_nodes, n_fragments, seed, label)
        if callable(user) and not hasattr(user, "__array__"):
            return cls._per_round(user, n_nodes, n_fragments)
        edges = edge_array(user, n_nodes, EdgeOrigin("topology edge list", "has"))
        return cls._static(edges, n_nodes, n_fragments, seed, "edge list")

    @classmethod
    def _static(
        cls, edges: np.ndarray, n_nodes: int, n_fragments: int, seed: int, label: str
    ) -> GraphSource:
        seed = require_int("seed", seed, 0)

        def static(round: int) -> Graphs:
            return sample_graphs(
                n_nodes, n_fragments, 0, seed=seed, round=round, mode="edges", edges=edges
            )

        return cls(n_nodes, n_fragments, label, static)

    @classmethod
    def _per_round(cls, fn: EdgeCallable, n_nodes: int, n_fragments: int) -> GraphSource:
        name = _callable_name(fn)
        source = f"topology callable {name}"

        def per_round(round: int) -> Graphs:
            lists = []
            for fragment in range(n_fragments):
                context = f" for round {round}, fragment {fragment}"
                try:
                    value = fn(round, fragment)
                except Exception as exc:
                    raise MosaicValueError(
                        f"{source} raised {type(exc).__name__}{context}: {one_line(exc)}"
                    ) from exc
                lists.append(edge_array(value, n_nodes, EdgeOrigin(source, "returned", context)))
            return Graphs.from_edges(n_nodes, lists, round=round)

        return cls(n_nodes, n_fragments, f"callable {name}", per_round)

    def graphs(self, round: int) -> Graphs:
        """The graphs of ``round`` (0-based), one per fragment."""
        return self._make(require_int("round", round, 0))

    def __repr__(self) -> str:
        return f"GraphSource({self.label}, n_nodes={self.n_nodes}, K={self.n_fragments})"
