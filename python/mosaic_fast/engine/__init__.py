"""The experiment engine: batched local training, gossip through the Rust kernel, metrics, checkpoints.

``run_experiment(config, out_dir)`` is the entry point; :func:`make_simulation` builds the
in-memory network of a run (:class:`Simulation`: synchronous rounds; ``events.AsyncSimulation``:
nodes on their own clocks); ``protocols`` holds the algorithms.
"""

from __future__ import annotations

from .build import make_simulation
from .experiment import resume_experiment, run_experiment, summarize
from .inputs import resolve_device
from .rounds import Simulation
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
