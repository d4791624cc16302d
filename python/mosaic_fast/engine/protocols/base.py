"""What a protocol decides: the interface every algorithm implements.

A protocol is the algorithm-specific part of a run, nothing else: whether it runs in synchronous
rounds or on the nodes' own clocks, and (on their own clocks) to how many peers a node sends,
which peers and fragments, whether messages of the previous iteration are dropped and whether a
receiver replies. The engines (:mod:`..rounds`, :mod:`..events`) ask it; they never test its name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


class Protocol:
    """One algorithm. Its traits are class attributes; its decisions are methods."""

    name: ClassVar[str]
    # Rounds (every node trains, then gossips over each fragment's graph) or events (nodes on
    # their own clocks, messages through the network scheduler).
    synchronous: ClassVar[bool] = False
    # Sends whole models (the run needs K=1) rather than fragments.
    whole_model: ClassVar[bool] = False
    # Draws its peers itself, uniformly (the run's topology must be el-oracle).
    peer_sampling: ClassVar[bool] = True
    # A receiver answers each message at once with its own latest model.
    replies: ClassVar[bool] = False

    def graphs(self, graph_source: Any, t: int) -> Any:
        """Synchronous: round ``t``'s graph of every fragment (the topology's by default)."""
        return graph_source.graphs(t)

    def peers_per_send(self, cfg: Any) -> int:
        """Event-driven: peers a node sends each fragment to at an iteration end."""
        degree: int = cfg.degree
        return degree

    def drops(self, cfg: Any) -> bool:
        """Event-driven: whether an iteration end drops the node's messages not sent yet."""
        return False

    def destinations(
        self, rng: np.random.Generator, i: int, n: int, K: int, J: int, v1: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """Event-driven: node ``i``'s messages of one iteration end, (receivers, fragments) in
        sending order, drawn from the node's own stream ``rng``: for every fragment ``J`` distinct
        peers, fresh per fragment, the ``J x K`` messages in a random order."""
        keys = rng.random((K, n - 1))
        peers = np.argpartition(keys, J - 1, axis=1)[:, :J]
        peers = peers + (peers >= i)  # indices over the others -> node ids
        fragments = np.repeat(np.arange(K), J)
        order = rng.permutation(K * J)
        return peers.reshape(-1)[order], fragments[order]
