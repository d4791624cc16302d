"""Per-node minibatch order: shuffled epochs over each node's own samples, one seeded RNG per node."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import state_dicts as checked
from ..errors import MosaicValueError

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

    def next(self, batch: int, nodes: np.ndarray | None = None) -> np.ndarray:
        """Global sample indices of the next minibatch of every node: int64 (n_nodes, batch).

        With ``nodes`` (integer array of distinct node ids, any order), of those nodes only:
        int64 (len(nodes), batch), row k for node ``nodes[k]``. Each node draws from its own
        stream, so its k-th minibatch is the same whichever nodes are drawn with it.
        """
        order = range(len(self.parts)) if nodes is None else self._checked_nodes(nodes)
        out = np.empty((len(order), batch), dtype=np.int64)
        for row, i in enumerate(order):
            self._draw(i, out[row])
        return out

    def next_steps(self, steps: int, batch: int) -> np.ndarray:
        """The next ``steps`` minibatches of every node at once: int64 (steps, n_nodes, batch),
        exactly what ``steps`` calls of :meth:`next` would return one after another (each node's
        stream is read in the same order), drawn with one pass over the nodes, so that a round
        moves its indices to the device in one copy."""
        flat = self.next(steps * batch)  # (n, steps * batch): node i's next samples in order
        return np.ascontiguousarray(flat.reshape(len(self.parts), steps, batch).transpose(1, 0, 2))

    def _draw(self, i: int, out: np.ndarray) -> None:
        """Node ``i``'s next ``len(out)`` sample indices into ``out``, across epochs if needed."""
        batch, perm = len(out), self.perms[i]
        filled, pos = 0, int(self.cursors[i])
        while filled < batch:
            if pos == len(perm):
                perm = self.perms[i] = self.rngs[i].permutation(self.parts[i])
                pos = 0
            take = min(batch - filled, len(perm) - pos)
            out[filled : filled + take] = perm[pos : pos + take]
            filled += take
            pos += take
        self.cursors[i] = pos

    def _checked_nodes(self, nodes: np.ndarray) -> list[int]:
        """``nodes`` as a list of ints, or a one-line MosaicValueError naming the bad value."""
        n = len(self.parts)
        array = np.asarray(nodes)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise MosaicValueError(
                f"nodes must be a 1-D integer array of node ids, got {array.dtype} "
                f"shape {array.shape}"
            )
        ids = [int(i) for i in array]
        outside = [i for i in ids if not 0 <= i < n]
        if outside:
            raise MosaicValueError(f"node id {outside[0]} is out of range for {n} nodes")
        seen: set[int] = set()
        for i in ids:
            if i in seen:
                raise MosaicValueError(f"node id {i} appears twice in nodes")
            seen.add(i)
        return ids

    def state_dict(self) -> dict[str, Any]:
        """Plain values and tensors only: PCG64 states (dicts of ints), int64 permutations, cursors."""
        return {
            "rng": [r.bit_generator.state for r in self.rngs],
            "perms": [torch.from_numpy(p.copy()) for p in self.perms],
            "cursors": [int(c) for c in self.cursors],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; checked first (MosaicValueError), nothing changes on error."""
        n = len(self.parts)
        state = checked.entries(state, "sampler", ["rng", "perms", "cursors"])
        rngs = [
            checked.generator(s, f"sampler.rng[{i}]")
            for i, s in enumerate(checked.sequence(state["rng"], "sampler.rng", n))
        ]
        perms = []
        for i, p in enumerate(checked.sequence(state["perms"], "sampler.perms", n)):
            where, part = f"sampler.perms[{i}]", self.parts[i]
            perm = checked.tensor(p, where, torch.int64, (len(part),)).numpy().copy()
            if not np.array_equal(np.sort(perm), np.sort(part)):
                raise checked.bad(where, f"is not a permutation of node {i}'s samples")
            perms.append(perm)
        cursors = [
            checked.integer(c, f"sampler.cursors[{i}]", 0, len(self.parts[i]))
            for i, c in enumerate(checked.sequence(state["cursors"], "sampler.cursors", n))
        ]
        self.rngs, self.perms = rngs, perms
        self.cursors = np.array(cursors, dtype=np.int64)
