"""Splitting a training set over nodes: label-based partitioners and the natural (group) split.

Every function is a pure function of its arguments: randomness comes only from
``numpy.random.Generator(PCG64(seed))``. Results are lists with one int64 index array per node,
sorted ascending, disjoint, covering all samples, and non-empty.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..errors import MosaicTypeError, MosaicValueError

METHODS = ("iid", "dirichlet", "shards")


def _check_count(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MosaicTypeError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise MosaicValueError(f"{name}={value} must be at least {minimum}")
    return int(value)


def _as_1d_ints(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise MosaicValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise MosaicTypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _sorted_parts(owner: np.ndarray, n_nodes: int) -> list[np.ndarray]:
    """Indices of each node, given the node id owning every sample (int64 (N,))."""
    order = np.argsort(owner, kind="stable")
    bounds = np.cumsum(np.bincount(owner, minlength=n_nodes))[:-1]
    return [part.astype(np.int64) for part in np.split(order, bounds)]


def _iid(n: int, n_nodes: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [np.sort(p) for p in np.array_split(rng.permutation(n), n_nodes)]


def _dirichlet(
    labels: np.ndarray, n_nodes: int, alpha: float, rng: np.random.Generator
) -> list[np.ndarray]:
    # Hsu, Qi & Brown (2019): for each class, shares over nodes ~ Dir(alpha * 1).
    owner = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        shares = rng.dirichlet(np.full(n_nodes, alpha))
        cuts = np.floor(np.cumsum(shares)[:-1] * len(idx)).astype(np.int64)
        owner[idx] = np.repeat(np.arange(n_nodes), np.diff(np.concatenate(([0], cuts, [len(idx)]))))
    # Repair: an empty node takes one sample from the largest node (lowest id on ties).
    counts = np.bincount(owner, minlength=n_nodes)
    for node in np.flatnonzero(counts == 0):
        donor = int(np.argmax(counts))
        moved = int(np.flatnonzero(owner == donor)[-1])
        owner[moved] = node
        counts[donor] -= 1
        counts[node] += 1
    return _sorted_parts(owner, n_nodes)


def _shards(
    labels: np.ndarray, n_nodes: int, shards_per_node: int, rng: np.random.Generator
) -> list[np.ndarray]:
    # McMahan et al. (2017): sort by label, cut into equal shards, deal shards at random.
    n_shards = n_nodes * shards_per_node
    if n_shards > len(labels):
        raise MosaicValueError(
            f"n_nodes * shards_per_node = {n_shards} shards exceeds the {len(labels)} samples"
        )
    shards = np.array_split(np.argsort(labels, kind="stable"), n_shards)
    deal = rng.permutation(n_shards).reshape(n_nodes, shards_per_node)
    return [np.sort(np.concatenate([shards[s] for s in row])).astype(np.int64) for row in deal]


def partition_classes(
    labels: np.ndarray,
    n_nodes: int,
    *,
    method: str,
    alpha: float | None = None,
    shards_per_node: int = 2,
    seed: int = 0,
) -> list[np.ndarray]:
    """Split sample indices over nodes by label.

    Args:
        labels: integer class labels, shape ``(N,)``.
        n_nodes: number of nodes, ``1 <= n_nodes <= N``.
        method: ``"iid"`` (shuffle, equal split), ``"dirichlet"`` (per class, node shares drawn
            from Dir(alpha); lower alpha = more label skew; an empty node is repaired by taking one
            sample from the largest node) or ``"shards"`` (sort by label, cut into
            ``n_nodes * shards_per_node`` shards, deal them at random).
        alpha: Dirichlet concentration, required and > 0 for ``"dirichlet"``; ignored otherwise.
        shards_per_node: shards per node for ``"shards"``.
        seed: non-negative seed of the PCG64 generator.

    Returns:
        ``n_nodes`` sorted int64 index arrays: disjoint, covering ``range(N)``, each non-empty.
    """
    labels = _as_1d_ints("labels", labels)
    n_nodes = _check_count("n_nodes", n_nodes)
    seed = _check_count("seed", seed, minimum=0)
    if method not in METHODS:
        raise MosaicValueError(
            f"unknown partition method {method!r}; choose one of {', '.join(METHODS)}"
        )
    if n_nodes > len(labels):
        raise MosaicValueError(f"n_nodes={n_nodes} exceeds the number of samples ({len(labels)})")
    rng = np.random.Generator(np.random.PCG64(seed))
    if method == "iid":
        return _iid(len(labels), n_nodes, rng)
    if method == "dirichlet":
        if not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) or not alpha > 0:
            raise MosaicValueError(
                f"alpha={alpha!r} must be a positive number for the dirichlet partition"
            )
        return _dirichlet(labels, n_nodes, float(alpha), rng)
    spn = _check_count("shards_per_node", shards_per_node)
    return _shards(labels, n_nodes, spn, rng)


def deal_group_ids(groups: np.ndarray, n_nodes: int) -> list[np.ndarray]:
    """The distinct group ids, sorted, dealt to nodes in contiguous blocks.

    Node ``i`` gets the ``i``-th block of ``numpy.array_split`` of the sorted distinct ids (the
    first ``G mod n_nodes`` nodes get one extra group). Returns ``n_nodes`` int64 arrays of group ids.
    """
    groups = _as_1d_ints("groups", groups)
    n_nodes = _check_count("n_nodes", n_nodes)
    distinct = np.unique(groups)
    if n_nodes > len(distinct):
        raise MosaicValueError(
            f"n_nodes={n_nodes} exceeds the number of distinct groups ({len(distinct)})"
        )
    return [b.astype(np.int64) for b in np.array_split(distinct, n_nodes)]


def deal_groups(groups: np.ndarray, n_nodes: int) -> list[np.ndarray]:
    """The natural split: sample indices of the groups each node gets from :func:`deal_group_ids`.

    Args:
        groups: integer group (user / role) id per sample, shape ``(N,)``.
        n_nodes: number of nodes, at most the number of distinct groups.

    Returns:
        ``n_nodes`` sorted int64 sample-index arrays, disjoint, covering ``range(N)``, non-empty.
    """
    groups = _as_1d_ints("groups", groups)
    n_nodes = _check_count("n_nodes", n_nodes)
    distinct, inverse = np.unique(groups, return_inverse=True)
    if n_nodes > len(distinct):
        raise MosaicValueError(
            f"n_nodes={n_nodes} exceeds the number of distinct groups ({len(distinct)})"
        )
    sizes = [len(b) for b in np.array_split(np.arange(len(distinct)), n_nodes)]
    node_of_group = np.repeat(np.arange(n_nodes), sizes)
    return _sorted_parts(node_of_group[inverse.reshape(-1)], n_nodes)
