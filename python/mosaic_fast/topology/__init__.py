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

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MosaicTypeError, MosaicValueError
from ..kernel import GRAPH_MODES, FragmentMap, Graphs, sample_graphs

EdgeCallable = Callable[[int, int], Any]
"""``(round, fragment) -> edge list or adjacency matrix`` of that fragment's graph in that round."""

EDGES_PREFIX = "edges:"
ASSIGNMENT_PREFIX = "assignment:"
BUILTIN_TOPOLOGIES = tuple(mode for mode in GRAPH_MODES if mode != "edges")
BUILTIN_FRAGMENTERS = ("contiguous", "random", "blocks")

_FIELD_SEPARATOR = re.compile(r"[,\s]+")


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _require_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise MosaicTypeError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise MosaicValueError(f"{name}={value} must be at least {minimum}")
    return int(value)


class _Origin:
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


def _as_array(value: Any, n_nodes: int, origin: _Origin) -> np.ndarray:
    if not isinstance(value, (np.ndarray, list, tuple)) and not hasattr(value, "__array__"):
        raise MosaicValueError(f"{origin.whole(type(value).__name__)}; {_expected(n_nodes)}")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RuntimeError) as exc:
        what = f"a {type(value).__name__} that is not a rectangular array"
        raise MosaicValueError(
            f"{origin.whole(what)}; {_expected(n_nodes)} ({_one_line(exc)})"
        ) from None
    if array.dtype == object:
        raise MosaicValueError(f"{origin.whole('an array of objects')}; {_expected(n_nodes)}")
    return array


def _edge_array(value: Any, n_nodes: int, origin: _Origin) -> np.ndarray:
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


def _adjacency_edges(matrix: np.ndarray, origin: _Origin) -> np.ndarray:
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


def _check_edges(edges: np.ndarray, n_nodes: int, origin: _Origin) -> np.ndarray:
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


def _read_text_rows(path: Path, what: str) -> tuple[list[list[int]], list[int]]:
    """Integer fields of every non-blank line (``#`` comments dropped) and the lines' numbers."""
    rows: list[list[int]] = []
    lines: list[int] = []
    with _open_text(path, what) as handle:
        for number, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            row = []
            for token in _FIELD_SEPARATOR.split(text):
                try:
                    row.append(int(token))
                except ValueError:
                    raise MosaicValueError(
                        f"{what} {path}, line {number}: {token!r} is not an integer "
                        "(use # for comments)"
                    ) from None
            rows.append(row)
            lines.append(number)
    return rows, lines


def _open_text(path: Path, what: str) -> Any:
    try:
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise MosaicValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MosaicValueError(f"{what} {path} does not exist") from None
    except (OSError, ValueError, EOFError) as exc:
        raise MosaicValueError(f"cannot read {what} {path} as .npy: {_one_line(exc)}") from None


