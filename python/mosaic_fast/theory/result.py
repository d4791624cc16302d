"""What one analysis returns: per-K results and the shared setting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import TheoryConfig
from .exact import GossipMoments


@dataclass(frozen=True)
class KResult:
    """Results for one fragment count. The ``consensus_sq_norm_*`` curves (squared consensus norm
    ``||X_t - 1 xbar_t^T||_F^2``: simulation mean and std over runs, exact expectation) are float64
    arrays of length ``iterations + 1``."""

    K: int
    rho: np.ndarray
    spectrum_mean: np.ndarray
    mean_operator_rho: float
    consensus_sq_norm_mean: np.ndarray
    consensus_sq_norm_std: np.ndarray
    consensus_sq_norm_exact: np.ndarray | None
    kronecker_max_abs_diff: float | None


@dataclass(frozen=True)
class TheoryResult:
    """Everything ``mosaic-fast theory`` reports: per-K results plus the shared setting."""

    config: TheoryConfig
    eta: float
    a_eigenvalues: np.ndarray
    moments: GossipMoments | None
    expected_operator_rho: float | None
    per_k: tuple[KResult, ...]
