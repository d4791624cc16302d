"""The experiment engine: batched local training, gossip through the Rust kernel, metrics, checkpoints.

``run_experiment(config, out_dir)`` is the entry point; :class:`Simulation` is the in-memory network.
"""

from __future__ import annotations

from .build import make_simulation
from .experiment import resume_experiment, run_experiment, summarize
from .simulation import Simulation, resolve_device
from .trainer import STRATEGIES, SGDConfig, Trainer, make_trainer

__all__ = [
    "STRATEGIES",
    "SGDConfig",
    "Simulation",
    "Trainer",
    "make_simulation",
    "make_trainer",
    "resolve_device",
    "resume_experiment",
    "run_experiment",
    "summarize",
]
