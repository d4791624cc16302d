"""Consensus analysis of Mosaic Learning on the quadratic model (Biswas et al. 2026, Sec. 4.2).

``run_theory(TheoryConfig(...))`` computes, for each fragment count K, the spectrum of
``M_t^T M_t`` over random gossip draws (Fig. 2), the simulated squared consensus norm
``||X_t - 1 xbar_t^T||_F^2`` (Fig. 3) and its exact expectation for node-exchangeable gossip;
``write_outputs`` saves ``theory.json`` and figures.
See docs/THEORY.md for the derivation and findings.
"""

from __future__ import annotations

from .config import CORRELATIONS, GOSSIP_MODES, TheoryConfig
from .correlation import (
    check_spd,
    correlation_matrix,
    default_eta,
    gradient_operator,
    load_matrix,
    toeplitz_correlation,
    uniform_correlation,
)
from .exact import (
    GossipMoments,
    estimate_moments,
    exact_consensus_sq_norm,
    exact_second_moments,
    expected_operator_rho,
    gossip_moments,
    moments_formula,
)
from .experiment import (
    kronecker_agreement,
    result_to_json,
    run_theory,
    write_outputs,
)
from .gossip import GossipSampler, fragment_assignment, make_sampler
from .kronecker import (
    block_gossip_matrix,
    commutation_matrix,
    consensus_operator,
    contraction_spectrum,
)
from .result import KResult, TheoryResult
from .simulate import SimulationResult, consensus_sq_norm, direct_step, simulate_consensus
from .spectrum import SpectrumResult, spectrum_over_draws

__all__ = [
    "CORRELATIONS",
    "GOSSIP_MODES",
    "GossipMoments",
    "GossipSampler",
    "KResult",
    "SimulationResult",
    "SpectrumResult",
    "TheoryConfig",
    "TheoryResult",
    "block_gossip_matrix",
    "check_spd",
    "commutation_matrix",
    "consensus_operator",
    "consensus_sq_norm",
    "contraction_spectrum",
    "correlation_matrix",
    "default_eta",
    "direct_step",
    "estimate_moments",
    "exact_consensus_sq_norm",
    "exact_second_moments",
    "expected_operator_rho",
    "fragment_assignment",
    "gossip_moments",
    "gradient_operator",
    "kronecker_agreement",
    "load_matrix",
    "make_sampler",
    "moments_formula",
    "result_to_json",
    "run_theory",
    "simulate_consensus",
    "spectrum_over_draws",
    "toeplitz_correlation",
    "uniform_correlation",
    "write_outputs",
]
