"""Figures in the style of the paper's Fig. 2 (spectrum of M^T M vs K) and Fig. 3 (squared consensus
norm)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .result import TheoryResult


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _title(result: TheoryResult) -> str:
    c = result.config
    corr = c.correlation if c.correlation == "file" else f"{c.correlation} rho={c.rho:g}"
    return f"n={c.nodes}, d={c.params}, {corr}, {c.gossip} degree {c.degree}"


def plot_spectrum(result: TheoryResult, out: Path) -> Path:
    """``fig2_spectrum.png``: mean descending spectrum per K, and rho (mean ± std over draws) vs K."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for r in result.per_k:
        left.plot(np.arange(1, r.spectrum_mean.size + 1), r.spectrum_mean, label=f"K={r.K}")
    left.set(
        xscale="log", xlabel="eigenvalue rank", ylabel="eigenvalue of $M^T M$ (mean over draws)"
    )
    left.legend()
    ks = np.array([r.K for r in result.per_k])
    right.errorbar(
        ks,
        [r.rho.mean() for r in result.per_k],
        yerr=[r.rho.std() for r in result.per_k],
        marker="o",
        capsize=3,
        label=r"$\rho(M_t^T M_t)$ per draw",
    )
    right.plot(
        ks,
        [r.mean_operator_rho for r in result.per_k],
        "s--",
        label=r"$\lambda_{max}$(mean of $M_t^T M_t$)",
    )
    if result.expected_operator_rho is not None:
        right.axhline(
            result.expected_operator_rho,
            color="gray",
            lw=0.8,
            label=r"exact $\lambda_{max}(E[M^T M])$",
        )
    right.set(xscale="log", xlabel="K (fragments)", ylabel="largest eigenvalue")
    right.set_xticks(ks, [str(k) for k in ks])
    right.legend()
    fig.suptitle(_title(result))
    return _save(fig, out / "fig2_spectrum.png")


def plot_consensus_sq_norm(result: TheoryResult, out: Path) -> Path:
    """``fig3_consensus_sq_norm.png``: squared consensus norm vs iteration per K (simulation mean ±
    standard error band, exact expectation dashed), log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    seeds = result.config.seeds
    t = np.arange(result.config.iterations + 1)
    for r in result.per_k:
        (line,) = ax.plot(t, r.consensus_sq_norm_mean, label=f"K={r.K}")
        se = r.consensus_sq_norm_std / np.sqrt(seeds)
        ax.fill_between(
            t,
            np.maximum(r.consensus_sq_norm_mean - se, r.consensus_sq_norm_mean * 1e-3),
            r.consensus_sq_norm_mean + se,
            color=line.get_color(),
            alpha=0.2,
            lw=0,
        )
        if r.consensus_sq_norm_exact is not None:
            ax.plot(t, r.consensus_sq_norm_exact, "--", color=line.get_color(), lw=1)
    ax.set(
        yscale="log",
        xlabel="iteration t",
        ylabel="squared consensus norm\n" + r"$\|X_t - \mathbf{1}\bar{x}_t^T\|_F^2$",
    )
    ax.legend()
    ax.set_title(_title(result) + "  (solid: simulation, dashed: exact)", fontsize=9)
    return _save(fig, out / "fig3_consensus_sq_norm.png")


def plot_ratio(result: TheoryResult, out: Path) -> Path:
    """``ratio_to_k1.png``: squared consensus norm of each K divided by that of the smallest K."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    base = min(result.per_k, key=lambda r: r.K)
    t = np.arange(result.config.iterations + 1)
    for r in result.per_k:
        (line,) = ax.plot(
            t, r.consensus_sq_norm_mean / base.consensus_sq_norm_mean, label=f"K={r.K}"
        )
        if r.consensus_sq_norm_exact is not None and base.consensus_sq_norm_exact is not None:
            ax.plot(
                t,
                r.consensus_sq_norm_exact / base.consensus_sq_norm_exact,
                "--",
                color=line.get_color(),
                lw=1,
            )
    ax.set(yscale="log", xlabel="iteration t", ylabel=f"squared consensus norm / (K={base.K})")
    ax.legend()
    ax.set_title(_title(result) + "  (dashed: exact)", fontsize=9)
    return _save(fig, out / "ratio_to_k1.png")


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path
