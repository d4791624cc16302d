"""Spectrum of ``M_t^T M_t`` over random gossip draws (paper Fig. 2), from the explicit Kronecker form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from .gossip import SPECTRUM_SEED_OFFSET, GossipSampler
from .kronecker import consensus_operator


@dataclass(frozen=True)
class SpectrumResult:
    """For one K: ``rho`` float64 (draws,), largest eigenvalue of ``M^T M`` per draw;
    ``spectrum_mean`` float64 (n*d,), mean over draws of the descending eigenvalues;
    ``mean_operator_rho``: largest eigenvalue of the draw-average of ``M^T M``."""

    rho: np.ndarray
    spectrum_mean: np.ndarray
    mean_operator_rho: float


def spectrum_over_draws(
    sampler: GossipSampler, assignment: np.ndarray, grad_op: np.ndarray, draws: int, seed: int
) -> SpectrumResult:
    """Eigenvalues of ``M^T M`` (dense ``nd x nd``) for ``draws`` independent gossip draws.

    Draw ``r`` is ``(seed + SPECTRUM_SEED_OFFSET, round r)``: independent of the simulation runs.
    """
    n, d = sampler.n_nodes, grad_op.shape[0]
    eig = np.empty((draws, n * d))
    mtm_sum = np.zeros((n * d, n * d))
    # Many small dense eigenproblems: one BLAS thread each is fastest, and immune to oversubscription.
    with threadpool_limits(limits=1, user_api="blas"):
        return _spectrum_loop(sampler, assignment, grad_op, draws, seed, eig, mtm_sum)


def _spectrum_loop(
    sampler: GossipSampler,
    assignment: np.ndarray,
    grad_op: np.ndarray,
    draws: int,
    seed: int,
    eig: np.ndarray,
    mtm_sum: np.ndarray,
) -> SpectrumResult:
    n_fragments = int(assignment.max()) + 1
    for r in range(draws):
        w = sampler.mixing(n_fragments, seed=seed + SPECTRUM_SEED_OFFSET, round=r)
        m = consensus_operator(w, assignment, grad_op)
        mtm = m.T @ m
        mtm_sum += mtm
        eig[r] = np.linalg.eigvalsh(mtm)[::-1]
    return SpectrumResult(
        eig[:, 0].copy(), eig.mean(axis=0), float(np.linalg.eigvalsh(mtm_sum / draws)[-1])
    )
