"""Confidence intervals over seeds (Student t), without a SciPy runtime dependency.

The t quantile is computed by inverting the t CDF, which is written with the regularised
incomplete beta function (continued fraction, modified Lentz). Tests compare it with SciPy.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from ..errors import MosaicValueError

_EPS = 1e-15
_TINY = 1e-300


def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (converges fast for x < (a + 1) / (a + b + 2))."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    # Iterations grow like sqrt(max(a, b)); 10^5 covers any realistic number of seeds.
    for m in range(1, 100_000):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + num / c
            c = c if abs(c) > _TINY else _TINY
            delta = c * d
            h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise MosaicValueError(
        f"incomplete beta did not converge for a={a}, b={b}, x={x}"
    )  # pragma: no cover


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise MosaicValueError(f"betainc needs a > 0 and b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise MosaicValueError(f"betainc needs 0 <= x <= 1, got x={x}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """Upper tail P(T > t) of Student's t with ``df`` degrees of freedom."""
    if not df > 0:
        raise MosaicValueError(f"degrees of freedom df={df} must be positive")
    half_tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return half_tail if t >= 0 else 1.0 - half_tail


@lru_cache(maxsize=256)
def t_quantile(p: float, df: float) -> float:
    """Quantile (inverse CDF) of Student's t: the ``t`` with P(T <= t) = p, for 0 < p < 1."""
    if not 0.0 < p < 1.0:
        raise MosaicValueError(f"quantile level p={p} must be in (0, 1)")
    if not df > 0:
        raise MosaicValueError(f"degrees of freedom df={df} must be positive")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if df == 1:  # Cauchy: closed form, and its tail is too heavy for a quick bracket
        return math.tan(math.pi * (p - 0.5))
    tail = 1.0 - p
    lo, hi = 0.0, 1.0
    while t_sf(hi, df) > tail:
        lo, hi = hi, hi * 2.0
    # Bisection: t_sf is monotone, and 200 halvings reach the float64 resolution of any bracket.
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if t_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def mean_ci(
    values: ArrayLike, *, confidence: float = 0.95, axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t confidence half-width along ``axis``, ignoring NaN entries.

    Args:
        values: float array of any shape (e.g. ``(n_seeds,)`` or ``(n_seeds, n_rounds)``);
            NaN marks a missing observation (a seed that did not reach that round).
        confidence: two-sided confidence level in (0, 1).
        axis: axis holding the repetitions (seeds).

    Returns:
        ``(mean, half_width, count)``, each float64 (count int64) with ``axis`` removed.
        ``half_width = t_{(1+confidence)/2, n-1} * s / sqrt(n)`` with ``s`` the sample std
        (ddof=1); it is NaN where fewer than two observations exist, and mean is NaN where none do.
    """
    if not 0.0 < confidence < 1.0:
        raise MosaicValueError(f"confidence={confidence} must be in (0, 1)")
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    count = finite.sum(axis=axis)
    filled = np.where(finite, arr, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=axis) / count
        centred = np.where(finite, arr - np.expand_dims(mean, axis), 0.0)
        var = (centred**2).sum(axis=axis) / (count - 1)
    level = 0.5 * (1.0 + confidence)
    tq = np.vectorize(
        lambda n: t_quantile(level, float(n - 1)) if n >= 2 else np.nan, otypes=[np.float64]
    )(count)
    with np.errstate(invalid="ignore"):
        half = tq * np.sqrt(np.where(count >= 2, var, np.nan) / np.maximum(count, 1))
    return mean, half, count.astype(np.int64)


__all__ = ["betainc", "mean_ci", "t_quantile", "t_sf"]