def _existing(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MosaicValueError(f"{what} {path} does not exist")
    return path


def read_edges(path: str | os.PathLike[str], n_nodes: int) -> np.ndarray:
    """The checked ``(n_edges, 2)`` int64 edge list of an edge-list or adjacency file (see the module
    docstring for the formats); a bad file or edge is one MosaicValueError naming the line or row."""
    n_nodes = _require_int("n_nodes", n_nodes, 2)
    what = "topology file"
    path = _existing(path, what)
    if path.suffix.lower() == ".npy":
        return _edge_array(_load_npy(path, what), n_nodes, _Origin(f"{what} {path}", "has"))
    rows, lines = _read_text_rows(path, what)
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
    origin = _Origin(f"{what} {path}", "has", lines=np.array(lines))
    if _is_adjacency(table, n_nodes):
        return _adjacency_edges(table, _Origin(f"{what} {path}", "has"))
    return _edge_array(table, n_nodes, origin)


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
        n_nodes = _require_int("n_nodes", n_nodes, 2)
        n_fragments = _require_int("K", n_fragments, 1)
        if user is not None:
            return cls._from_user(user, n_nodes, n_fragments, seed)
        if not isinstance(topology, str):
            raise MosaicTypeError(
                f"topology={topology!r} must be a mode name or edges:FILE; pass Python objects as user"
            )
        if topology.startswith(EDGES_PREFIX) and len(topology) > len(EDGES_PREFIX):
            path = topology[len(EDGES_PREFIX) :]
            return cls._static(read_edges(path, n_nodes), n_nodes, n_fragments, seed, topology)
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
        degree = _require_int("degree", degree, 0)
        seed = _require_int("seed", seed, 0)

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
        edges = _edge_array(user, n_nodes, _Origin("topology edge list", "has"))
        return cls._static(edges, n_nodes, n_fragments, seed, "edge list")

    @classmethod
    def _static(
        cls, edges: np.ndarray, n_nodes: int, n_fragments: int, seed: int, label: str
    ) -> GraphSource:
        seed = _require_int("seed", seed, 0)

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
                        f"{source} raised {type(exc).__name__}{context}: {_one_line(exc)}"
                    ) from exc
                lists.append(_edge_array(value, n_nodes, _Origin(source, "returned", context)))
            return Graphs.from_edges(n_nodes, lists, round=round)

        return cls(n_nodes, n_fragments, f"callable {name}", per_round)

    def graphs(self, round: int) -> Graphs:
        """The graphs of ``round`` (0-based), one per fragment."""
        return self._make(_require_int("round", round, 0))

    def __repr__(self) -> str:
        return f"GraphSource({self.label}, n_nodes={self.n_nodes}, K={self.n_fragments})"


def read_assignment(path: str | os.PathLike[str]) -> np.ndarray:
    """The fragment ids of an assignment file (``.npy`` or text), as read: unchecked against a model.
    A missing or unreadable file, or a text token that is not an integer, is one MosaicValueError."""
    what = "assignment file"
    path = _existing(path, what)
    if path.suffix.lower() == ".npy":
        return _load_npy(path, what)
    rows, _ = _read_text_rows(path, what)
    return np.array([v for row in rows for v in row], dtype=np.int64)


def assignment_map(
    assignment: Any, n_fragments: int, n_params: int, *, origin: str = "fragment assignment"
) -> FragmentMap:
    """A :class:`FragmentMap` from one fragment id per coordinate, checked with one-line messages:
    ``origin`` names the assignment (a file, or the array handed to the API)."""
    n_fragments = _require_int("K", n_fragments, 1)
    n_params = _require_int("n_params", n_params, 1)
    if n_fragments > n_params:
        raise MosaicValueError(
            f"K={n_fragments} exceeds n_params={n_params}: every fragment needs a coordinate"
        )
    try:
        ids = np.asarray(assignment)
    except (ValueError, TypeError) as exc:
        raise MosaicValueError(
            f"{origin} is not an array of fragment ids: {_one_line(exc)}"
        ) from None
    if ids.dtype.kind not in "iu":
        raise MosaicValueError(f"{origin} holds {ids.dtype} values; fragment ids must be integers")
    if ids.ndim != 1:
        raise MosaicValueError(
            f"{origin} has shape {ids.shape}; expected one fragment id per coordinate, "
            f"shape ({n_params},)"
        )
    if len(ids) != n_params:
        raise MosaicValueError(
            f"{origin} has {len(ids)} fragment ids, but the model has n_params={n_params}"
        )
    outside = np.flatnonzero((ids < 0) | (ids >= n_fragments))
    if len(outside):
        c = int(outside[0])
        raise MosaicValueError(
            f"{origin}: coordinate {c} has fragment id {ids[c]}, outside 0..{n_fragments - 1} "
            f"(K={n_fragments})"
        )
    sizes = np.bincount(ids.astype(np.int64), minlength=n_fragments)
    empty = np.flatnonzero(sizes == 0)
    if len(empty):
        raise MosaicValueError(
            f"{origin}: fragment {int(empty[0])} of K={n_fragments} has no coordinate"
        )
    return FragmentMap.from_assignment(ids, n_fragments)


