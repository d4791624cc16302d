"""Direct simulation of the consensus error on an (n, d) array (paper Fig. 3), no Kronecker products.

One round: gradient step ``X <- X - 2 eta (X - X*) A = X B + 1 (x* - B x*)^T`` with
``B = I - 2 eta A``, then fragment-wise gossip ``X[:, C==k] <- W^(k) X[:, C==k]``. The consensus
error ``e = X - 1 mean(X)`` does not depend on ``x*`` (Lemma 2), so the simulation runs with
``x* = 0`` from a centred start: the state then *is* the (small) disagreement and loses no
precision to cancellation against an O(1) consensus part. The state is renormalised every round
(the dynamics are linear) and the scale is tracked in log space, so long runs cannot underflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import TheoryConfig
from .gossip import GossipSampler, kernel_fragment_map

# Initial states come from a stream disjoint from every graph stream of the same seed.
_INIT_STREAM = 0x5EED


def fragment_columns(assignment: np.ndarray, n_fragments: int) -> list[np.ndarray]:
    """Coordinate indices of each fragment: list of K int64 arrays."""
    return [np.flatnonzero(assignment == k) for k in range(n_fragments)]


def gossip_step(x_half: np.ndarray, mixing: np.ndarray, columns: list[np.ndarray]) -> np.ndarray:
    """Fragment-wise averaging in float64: ``out[:, cols_k] = W^(k) @ x_half[:, cols_k]``.

    ``x_half``: float64 (n, d); ``mixing``: float64 (K, n, n); returns a new float64 (n, d) array.
    """
    out = np.empty_like(x_half)
    for k, cols in enumerate(columns):
        out[:, cols] = mixing[k] @ x_half[:, cols]
    return out


def direct_step(
    x: np.ndarray,
    mixing: np.ndarray,
    assignment: np.ndarray,
    grad_op: np.ndarray,
    x_star: np.ndarray | None = None,
) -> np.ndarray:
    """One Mosaic round on the quadratic model: float64 (n, d) -> float64 (n, d).

    ``grad_op`` is ``B = I - 2 eta A`` (float64 (d, d), symmetric); ``x_star`` float64 (d,) or None (0).
    """
    x_half = x @ grad_op
    if x_star is not None:
        x_half += x_star - grad_op @ x_star
    return gossip_step(x_half, mixing, fragment_columns(assignment, mixing.shape[0]))


def consensus_sq_norm(x: np.ndarray) -> float:
    """Squared consensus norm ``||X - 1 xbar^T||_F^2 = sum_i ||x_i - xbar||_2^2`` of an (n, d) array
    (``xbar`` the mean row; the paper's Fig. 3 quantity). Not the engine's ``consensus_distance``,
    which is the mean unsquared distance ``(1/n) sum_i ||x_i - xbar||_2`` (see docs/THEORY.md)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum((x - x.mean(axis=0)) ** 2))


def initial_state(seed: int, n: int, d: int) -> np.ndarray:
    """Centred i.i.d. standard normal start of run ``seed``: float64 (n, d), column means 0."""
    x = np.random.default_rng([seed, _INIT_STREAM]).standard_normal((n, d))
    centred: np.ndarray = x - x.mean(axis=0)
    return centred


@dataclass(frozen=True)
class SimulationResult:
    """``consensus_sq_norms``: float64 (seeds, iterations + 1), squared consensus norm of every run
    at t = 0..T; ``s0``: float64 (d, d), mean over runs of ``e_0^T e_0`` (start of the exact
    recursion)."""

    consensus_sq_norms: np.ndarray
    s0: np.ndarray


def simulate_consensus(
    config: TheoryConfig,
    sampler: GossipSampler,
    assignment: np.ndarray,
    grad_op: np.ndarray,
) -> SimulationResult:
    """Run ``config.seeds`` independent simulations of ``config.iterations`` rounds for the fragment
    map ``assignment`` (int64 (d,)); run ``r`` uses graph seed ``config.seed + r``, rounds ``0..T-1``."""
    n, d, n_fragments = config.nodes, config.params, int(assignment.max()) + 1
    columns = fragment_columns(assignment, n_fragments)
    sq_norms = np.empty((config.seeds, config.iterations + 1))
    s0 = np.zeros((d, d))
    for r in range(config.seeds):
        seed = config.seed + r
        x = initial_state(seed, n, d)
        s0 += x.T @ x / config.seeds
        if config.backend == "rust":
            sq_norms[r] = _run_rust(config, sampler, x, grad_op, n_fragments, seed)
        else:
            sq_norms[r] = _run_numpy(config, sampler, x, grad_op, columns, seed)
    return SimulationResult(sq_norms, s0)


def _run_numpy(
    config: TheoryConfig,
    sampler: GossipSampler,
    x: np.ndarray,
    grad_op: np.ndarray,
    columns: list[np.ndarray],
    seed: int,
) -> np.ndarray:
    curve = np.empty(config.iterations + 1)
    curve[0] = consensus_sq_norm(x)
    log_scale = 0.0
    for t in range(config.iterations):
        x = gossip_step(x @ grad_op, sampler.mixing(len(columns), seed=seed, round=t), columns)
        log_scale, x = _renormalise(log_scale, x)
        curve[t + 1] = np.exp(2.0 * log_scale) * consensus_sq_norm(x)
    return curve


def _run_rust(
    config: TheoryConfig,
    sampler: GossipSampler,
    x: np.ndarray,
    grad_op: np.ndarray,
    n_fragments: int,
    seed: int,
) -> np.ndarray:
    from ..kernel import aggregate

    fmap = kernel_fragment_map(config, n_fragments)
    grad32 = grad_op.astype(np.float32)
    x = x.astype(np.float32)
    out = np.empty_like(x)
    curve = np.empty(config.iterations + 1)
    curve[0] = consensus_sq_norm(x)
    log_scale = 0.0
    for t in range(config.iterations):
        graphs = sampler.graphs(n_fragments, seed=seed, round=t)
        aggregate(np.ascontiguousarray(x @ grad32), graphs, fmap, out=out)
        x, out = out, x
        log_scale, x = _renormalise(log_scale, x)
        curve[t + 1] = np.exp(2.0 * log_scale) * consensus_sq_norm(x)
    return curve


def _renormalise(log_scale: float, x: np.ndarray) -> tuple[float, np.ndarray]:
    norm = float(np.linalg.norm(x))
    if norm == 0.0 or not np.isfinite(norm):
        return log_scale, x
    x /= np.asarray(norm, dtype=x.dtype)
    return log_scale + np.log(norm), x
