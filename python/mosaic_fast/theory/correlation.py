"""The parameter-correlation matrix ``A`` of the quadratic loss ``f(x) = ||x - x*||_A^2``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MosaicValueError
from .config import TheoryConfig


def uniform_correlation(d: int, rho: float) -> np.ndarray:
    """``(1 - rho) I + rho 11^T``: float64, shape (d, d)."""
    return (1.0 - rho) * np.eye(d) + rho * np.ones((d, d))


def toeplitz_correlation(d: int, rho: float) -> np.ndarray:
    """``A[i, j] = rho^|i - j|`` (AR(1) correlation): float64, shape (d, d)."""
    idx = np.arange(d)
    out: np.ndarray = np.asarray(rho, dtype=np.float64) ** np.abs(idx[:, None] - idx[None, :])
    return out


def load_matrix(path: str | Path) -> np.ndarray:
    """Read a square matrix from ``.npy`` or ``.csv`` (comma separated) as float64."""
    path = Path(path)
    if not path.is_file():
        raise MosaicValueError(f"matrix file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            mat = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            mat = np.loadtxt(path, delimiter=",", ndmin=2)
        else:
            raise MosaicValueError(f"matrix file {str(path)!r} must end in .npy or .csv")
    except (OSError, ValueError) as exc:
        if isinstance(exc, MosaicValueError):
            raise
        raise MosaicValueError(f"cannot read matrix file {str(path)!r}: {exc}") from None
    return np.asarray(mat, dtype=np.float64)


def check_spd(a: np.ndarray, *, name: str = "A") -> np.ndarray:
    """Return ``a`` (float64, shape (d, d)) after checking it is finite, symmetric and positive
    definite; raise :class:`MosaicValueError` naming the failing property otherwise."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise MosaicValueError(f"{name} must be square, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MosaicValueError(f"{name} has non-finite entries")
    asym = float(np.max(np.abs(a - a.T))) if a.size else 0.0
    if asym > 1e-10 * max(1.0, float(np.max(np.abs(a)))):
        raise MosaicValueError(f"{name} is not symmetric (max |A - A^T| = {asym:.3g})")
    lam_min = float(np.linalg.eigvalsh(a)[0])
    if lam_min <= 0.0:
        raise MosaicValueError(
            f"{name} is not positive definite (smallest eigenvalue {lam_min:.3g})"
        )
    symmetric: np.ndarray = (a + a.T) / 2.0
    return symmetric


def correlation_matrix(config: TheoryConfig) -> np.ndarray:
    """The matrix ``A`` a config asks for, checked SPD: float64, shape (params, params)."""
    if config.correlation == "uniform":
        a = uniform_correlation(config.params, config.rho)
    elif config.correlation == "toeplitz":
        a = toeplitz_correlation(config.params, config.rho)
    else:
        assert config.matrix is not None  # TheoryConfig requires a matrix for correlation="file"
        a = load_matrix(config.matrix)
        if a.shape != (config.params, config.params):
            raise MosaicValueError(
                f"matrix {config.matrix!r} has shape {a.shape}, expected ({config.params}, {config.params})"
            )
    return check_spd(a)


def default_eta(a: np.ndarray) -> float:
    """``1 / (2 lambda_max(A))``: the largest step for which ``I - 2 eta A`` has no negative eigenvalue."""
    return 1.0 / (2.0 * float(np.linalg.eigvalsh(a)[-1]))


def gradient_operator(a: np.ndarray, eta: float) -> np.ndarray:
    """``B = I - 2 eta A``: the gradient step ``X <- X - 2 eta (X - X*) A`` is ``X <- X B + const``.
    float64, shape (d, d), symmetric."""
    return np.eye(a.shape[0]) - 2.0 * eta * a
