"""Configuration of the quadratic-model consensus analysis (paper Sec. 4.2): one frozen dataclass,
validated on construction so that every entry point (Python, CLI, tests) fails the same way."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MosaicValueError

CORRELATIONS = ("uniform", "toeplitz", "file")
FRAGMENTERS = ("contiguous", "random")
BACKENDS = ("numpy", "rust")
SAMPLERS = ("kernel", "numpy")

# Theory gossip name -> kernel sampler mode. All four laws are node-exchangeable (invariant under
# relabelling the nodes), which is what the exact second-moment recursion needs.
GOSSIP_MODES = {
    "undirected": "undirected",
    "directed": "el-oracle",
    "pull": "pull",
    "local": "el-local",
}


@dataclass(frozen=True)
class TheoryConfig:
    """Settings of one ``mosaic-fast theory`` analysis.

    ``K`` lists the fragment counts to compare; ``rho`` parameterises the built-in correlation
    matrices (``uniform``: ``(1-rho) I + rho 11^T``, ``toeplitz``: ``rho^|i-j|``); ``matrix`` is the
    path of a ``.npy``/``.csv`` matrix for ``correlation="file"``. ``eta=None`` means
    ``1 / (2 lambda_max(A))``. ``draws`` random gossip draws per K feed the spectrum (Fig. 2),
    ``seeds`` independent runs of ``iterations`` rounds feed the squared consensus norm curves (Fig. 3).
    ``backend`` picks the averaging for the simulation (float64 numpy or the float32 Rust kernel),
    ``sampler`` the graph sampler (the project's kernel or the pure-numpy reference).
    """

    nodes: int = 50
    params: int = 16
    K: tuple[int, ...] = (1, 2, 4, 8, 16)
    correlation: str = "uniform"
    rho: float = 0.5
    matrix: str | None = None
    eta: float | None = None
    gossip: str = "undirected"
    degree: int = 2
    fragments: str = "contiguous"
    iterations: int = 30
    draws: int = 20
    seeds: int = 20
    seed: int = 0
    backend: str = "numpy"
    sampler: str = "kernel"
    moment_draws: int = 4000

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", tuple(int(k) for k in self.K))
        _check_choice("correlation", self.correlation, CORRELATIONS)
        _check_choice("gossip", self.gossip, tuple(GOSSIP_MODES))
        _check_choice("fragments", self.fragments, FRAGMENTERS)
        _check_choice("backend", self.backend, BACKENDS)
        _check_choice("sampler", self.sampler, SAMPLERS)
        self._check_sizes()
        self._check_graph()
        self._check_correlation()
        self._check_runs()

    def _check_sizes(self) -> None:
        """Nodes, parameters and the fragment counts K (each in 1..params, no repeats)."""
        if self.nodes < 2:
            raise MosaicValueError(f"nodes={self.nodes} must be at least 2")
        if self.params < 1:
            raise MosaicValueError(f"params={self.params} must be at least 1")
        if not self.K:
            raise MosaicValueError("K is empty; give at least one fragment count")
        if len(set(self.K)) != len(self.K):
            raise MosaicValueError(f"K={list(self.K)} contains duplicates")
        for k in self.K:
            if k < 1:
                raise MosaicValueError(f"K={k} must be at least 1")
            if k > self.params:
                raise MosaicValueError(f"K={k} exceeds params={self.params}")

    def _check_graph(self) -> None:
        """A degree the gossip law can draw on ``nodes`` nodes."""
        if self.degree < 1:
            raise MosaicValueError(f"degree={self.degree} must be at least 1")
        if self.degree >= self.nodes:
            raise MosaicValueError(f"degree={self.degree} must be below nodes={self.nodes}")
        if self.gossip == "undirected" and (self.nodes * self.degree) % 2:
            raise MosaicValueError(
                f"undirected gossip needs nodes*degree even, got nodes={self.nodes} degree={self.degree}"
            )

    def _check_correlation(self) -> None:
        """A matrix file exactly for ``correlation='file'``; a ``rho`` giving a valid matrix."""
        if self.correlation == "file" and not self.matrix:
            raise MosaicValueError("correlation='file' needs a matrix path (--matrix FILE)")
        if self.correlation != "file" and self.matrix:
            raise MosaicValueError(
                f"matrix={self.matrix!r} given but correlation={self.correlation!r}"
            )
        if self.correlation == "uniform" and not -1.0 / (self.params - 1 or 1) < self.rho < 1.0:
            raise MosaicValueError(
                f"rho={self.rho} makes (1-rho) I + rho 11^T not positive definite for params={self.params}"
            )
        if self.correlation == "toeplitz" and not -1.0 < self.rho < 1.0:
            raise MosaicValueError(
                f"rho={self.rho} must lie in (-1, 1) for the Toeplitz correlation"
            )

    def _check_runs(self) -> None:
        """The step size, the counts of iterations, draws and seeds, and the backend's sampler."""
        if self.eta is not None and not self.eta > 0:
            raise MosaicValueError(f"eta={self.eta} must be positive")
        for name in ("iterations", "draws", "seeds"):
            if getattr(self, name) < 1:
                raise MosaicValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.backend == "rust" and self.sampler != "kernel":
            raise MosaicValueError(
                "backend='rust' needs sampler='kernel' (it averages with the kernel's graphs)"
            )
        if self.moment_draws < 2:
            raise MosaicValueError(f"moment_draws={self.moment_draws} must be at least 2")

    @property
    def kernel_mode(self) -> str:
        """The ``mosaic_fast.sample_graphs`` mode of this gossip law."""
        return GOSSIP_MODES[self.gossip]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise MosaicValueError(f"{name}={value!r} is not one of {', '.join(choices)}")
