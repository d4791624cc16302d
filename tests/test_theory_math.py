"""Theory math: Kronecker form vs direct simulation, exact second moments vs Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from mosaic_fast.theory import (
    GossipSampler,
    TheoryConfig,
    commutation_matrix,
    consensus_operator,
    consensus_sq_norm,
    correlation_matrix,
    default_eta,
    direct_step,
    estimate_moments,
    exact_consensus_sq_norm,
    exact_second_moments,
    expected_operator_rho,
    fragment_assignment,
    gossip_moments,
    gradient_operator,
    kronecker_agreement,
    make_sampler,
    moments_formula,
    simulate_consensus,
    spectrum_over_draws,
)

SAMPLERS = ["numpy", "kernel"]
MODES = ["el-oracle", "undirected", "pull", "el-local"]


def _setup(sampler="numpy", gossip="directed", **kw):
    cfg = TheoryConfig(
        nodes=6,
        params=5,
        K=(1, 2, 5),
        correlation="toeplitz",
        rho=0.6,
        gossip=gossip,
        sampler=sampler,
        **kw,
    )
    a = correlation_matrix(cfg)
    return cfg, gradient_operator(a, default_eta(a))


def test_commutation_matrix_transposes_vec():
    a = np.arange(12.0).reshape(3, 4)
    vec = a.reshape(-1, order="F")
    np.testing.assert_array_equal(commutation_matrix(3, 4) @ vec, a.T.reshape(-1, order="F"))
    np.testing.assert_array_equal(commutation_matrix(4, 3), commutation_matrix(3, 4).T)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("gossip", ["directed", "undirected", "pull", "local"])
@pytest.mark.parametrize("fragments", ["contiguous", "random"])
def test_kronecker_form_matches_direct_simulation(sampler, gossip, fragments):
    cfg, b = _setup(sampler, gossip, fragments=fragments)
    for k in cfg.K:
        assert kronecker_agreement(cfg, k, b, rounds=4) < 1e-10


def test_literal_product_equals_structured_operator():
    cfg, b = _setup()
    w = make_sampler(cfg).mixing(2, seed=1, round=0)
    asg = fragment_assignment(cfg, 2)
    lit = consensus_operator(w, asg, b, literal=True)
    np.testing.assert_allclose(consensus_operator(w, asg, b), lit, atol=1e-14)
    # M kills consensus vectors: M (1 ⊗ v) = 0.
    assert np.abs(lit @ np.tile(np.arange(5.0), 6)).max() < 1e-12


def test_consensus_sq_norm_and_its_bounds_on_the_engine_consensus_distance():
    rng = np.random.default_rng(3)
    for n, d in ((2, 1), (7, 5), (50, 16)):
        x = rng.standard_normal((n, d)) * rng.uniform(0.1, 10.0, size=(n, 1)) + 4.0
        dist = np.linalg.norm(x - x.mean(axis=0), axis=1)
        sq_norm = consensus_sq_norm(x)
        assert sq_norm == pytest.approx(np.sum(dist**2), rel=1e-12)
        # docs/THEORY.md, "Two quantities": sqrt(2V)/n <= (1/n) sum_i ||x_i - xbar|| <= sqrt(V/n).
        engine_distance = dist.mean()
        assert np.sqrt(2 * sq_norm) / n <= engine_distance * (1 + 1e-12)
        assert engine_distance <= np.sqrt(sq_norm / n) * (1 + 1e-12)
    # Both bounds are attained: nodes equally far from the mean (right), two opposite nodes (left).
    v = np.array([1.0, -2.0, 0.5])
    centre = np.array([3.0, 1.0, -1.0])
    equal = centre + np.stack([v, -v, v[::-1], -v[::-1]])  # all four at distance ||v||
    assert np.linalg.norm(equal - equal.mean(0), axis=1).mean() == pytest.approx(
        np.sqrt(consensus_sq_norm(equal) / 4)
    )
    opposite = np.tile(centre, (6, 1))
    opposite[0] += v
    opposite[1] -= v
    assert np.linalg.norm(opposite - opposite.mean(0), axis=1).mean() == pytest.approx(
        np.sqrt(2 * consensus_sq_norm(opposite)) / 6
    )


def test_consensus_error_independent_of_x_star():
    cfg, b = _setup()
    w = make_sampler(cfg).mixing(5, seed=2, round=0)
    asg = fragment_assignment(cfg, 5)
    x = np.random.default_rng(0).standard_normal((6, 5))
    e1 = direct_step(x, w, asg, b)
    e2 = direct_step(x, w, asg, b, x_star=np.full(5, 3.0))
    np.testing.assert_allclose(e1 - e1.mean(0), e2 - e2.mean(0), atol=1e-12)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("mode", ["el-oracle", "undirected", "pull"])
def test_moment_formulas_match_monte_carlo(sampler, mode):
    n, s = (8, 3) if mode != "undirected" else (8, 2)
    smp = GossipSampler(n, s, mode, sampler)
    est = estimate_moments(smp, 1500)
    exact = moments_formula(mode, n, s)
    assert abs(est.alpha - exact.alpha) <= 5 * est.alpha_se + 1e-12
    assert abs(est.gamma_same - exact.gamma_same) <= 5 * est.gamma_se + 1e-12


def test_el_local_uses_alpha_formula_and_monte_carlo_gamma():
    smp = GossipSampler(8, 3, "el-local", "kernel")
    mom = gossip_moments(smp, 2000)
    est = estimate_moments(smp, 2000, seed=7)
    assert mom.source == "monte-carlo" and mom.draws == 2000
    assert abs(mom.alpha - est.alpha) <= 5 * est.alpha_se
    assert abs(mom.gamma_same - est.gamma_same) <= 5 * (est.gamma_se + mom.gamma_se)


@pytest.mark.parametrize("gossip", ["directed", "pull", "local"])
def test_exact_curve_matches_monte_carlo_mean(gossip):
    cfg, b = _setup("kernel", gossip, seeds=1500, iterations=5, fragments="random")
    smp = make_sampler(cfg)
    mom = gossip_moments(smp, 4000)
    for k in (1, 5):
        asg = fragment_assignment(cfg, k)
        sim = simulate_consensus(cfg, smp, asg, b)
        exact = exact_consensus_sq_norm(sim.s0, b, asg, mom, cfg.iterations)
        se = sim.consensus_sq_norms.std(0, ddof=1) / np.sqrt(cfg.seeds)
        assert exact[0] == pytest.approx(sim.consensus_sq_norms[:, 0].mean(), rel=1e-12)
        # 4.5 standard errors per point (plus the Monte Carlo error of gamma for el-local).
        tol = 4.5 * se[1:] + exact[1:] * 30 * mom.gamma_se / mom.gamma_same
        assert np.all(np.abs(sim.consensus_sq_norms[:, 1:].mean(0) - exact[1:]) <= tol)


def test_exact_recursion_detects_the_K_dependence():
    # With Toeplitz correlation the exact curves differ between K=1 and K=d by far more than noise.
    cfg, b = _setup("numpy")
    mom = moments_formula("el-oracle", 6, 2)
    s0 = 5.0 * np.eye(5)
    c1 = exact_consensus_sq_norm(s0, b, np.zeros(5, dtype=np.int64), mom, 10)
    c5 = exact_consensus_sq_norm(s0, b, np.arange(5), mom, 10)
    assert np.all(c5[2:] < 0.95 * c1[2:])
    # One round alone cannot tell K apart: E||e_1||^2 = gamma_same * tr(B S0 B) for every K.
    assert c1[1] == pytest.approx(c5[1]) == pytest.approx(mom.gamma_same * np.trace(b @ s0 @ b))
    s = exact_second_moments(s0, b, np.arange(5), mom, 3)
    assert all(np.linalg.eigvalsh(m)[0] > -1e-12 for m in s)


def test_mean_of_mtm_matches_expected_operator():
    cfg, b = _setup("kernel")
    mom = moments_formula("el-oracle", 6, 2)
    res = spectrum_over_draws(make_sampler(cfg), fragment_assignment(cfg, 5), b, 400, 0)
    # lambda_max of the average converges to gamma_same * lambda_max(B)^2, whatever K.
    assert res.mean_operator_rho == pytest.approx(expected_operator_rho(mom, b), rel=0.05)
    assert res.mean_operator_rho <= res.rho.mean() + 1e-12  # lambda_max is convex
    assert res.spectrum_mean.shape == (30,) and np.all(np.diff(res.spectrum_mean) <= 1e-12)
