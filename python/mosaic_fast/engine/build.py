"""The composition root: a run's settings and user code made into the simulation that runs it.

:func:`make_simulation` asks the protocol registry for ``cfg.algorithm``'s protocol, builds the
parts (:func:`.parts.build_parts`: data, model and trainer, fragments, graphs, buffers, network),
chooses where the nodes' steps run (one process, or blocks on ranks: :mod:`.placement`) and
hands them to the engine the protocol runs on: synchronous rounds (:mod:`.rounds`) or the event
loop (:mod:`.events`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..settings import ExperimentConfig
from . import protocols
from .distributed import Ranks
from .events import AsyncSimulation
from .parts import BuildOptions, Parts, UserCode, build_parts, network_from_config
from .placement import RankBlocks
from .rounds import Simulation
from .state import NetworkState

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11

__all__ = ["Parts", "UserCode", "build_parts", "make_simulation", "network_from_config"]


def make_simulation(
    cfg: ExperimentConfig,
    device: torch.device,
    *,
    ranks: Ranks | None = None,
    one_at_a_time: bool = False,
    **options: Unpack[BuildOptions],
) -> NetworkState:
    """The simulation of ``cfg.algorithm``: synchronous rounds (:class:`Simulation`, with
    ``ranks`` its blocks on torch.distributed ranks) or nodes on their own clocks
    (:class:`AsyncSimulation`; ``one_at_a_time``: its reference that trains every iteration
    alone); ``options`` as :func:`build_parts` takes them (:class:`~.parts.BuildOptions`)."""
    protocol = protocols.get(cfg.algorithm)
    parts = build_parts(cfg, device, **options)
    placement = RankBlocks(ranks) if ranks is not None else None
    if protocol.synchronous:
        return Simulation.from_parts(parts, protocol, placement)
    return AsyncSimulation.from_parts(parts, protocol, placement, one_at_a_time=one_at_a_time)
