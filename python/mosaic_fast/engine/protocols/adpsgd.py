"""AD-PSGD: the whole model to a few peers, each of which answers with its own."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Protocol


class ADPSGD(Protocol):
    """``ADPSGD.py``: pings max(1, degree // 2) peers drawn with replacement (the code sends
    degree // 2, none at degree 1, which would be no communication at all: at least one here);
    each answers at once with its latest post-training, pre-averaging model. Their replies make
    up the rest of its degree models. v1 rules: distinct peers, answered with the averaged
    model."""

    name = "adpsgd"
    whole_model = True
    replies = True

    def peers_per_send(self, cfg: Any) -> int:
        degree: int = cfg.degree
        return max(1, degree // 2)

    def destinations(
        self, rng: np.random.Generator, i: int, n: int, K: int, J: int, v1: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        if v1:
            return super().destinations(rng, i, n, K, J, v1)
        dst = rng.integers(0, n - 1, J)
        return dst + (dst >= i), np.zeros(J, dtype=np.int64)
