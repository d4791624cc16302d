"""Where :class:`Simulation` and the run's inputs were defined before the engine was split up;
their homes are :mod:`.rounds`, :mod:`.parts` and :mod:`.inputs`."""

from __future__ import annotations

from .inputs import UserCode, configure_determinism, load_data, resolve_device
from .model import per_node_seed
from .rounds import Simulation

__all__ = [
    "Simulation",
    "UserCode",
    "configure_determinism",
    "load_data",
    "per_node_seed",
    "resolve_device",
]
