"""Per-fragment gossip draws for the theory: mixing matrices from the project's kernel samplers
(``mosaic_fast.sample_graphs``) or from the numpy reference, and the fragment map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .config import TheoryConfig
from .reference_graphs import reference_mixing

if TYPE_CHECKING:
    from .._core import FragmentMap, Graphs

# Spectrum draws use seeds disjoint from the simulation seeds (config.seed + 0..seeds-1).
SPECTRUM_SEED_OFFSET = 1_000_003


@dataclass(frozen=True)
class GossipSampler:
    """Draws ``K`` independent mixing matrices per ``(seed, round)``.

    ``mode`` is a kernel sampler mode (``el-oracle``, ``undirected``, ``pull``, ``el-local``);
    ``sampler`` is ``"kernel"`` (Rust, keyed by ``(seed, round, fragment)``) or ``"numpy"``
    (reference, a numpy Generator seeded by ``(seed, round)``).
    """

    n_nodes: int
    degree: int
    mode: str
    sampler: str = "kernel"

    def mixing(self, n_fragments: int, *, seed: int, round: int) -> np.ndarray:
        """float64, shape (n_fragments, n_nodes, n_nodes): row-stochastic ``W^(k)`` per fragment."""
        if self.sampler == "kernel":
            graphs = self.graphs(n_fragments, seed=seed, round=round)
            return np.stack(
                [np.asarray(graphs.mixing_matrix(k), dtype=np.float64) for k in range(n_fragments)]
            )
        rng = np.random.default_rng([seed, round])
        return np.stack(
            [
                reference_mixing(self.mode, self.n_nodes, self.degree, rng)
                for _ in range(n_fragments)
            ]
        )

    def graphs(self, n_fragments: int, *, seed: int, round: int) -> Graphs:
        """The kernel's ``Graphs`` object for this draw (kernel sampler only)."""
        from ..kernel import sample_graphs

        return sample_graphs(
            self.n_nodes, n_fragments, self.degree, seed=seed, round=round, mode=self.mode
        )


def make_sampler(config: TheoryConfig) -> GossipSampler:
    """The sampler a config asks for."""
    return GossipSampler(config.nodes, config.degree, config.kernel_mode, config.sampler)


def fragment_assignment(config: TheoryConfig, n_fragments: int) -> np.ndarray:
    """Fragment of every coordinate: int64, shape (params,), values in ``0..n_fragments-1``, every
    fragment non-empty. Uses ``mosaic_fast.FragmentMap`` with the kernel sampler and an equivalent
    numpy rule (the kernel's consecutive ranges / a seeded shuffle of them) with the reference sampler."""
    d = config.params
    if config.sampler == "kernel":
        return np.asarray(kernel_fragment_map(config, n_fragments).assignment(), dtype=np.int64)
    # Same boundaries as FragmentMap.contiguous: fragment k = [floor(k d / K), floor((k+1) d / K)).
    assign = np.arange(d) * n_fragments // d
    if config.fragments == "random":
        assign = np.random.default_rng([config.seed, n_fragments]).permutation(assign)
    return assign.astype(np.int64)


def kernel_fragment_map(config: TheoryConfig, n_fragments: int) -> FragmentMap:
    """The kernel's ``FragmentMap`` for ``config.fragments`` (fixed for the whole analysis)."""
    from ..kernel import FragmentMap

    if config.fragments == "contiguous":
        return FragmentMap.contiguous(config.params, n_fragments)
    return FragmentMap.random(config.params, n_fragments, seed=config.seed)
