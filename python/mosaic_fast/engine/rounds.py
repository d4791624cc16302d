"""Synchronous rounds: every node trains, then averages each fragment over its graph of the round.

All node models live in one (n, d) buffer. Gossip writes into a second buffer of the same shape;
the two are then swapped, so no round copies ``X`` (the trainers take views of whichever buffer
is live at each step).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import MosaicValueError
from ..network.clock import RoundClock
from ..settings import ExperimentConfig
from . import protocols
from .parts import BuildOptions, Parts, build_parts
from .placement import Placement
from .protocols import Protocol
from .state import NetworkState
from .trainer import synchronize

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11


class Simulation(NetworkState):
    """A run of a synchronous protocol (``mosaic``) in rounds; ``X`` (float32 (n, d),
    contiguous) holds the live models, ``rounds_done`` counts rounds.

    ``Simulation(cfg, device, ...)`` builds its parts (:func:`.build.build_parts` takes the same
    arguments); :meth:`from_parts` runs parts built before, on a placement.
    """

    synchronous = True

    def __init__(
        self, cfg: ExperimentConfig, device: torch.device, **options: Unpack[BuildOptions]
    ) -> None:
        protocol = _synchronous(cfg, type(self).__name__)
        parts = build_parts(cfg, device, **options)
        self._start(parts, protocol, None)

    @classmethod
    def from_parts(
        cls, parts: Parts, protocol: Protocol, placement: Placement | None = None
    ) -> Simulation:
        """The simulation of ``parts`` (built by :func:`.build.build_parts`)."""
        sim = cls.__new__(cls)
        sim._start(parts, protocol, placement)
        return sim

    def _start(self, parts: Parts, protocol: Protocol, placement: Placement | None) -> None:
        self._attach(parts, protocol, placement)
        assert self.cfg.local_steps is not None  # the engine reads resolved configs
        self.clock = RoundClock(
            parts.network, self.cfg.local_steps, bandwidth_sharing=self.cfg.bandwidth_sharing
        )
        self.placement.attach(self)

    def train_round(self, t: int) -> None:
        """Round ``t`` (0-based): H local steps on every node, then fragment-wise gossip."""
        from ..kernel import aggregate

        start = time.perf_counter()
        graphs = self.protocol.graphs(self.graph_source, t)
        total = self._local_steps(t, graphs)
        aggregate(self.X, graphs, self.fragments, out=self._spare)
        self.sim_time_s += self.clock.round_seconds(graphs, self.fragments)
        self.X, self._spare = self._spare, self.X
        self._loss_total = total  # on the device until someone reads last_loss
        self.last_sent = float(np.mean(graphs.sent_params(self.fragments)))
        self.rounds_done = t + 1
        synchronize(self.device)  # the round's one wait for the device: its wall time is measured
        self.train_seconds += time.perf_counter() - start

    def _local_steps(self, t: int, graphs: Any) -> torch.Tensor:
        """Round ``t``'s local steps of every node, where the placement runs them; returns each
        node's summed losses (n,)."""
        return self.placement.local_steps(self, t, graphs)


def _synchronous(cfg: ExperimentConfig, engine: str) -> Protocol:
    """``cfg.algorithm``'s protocol, refused when it does not run in rounds."""
    protocol = protocols.get(cfg.algorithm)
    if not protocol.synchronous:
        raise MosaicValueError(
            f"algorithm={cfg.algorithm!r} is not simulated by {engine}; "
            "build the run's simulation with make_simulation"
        )
    return protocol
