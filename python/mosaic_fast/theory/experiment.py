"""One full analysis: spectrum per K (Fig. 2), simulated and exact squared consensus norm per K
(Fig. 3)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..results.layout import to_json
from .config import TheoryConfig
from .correlation import correlation_matrix, default_eta, gradient_operator
from .exact import exact_consensus_sq_norm, expected_operator_rho, gossip_moments
from .gossip import fragment_assignment, make_sampler
from .kronecker import consensus_operator
from .result import KResult, TheoryResult
from .simulate import direct_step, initial_state, simulate_consensus
from .spectrum import spectrum_over_draws

# The Kronecker-vs-direct check runs on the real sizes only while M_t stays small.
_KRON_CHECK_MAX_ND = 1024
_KRON_CHECK_ROUNDS = 3


def kronecker_agreement(
    config: TheoryConfig, n_fragments: int, grad_op: np.ndarray, rounds: int = _KRON_CHECK_ROUNDS
) -> float:
    """Largest ``|M_t vec(e_t) - vec(e_{t+1})|`` over ``rounds`` rounds, with ``e_{t+1}`` from the direct
    (n, d) step of an uncentred start with ``x* != 0``, on the config's own graphs and fragment map."""
    sampler = make_sampler(config)
    assignment = fragment_assignment(config, n_fragments)
    rng = np.random.default_rng([config.seed, 0xC4EC])
    x = initial_state(config.seed, config.nodes, config.params) + rng.standard_normal(config.params)
    x_star = rng.standard_normal(config.params)
    worst = 0.0
    for t in range(rounds):
        w = sampler.mixing(n_fragments, seed=config.seed, round=t)
        e = x - x.mean(axis=0)
        x = direct_step(x, w, assignment, grad_op, x_star)
        predicted = consensus_operator(w, assignment, grad_op) @ e.reshape(-1)
        worst = max(worst, float(np.max(np.abs(predicted - (x - x.mean(axis=0)).reshape(-1)))))
    return worst


def run_theory(config: TheoryConfig) -> TheoryResult:
    """Run the whole analysis for ``config`` (see :class:`TheoryConfig`)."""
    a = correlation_matrix(config)
    eta = config.eta if config.eta is not None else default_eta(a)
    grad_op = gradient_operator(a, eta)
    sampler = make_sampler(config)
    # Every supported law is node-exchangeable, so the exact recursion always applies.
    moments = gossip_moments(sampler, config.moment_draws)
    per_k = []
    for k in config.K:
        assignment = fragment_assignment(config, k)
        spec = spectrum_over_draws(sampler, assignment, grad_op, config.draws, config.seed)
        sim = simulate_consensus(config, sampler, assignment, grad_op)
        exact = exact_consensus_sq_norm(sim.s0, grad_op, assignment, moments, config.iterations)
        check = (
            kronecker_agreement(config, k, grad_op)
            if config.nodes * config.params <= _KRON_CHECK_MAX_ND
            else None
        )
        per_k.append(
            KResult(
                k,
                spec.rho,
                spec.spectrum_mean,
                spec.mean_operator_rho,
                sim.consensus_sq_norms.mean(axis=0),
                sim.consensus_sq_norms.std(axis=0, ddof=1)
                if config.seeds > 1
                else np.zeros(config.iterations + 1),
                exact,
                check,
            )
        )
    return TheoryResult(
        config,
        eta,
        np.linalg.eigvalsh(a),
        moments,
        expected_operator_rho(moments, grad_op),
        tuple(per_k),
    )


def result_to_json(result: TheoryResult) -> dict[str, Any]:
    """The ``theory.json`` document (plain lists and numbers)."""
    cfg = asdict(result.config)
    cfg["K"] = list(cfg["K"])
    doc = {
        "config": cfg,
        "eta": result.eta,
        "a_eigenvalues": result.a_eigenvalues.tolist(),
        "gossip_moments": None if result.moments is None else asdict(result.moments),
        "expected_operator_rho": result.expected_operator_rho,
        "K": {},
    }
    for r in result.per_k:
        doc["K"][str(r.K)] = {
            "rho_mean": float(r.rho.mean()),
            "rho_std": float(r.rho.std(ddof=1)) if r.rho.size > 1 else 0.0,
            "rho_draws": r.rho.tolist(),
            "spectrum_mean": r.spectrum_mean.tolist(),
            "mean_operator_rho": r.mean_operator_rho,
            "consensus_sq_norm_mean": r.consensus_sq_norm_mean.tolist(),
            "consensus_sq_norm_std": r.consensus_sq_norm_std.tolist(),
            "consensus_sq_norm_exact": None
            if r.consensus_sq_norm_exact is None
            else r.consensus_sq_norm_exact.tolist(),
            "kronecker_max_abs_diff": r.kronecker_max_abs_diff,
        }
    return doc


def write_outputs(result: TheoryResult, out_dir: str | Path) -> list[Path]:
    """Write ``theory.json`` and the PNG figures into ``out_dir`` (created); return the paths."""
    from .plots import plot_consensus_sq_norm, plot_ratio, plot_spectrum

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "theory.json"
    path.write_text(to_json(result_to_json(result), indent=1))  # strict: inf/NaN as null
    return [
        path,
        plot_spectrum(result, out),
        plot_consensus_sq_norm(result, out),
        plot_ratio(result, out),
    ]
