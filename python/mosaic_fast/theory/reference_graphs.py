"""Pure-numpy float64 reference gossip samplers, independent of the Rust kernel.

They serve as a cross-check of the kernel's samplers and let the theory run without the compiled
extension. Every sampler is label-equivariant (each random choice is uniform over labels, repairs
visit conflicts in random order), so its law is node-exchangeable, which the exact recursion in
:mod:`mosaic_fast.theory.exact` relies on. Mixing matrices follow the project's convention:
``W[i, j]`` is the weight of node ``j``'s value in node ``i``'s new value, own value plus every
received copy averaged uniformly.
"""

from __future__ import annotations

import numpy as np

from ..errors import MosaicInternalError, MosaicValueError

_MAX_RESTARTS = 1000


def mixing_from_in_neighbors(n: int, senders: np.ndarray, receivers: np.ndarray) -> np.ndarray:
    """Row-stochastic ``W`` (float64, (n, n)) for the directed edges ``senders[e] -> receivers[e]``
    (int arrays of equal length, no self loops, no duplicates)."""
    adj = np.zeros((n, n))
    adj[receivers, senders] = 1.0
    adj[np.arange(n), np.arange(n)] = 1.0
    mixing: np.ndarray = adj / adj.sum(axis=1, keepdims=True)
    return mixing


def _distinct_others(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """For every node ``i`` a uniform random set of ``s`` distinct nodes ``!= i``: int64 (n, s)."""
    keys = rng.random((n, n))
    keys[np.arange(n), np.arange(n)] = np.inf
    return np.argpartition(keys, s - 1, axis=1)[:, :s]


def _regular_digraph(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """Out-neighbours (int64 (n, s)) of a random ``s``-regular digraph without self loops or
    duplicate edges: ``s`` random permutations, conflicts repaired by random transpositions."""
    targets = np.empty((n, s), dtype=np.int64)
    for j in range(s):
        for _ in range(_MAX_RESTARTS):
            sigma = rng.permutation(n)
            if _repair_permutation(rng, sigma, targets[:, :j]):
                targets[:, j] = sigma
                break
        else:  # pragma: no cover - would need an astronomically unlucky stream
            raise MosaicInternalError(f"could not draw a {s}-regular digraph on {n} nodes")
    return targets


def _repair_permutation(rng: np.random.Generator, sigma: np.ndarray, taken: np.ndarray) -> bool:
    """Make ``sigma[i] != i`` and ``sigma[i] not in taken[i]`` by swapping values; in place."""
    n = sigma.shape[0]
    nodes = np.arange(n)

    def clashes(idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
        excluded: np.ndarray = (vals == idx) | np.any(taken[idx] == vals[:, None], axis=1)
        return excluded

    for _ in range(50 * n):
        bad = np.flatnonzero(clashes(nodes, sigma))
        if bad.size == 0:
            return True
        for i in rng.permutation(bad):
            r = int(rng.integers(n))
            pair = np.array([i, r])
            if not np.any(clashes(pair, sigma[pair[::-1]])):
                sigma[i], sigma[r] = sigma[r], sigma[i]
    return False


def _regular_graph(rng: np.random.Generator, n: int, s: int) -> np.ndarray:
    """Edges (int64 (n*s/2, 2)) of a random simple ``s``-regular undirected graph (Steger-Wormald
    pairing: join two uniformly random free half-edges unless that makes a loop or a multi-edge;
    restart when no admissible pair is left)."""
    for _ in range(_MAX_RESTARTS):
        points = np.repeat(np.arange(n), s)
        free = points.size
        adj = np.zeros((n, n), dtype=bool)
        edges = np.empty((points.size // 2, 2), dtype=np.int64)
        for e in range(edges.shape[0]):
            pair = _admissible_pair(rng, points[:free], adj)
            if pair is None:
                break
            a, b = pair
            u, v = points[a], points[b]
            adj[u, v] = adj[v, u] = True
            edges[e] = (u, v)
            # Remove both half-edges by swapping them to the end of the free region.
            for pos in sorted((a, b), reverse=True):
                free -= 1
                points[pos], points[free] = points[free], points[pos]
        else:
            return edges
    raise MosaicInternalError(
        f"could not draw a {s}-regular graph on {n} nodes"
    )  # pragma: no cover


def _admissible_pair(
    rng: np.random.Generator, points: np.ndarray, adj: np.ndarray
) -> tuple[int, int] | None:
    m = points.size
    for _ in range(64):  # random tries first: almost always enough
        a, b = rng.integers(m, size=2)
        if points[a] != points[b] and not adj[points[a], points[b]]:
            return int(a), int(b)
    ok = (points[:, None] != points[None, :]) & ~adj[points[:, None], points[None, :]]
    cand = np.argwhere(ok)
    if cand.size == 0:
        return None
    a, b = cand[rng.integers(len(cand))]
    return int(a), int(b)


def reference_mixing(mode: str, n: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """One mixing matrix (float64, (n, n)) of gossip law ``mode`` with degree ``s``.

    ``el-oracle``: random ``s``-regular digraph; ``undirected``: random ``s``-regular graph;
    ``pull``: every node receives from ``s`` distinct random others; ``el-local``: every node sends
    to ``s`` distinct random others.
    """
    if not 1 <= s < n:
        raise MosaicValueError(f"degree={s} must lie in [1, {n - 1}] for nodes={n}")
    src = np.repeat(np.arange(n), s)
    if mode in ("el-oracle", "undirected") and 2 * s > n - 1:
        # Dense regular graphs: draw the sparse complement (also regular, also exchangeable).
        if mode == "undirected" and (n * s) % 2:
            raise MosaicValueError(f"undirected gossip needs nodes*degree even, got {n}*{s}")
        adj = 1.0 - np.eye(n)
        if s < n - 1:
            # The complement's mixing matrix is (I + adjacency) / (n - s); recover its adjacency.
            adj -= np.rint(reference_mixing(mode, n, n - 1 - s, rng) * (n - s)) - np.eye(n)
        return (adj + np.eye(n)) / (1.0 + s)
    if mode == "el-oracle":
        dst = _regular_digraph(rng, n, s).reshape(-1)
        return mixing_from_in_neighbors(n, src, dst)
    if mode == "el-local":
        dst = _distinct_others(rng, n, s).reshape(-1)
        return mixing_from_in_neighbors(n, src, dst)
    if mode == "pull":
        # Row i pulls from its chosen nodes: they are the senders, i the receiver.
        return mixing_from_in_neighbors(n, _distinct_others(rng, n, s).reshape(-1), src)
    if mode == "undirected":
        if (n * s) % 2:
            raise MosaicValueError(f"undirected gossip needs nodes*degree even, got {n}*{s}")
        e = _regular_graph(rng, n, s)
        return mixing_from_in_neighbors(n, np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])
    raise MosaicValueError(f"mode={mode!r} is not one of el-oracle, el-local, pull, undirected")
