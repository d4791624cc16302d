"""Per-node minibatch order: shuffled epochs over each node's own samples, one seeded RNG per node."""

from __future__ import annotations

from typing import Any

import numpy as np

_STREAM = 0x5A3B  # separates the data-order streams from other uses of the experiment seed


class NodeSampler:
    """Draws ``(n_nodes, batch)`` global sample indices, without replacement within each node's epoch.

    ``parts[i]`` (int64 array, non-empty) holds node i's sample indices. A batch that crosses an
    epoch boundary continues in a fresh permutation, so every batch has exactly ``batch`` samples
    (a node with fewer samples than ``batch`` sees some twice).
    """

    def __init__(self, parts: list[np.ndarray], seed: int) -> None:
        self.parts = [np.asarray(p, dtype=np.int64) for p in parts]
        self.rngs = [np.random.default_rng([seed, _STREAM, i]) for i in range(len(parts))]
        self.perms = [rng.permutation(p) for rng, p in zip(self.rngs, self.parts, strict=True)]
        self.cursors = np.zeros(len(parts), dtype=np.int64)

    def next(self, batch: int) -> np.ndarray:
        """Global sample indices of every node's next minibatch: int64 (n_nodes, batch)."""
        out = np.empty((len(self.parts), batch), dtype=np.int64)
        for i, perm in enumerate(self.perms):
            filled, pos = 0, int(self.cursors[i])
            while filled < batch:
                if pos == len(perm):
                    perm = self.perms[i] = self.rngs[i].permutation(self.parts[i])
                    pos = 0
                take = min(batch - filled, len(perm) - pos)
                out[i, filled : filled + take] = perm[pos : pos + take]
                filled += take
                pos += take
            self.cursors[i] = pos
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": [r.bit_generator.state for r in self.rngs],
            "perms": [p.copy() for p in self.perms],
            "cursors": self.cursors.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for rng, s in zip(self.rngs, state["rng"], strict=True):
            rng.bit_generator.state = s
        self.perms = [np.asarray(p, dtype=np.int64) for p in state["perms"]]
        self.cursors = np.asarray(state["cursors"], dtype=np.int64).copy()
