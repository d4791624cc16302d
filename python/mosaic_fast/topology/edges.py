"""Edge lists and adjacency matrices, from Python objects or files, checked into ``(n_edges, 2)``
int64 edge lists with one-line messages naming where a bad edge came from (the formats and the
edge direction are in :mod:`mosaic_fast.topology`)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import MosaicValueError
from .inputs import existing, load_npy, one_line, read_text_rows, require_int


class EdgeOrigin:
    """Where an edge list came from, for messages: ``{source} {verb} edge (s, d){at}: reason``."""

    def __init__(
        self, source: str, verb: str, context: str = "", lines: np.ndarray | None = None
    ) -> None:
        self.source, self.verb, self.context, self.lines = source, verb, context, lines

    def row(self, row: int) -> str:
        return f"line {self.lines[row]}" if self.lines is not None else f"row {row}"

    def edge(self, edges: np.ndarray, row: int) -> str:
        src, dst = (int(v) for v in edges[row])
        where = self.context or f" at {self.row(row)}"
        return f"{self.source} {self.verb} edge ({src}, {dst}){where}"

    def whole(self, what: str) -> str:
        return f"{self.source} {self.verb} {what}{self.context}"


def _expected(n_nodes: int) -> str:
    return f"expected an (n_edges, 2) integer edge list or a ({n_nodes}, {n_nodes}) 0/1 adjacency matrix"


def _is_adjacency(array: np.ndarray, n_nodes: int) -> bool:
    # (2, 2) integer arrays are edge lists: a boolean matrix says adjacency unambiguously.
    return array.dtype == np.bool_ or (array.shape == (n_nodes, n_nodes) and n_nodes != 2)


def _as_array(value: Any, n_nodes: int, origin: EdgeOrigin) -> np.ndarray:
    if not isinstance(value, (np.ndarray, list, tuple)) and not hasattr(value, "__array__"):
        raise MosaicValueError(f"{origin.whole(type(value).__name__)}; {_expected(n_nodes)}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:
        what = f"a {type(value).__name__} that is not a rectangular array"
        raise MosaicValueError(
            f"{origin.whole(what)}; {_expected(n_nodes)} ({one_line(exc)})"
        ) from None
    if array.dtype == object:
        raise MosaicValueError(f"{origin.whole('an array of objects')}; {_expected(n_nodes)}")
    return array


def edge_array(value: Any, n_nodes: int, origin: EdgeOrigin) -> np.ndarray:
    """``value`` (edge list or adjacency matrix) as a checked ``(n_edges, 2)`` int64 edge list."""
    array = _as_array(value, n_nodes, origin)
    if array.size == 0 and array.dtype != np.bool_:
        return np.zeros((0, 2), np.int64)
    if array.dtype.kind not in "iub":
        raise MosaicValueError(
            f"{origin.whole(f'an array of dtype {array.dtype}')}; node ids must be integers "
            "(an adjacency matrix may also be boolean)"
        )
    if _is_adjacency(array, n_nodes):
        if array.shape != (n_nodes, n_nodes):
            raise MosaicValueError(
                f"{origin.whole(f'a boolean array of shape {array.shape}')}; an adjacency matrix "
                f"of {n_nodes} nodes has shape ({n_nodes}, {n_nodes})"
            )
        return _adjacency_edges(array, origin)
    if array.ndim != 2 or array.shape[1] != 2:
        raise MosaicValueError(
            f"{origin.whole(f'an array of shape {array.shape}')}; {_expected(n_nodes)}"
        )
    return _check_edges(array, n_nodes, origin)


def _adjacency_edges(matrix: np.ndarray, origin: EdgeOrigin) -> np.ndarray:
    if matrix.dtype != np.bool_:
        bad = np.argwhere((matrix != 0) & (matrix != 1))
        if len(bad):
            i, j = (int(v) for v in bad[0])
            raise MosaicValueError(
                f"{origin.whole('an adjacency matrix')} with entry [{i}, {j}] = {matrix[i, j]}; "
                "entries must be 0 or 1 (every received copy weighs the same)"
            )
    edges = np.argwhere(matrix).astype(np.int64)
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if len(loops):
        node = int(edges[loops[0], 0])
        raise MosaicValueError(
            f"{origin.whole('an adjacency matrix')} with entry [{node}, {node}] set: a self loop; "
            "a node's own value always counts, so the diagonal must be 0"
        )
    return edges


def _check_edges(edges: np.ndarray, n_nodes: int, origin: EdgeOrigin) -> np.ndarray:
    """``edges`` (any integer dtype) as int64, or the first negative, out-of-range, self-loop or
    repeated edge as one MosaicValueError. Ranges are checked in the given dtype (no wrap-around)."""
    negative = np.flatnonzero((edges < 0).any(axis=1))
    if len(negative):
        row = int(negative[0])
        node = int(edges[row].min())
        raise MosaicValueError(f"{origin.edge(edges, row)}: node {node} is negative")
    outside = np.flatnonzero((edges >= n_nodes).any(axis=1))
    if len(outside):
        row = int(outside[0])
        node = int(edges[row].max())
        raise MosaicValueError(
            f"{origin.edge(edges, row)}: node {node} is out of range for {n_nodes} nodes"
        )
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if len(loops):
        raise MosaicValueError(
            f"{origin.edge(edges, int(loops[0]))}: a self loop (a node's own value always counts)"
        )
    edges = edges.astype(np.int64)
    keys = edges[:, 0] * n_nodes + edges[:, 1]
    order = np.argsort(keys, kind="stable")
    repeats = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if len(repeats):
        # The earliest row that repeats an edge, and the first row holding that edge.
        row = int(order[repeats + 1].min())
        first = int(np.flatnonzero(keys == keys[row])[0])
        raise MosaicValueError(
            f"{origin.edge(edges, row)}: a duplicate edge (already at {origin.row(first)})"
        )
    return edges


def read_edges(path: str | os.PathLike[str], n_nodes: int) -> np.ndarray:
    """The checked ``(n_edges, 2)`` int64 edge list of an edge-list or adjacency file (see the module
    docstring for the formats); a bad file or edge is one MosaicValueError naming the line or row."""
    n_nodes = require_int("n_nodes", n_nodes, 2)
    what = "topology file"
    path = existing(path, what)
    if path.suffix.lower() == ".npy":
        return edge_array(load_npy(path, what), n_nodes, EdgeOrigin(f"{what} {path}", "has"))
    rows, lines = read_text_rows(path, what)
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        width = len(rows[0])
        bad = next(i for i, row in enumerate(rows) if len(row) != width)
        raise MosaicValueError(
            f"{what} {path}, line {lines[bad]}: {len(rows[bad])} fields where line {lines[0]} "
            f"has {width}; expected 'src dst' (or 'src,dst') per line, or the {n_nodes} rows "
            "of an adjacency matrix"
        )
    table = np.array(rows, dtype=np.int64).reshape(len(rows), widths.pop() if widths else 2)
    origin = EdgeOrigin(f"{what} {path}", "has", lines=np.array(lines))
    if _is_adjacency(table, n_nodes):
        return _adjacency_edges(table, EdgeOrigin(f"{what} {path}", "has"))
    return edge_array(table, n_nodes, origin)