class SmallLayerWarning(UserWarning):
    """A layer has fewer coordinates than there are fragments (``fragmenter='random'``)."""


def _warn_small_layers(layer_sizes: Sequence[int], n_fragments: int) -> None:
    """Say once what happens to layers smaller than K: each of their coordinates still goes to
    one fragment, so they travel in fewer than K fragments (the fragments stay balanced overall,
    as the smaller layers' leftovers rotate over the fragments)."""
    small = [(j, size) for j, size in enumerate(layer_sizes) if size < n_fragments]
    if small:
        j, size = min(small, key=lambda js: js[1])
        warnings.warn(
            f"fragmenter='random': {len(small)} layer(s) have fewer coordinates than K={n_fragments} "
            f"(the smallest, layer {j}, has {size}); each of their coordinates goes to one "
            f"fragment, so such a layer travels in only {size} of the {n_fragments} fragments",
            SmallLayerWarning,
            stacklevel=3,
        )


def fragments_for(
    fragmenter: str,
    n_fragments: int,
    layer_sizes: Sequence[int],
    n_params: int,
    seed: int,
    block_size: int,
    user: Any = None,
) -> FragmentMap:
    """The fragment map of a run: ``fragmenter`` is ``contiguous``, ``random`` (balanced within each
    of ``layer_sizes``), ``blocks`` (of ``block_size`` coordinates) or ``"assignment:FILE"``.

    ``user``, when given, is the object the setting stands for (``fragmenter`` is then only its
    label): an array-like of one fragment id per coordinate, a path to an assignment file, or a
    :class:`FragmentMap` (checked against ``n_params`` and ``K``).
    """
    if user is not None:
        if isinstance(user, FragmentMap):
            if (user.n_params, user.n_fragments) != (n_params, n_fragments):
                raise MosaicValueError(
                    f"the fragment map has n_params={user.n_params}, K={user.n_fragments}, but the "
                    f"run has n_params={n_params}, K={n_fragments}"
                )
            return user
        if isinstance(user, (str, os.PathLike)):
            return assignment_map(
                read_assignment(user), n_fragments, n_params, origin=f"assignment file {user}"
            )
        return assignment_map(user, n_fragments, n_params)
    if fragmenter == "contiguous":
        return FragmentMap.contiguous(n_params, n_fragments)
    if fragmenter == "random":
        _warn_small_layers(layer_sizes, n_fragments)
        return FragmentMap.random(n_params, n_fragments, seed=seed, layer_sizes=list(layer_sizes))
    if fragmenter == "blocks":
        return FragmentMap.blocks(n_params, n_fragments, block_size=block_size, seed=seed)
    if (
        isinstance(fragmenter, str)
        and fragmenter.startswith(ASSIGNMENT_PREFIX)
        and len(fragmenter) > len(ASSIGNMENT_PREFIX)
    ):
        path = fragmenter[len(ASSIGNMENT_PREFIX) :]
        return assignment_map(
            read_assignment(path), n_fragments, n_params, origin=f"assignment file {path}"
        )
    raise MosaicValueError(
        f"unknown fragmenter {fragmenter!r}; choose one of {', '.join(BUILTIN_FRAGMENTERS)}, "
        "or assignment:FILE"
    )


def fragment_coordinates(fragments: FragmentMap, device: Any) -> list[Any]:
    """Every fragment's coordinates (int64 index tensors on ``device``), ascending."""
    import torch

    assignment = torch.as_tensor(np.asarray(fragments.assignment(), dtype=np.int64))
    return [
        torch.nonzero(assignment == k).reshape(-1).to(device) for k in range(fragments.n_fragments)
    ]
