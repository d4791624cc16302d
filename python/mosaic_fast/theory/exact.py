"""Exact expected squared consensus norm for node-exchangeable gossip (derived in docs/THEORY.md).

With ``e_t = J X_t`` (``J = I - 11^T/n``) and ``Z = e_t B``, column ``a`` of the next error is
``J W^(C(a)) z_a``. Conditioning on the past and averaging over the round's independent draws,

    E[(e_{t+1}^T e_{t+1})_ab | e_t] = z_a^T G_{C(a)C(b)} z_b,
    G_kk = E[W^T J W],   G_kl = E[W]^T J E[W]  (k != l, independent fragments).

If the law of ``W`` is invariant under relabelling the nodes, every ``G`` commutes with all
permutation matrices, so ``G = g I + h 11^T``; since ``1^T z_a = 0`` only ``g`` survives. Hence the
second moment ``S_t = E[e_t^T e_t]`` (d x d) obeys the closed linear recursion

    S_{t+1} = Gamma ∘ (B S_t B),   Gamma_ab = gamma_same if C(a) == C(b) else alpha^2,

with ``J E[W] J = alpha J`` and ``J E[W^T J W] J = gamma_same J``, and the expected squared
consensus norm ``E||X_t - 1 xbar_t^T||_F^2`` is ``tr S_t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MosaicValueError
from .gossip import GossipSampler

# Seed of the one-off Monte Carlo moment estimate, disjoint from simulation and spectrum seeds.
MOMENT_SEED = 2_000_003


@dataclass(frozen=True)
class GossipMoments:
    """The two scalars the recursion needs, for one gossip law (mode, n, degree).

    ``alpha``: ``J E[W] J = alpha J``; ``gamma_same``: ``J E[W^T J W] J = gamma_same J``.
    ``source`` is ``"formula"`` or ``"monte-carlo"``; for Monte Carlo ``draws`` and the standard
    errors ``alpha_se`` / ``gamma_se`` say how precise the numbers are (0 for formulas).
    """

    alpha: float
    gamma_same: float
    source: str
    draws: int = 0
    alpha_se: float = 0.0
    gamma_se: float = 0.0

    @property
    def gamma_cross(self) -> float:
        """Coefficient of coordinate pairs in different fragments: ``alpha^2``."""
        return self.alpha**2


def moments_formula(mode: str, n: int, s: int) -> GossipMoments | None:
    """Closed-form moments where they exist (uniform weights ``1/(1+s)``, in-degree exactly ``s``).

    ``el-oracle`` / ``undirected``: ``W`` is doubly stochastic with ``||W||_F^2 = n/(1+s)``, so
    ``alpha = gamma_same = (n-1-s) / ((1+s)(n-1))``. ``pull``: out-degrees are Binomial(n-1, s/(n-1)),
    which gives ``gamma_same = alpha (1 - s/((n-1)(1+s)))``. ``el-local`` has no closed form for
    ``gamma_same`` (random in-degrees in the weights): returns None (see :func:`el_local_alpha`).
    """
    alpha = (n - 1 - s) / ((1 + s) * (n - 1))
    if mode in ("el-oracle", "undirected"):
        return GossipMoments(alpha, alpha, "formula")
    if mode == "pull":
        return GossipMoments(alpha, alpha * (1.0 - s / ((n - 1) * (1 + s))), "formula")
    return None


def el_local_alpha(n: int, s: int) -> float:
    """``alpha`` of ``el-local``: in-degrees are Binomial(n-1, p = s/(n-1)) and
    ``E[1/(1+B)] = (1 - (1-p)^n) / (n p)``, so ``alpha = (n E[1/(1+B)] - 1) / (n-1)``."""
    p = s / (n - 1)
    return ((1.0 - (1.0 - p) ** n) / p - 1.0) / (n - 1)


def estimate_moments(
    sampler: GossipSampler, draws: int, *, seed: int = MOMENT_SEED
) -> GossipMoments:
    """Monte Carlo estimate of ``alpha`` and ``gamma_same`` from ``draws`` independent matrices.

    Per draw, ``(tr W - 1^T W 1 / n)/(n-1)`` is unbiased for ``alpha`` and ``||J W J||_F^2/(n-1)``
    for ``gamma_same``; the estimates are their means, with standard errors.
    """
    if draws < 2:
        raise MosaicValueError(f"draws={draws} must be at least 2 for a Monte Carlo estimate")
    n = sampler.n_nodes
    a = np.empty(draws)
    g = np.empty(draws)
    for r in range(draws):
        w = sampler.mixing(1, seed=seed, round=r)[0]
        jwj = w - w.mean(axis=0, keepdims=True)
        jwj -= jwj.mean(axis=1, keepdims=True)
        a[r] = (np.trace(w) - w.sum() / n) / (n - 1)
        g[r] = np.sum(jwj**2) / (n - 1)
    se = np.sqrt(draws)
    return GossipMoments(
        float(a.mean()),
        float(g.mean()),
        "monte-carlo",
        draws,
        float(a.std(ddof=1) / se),
        float(g.std(ddof=1) / se),
    )


def gossip_moments(sampler: GossipSampler, draws: int) -> GossipMoments:
    """Formula moments where available; for ``el-local`` the ``alpha`` formula with a Monte Carlo
    ``gamma_same`` from ``draws`` draws (``source="monte-carlo"``, ``alpha_se=0``)."""
    exact = moments_formula(sampler.mode, sampler.n_nodes, sampler.degree)
    if exact is not None:
        return exact
    est = estimate_moments(sampler, draws)
    alpha = el_local_alpha(sampler.n_nodes, sampler.degree)
    return GossipMoments(alpha, est.gamma_same, "monte-carlo", est.draws, 0.0, est.gamma_se)


def coupling_matrix(assignment: np.ndarray, moments: GossipMoments) -> np.ndarray:
    """``Gamma``: float64 (d, d), ``gamma_same`` within a fragment, ``alpha^2`` across fragments."""
    same = assignment[:, None] == assignment[None, :]
    return np.where(same, moments.gamma_same, moments.gamma_cross)


def exact_second_moments(
    s0: np.ndarray,
    grad_op: np.ndarray,
    assignment: np.ndarray,
    moments: GossipMoments,
    iterations: int,
) -> np.ndarray:
    """``S_t = E[e_t^T e_t]`` for t = 0..iterations: float64 (iterations + 1, d, d).

    ``s0``: float64 (d, d), ``e_0^T e_0`` of a centred start (or its mean over starts);
    ``grad_op``: ``B = I - 2 eta A``; ``assignment``: int64 (d,).
    """
    gamma = coupling_matrix(assignment, moments)
    out = np.empty((iterations + 1, *s0.shape))
    out[0] = s0
    for t in range(iterations):
        out[t + 1] = gamma * (grad_op @ out[t] @ grad_op)
    return out


def exact_consensus_sq_norm(
    s0: np.ndarray,
    grad_op: np.ndarray,
    assignment: np.ndarray,
    moments: GossipMoments,
    iterations: int,
) -> np.ndarray:
    """Expected squared consensus norm ``E||X_t - 1 xbar_t^T||_F^2 = tr S_t`` for t = 0..iterations:
    float64 (iterations + 1,)."""
    s = exact_second_moments(s0, grad_op, assignment, moments, iterations)
    norms: np.ndarray = np.trace(s, axis1=1, axis2=2).copy()
    return norms


def expected_operator_rho(moments: GossipMoments, grad_op: np.ndarray) -> float:
    """``lambda_max(E[M^T M])``. From the same argument, ``E[M^T M] = gamma_same (J ⊗ B^2)`` (node
    stacking): the expected one-round contraction does not depend on K or on the fragment map."""
    return moments.gamma_same * float(np.max(np.linalg.eigvalsh(grad_op) ** 2))
