"""The composition root: a run's settings and user code made into the parts that run it."""

from __future__ import annotations

from typing import Any

import torch

from ..settings import ExperimentConfig
from .simulation import Simulation


def make_simulation(
    cfg: ExperimentConfig, device: torch.device, *, ranks: Any = None, **kwargs: Any
) -> Simulation:
    """The simulation of ``cfg.algorithm``: synchronous rounds (:class:`Simulation`, or with
    ``ranks`` its blocks on torch.distributed ranks) or nodes on their own clocks
    (:class:`~mosaic_fast.engine.async_sim.AsyncSimulation`); ``kwargs`` as :class:`Simulation`
    takes them."""
    if ranks is not None:
        from .distributed import DistributedSimulation

        return DistributedSimulation(cfg, device, ranks, **kwargs)
    if cfg.algorithm in Simulation.ALGORITHMS:
        return Simulation(cfg, device, **kwargs)
    from .async_sim import AsyncSimulation

    return AsyncSimulation(cfg, device, **kwargs)
