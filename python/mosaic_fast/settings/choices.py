"""The built-in values of the settings that take a name: datasets, models, algorithms, ...."""

from __future__ import annotations

from ..data.specs import DATASETS
from ..kernel import GRAPH_MODES
from .algorithms import ALGORITHMS

__all__ = [
    "ALGORITHMS",
    "ASYNC_SEMANTICS",
    "DATASETS",
    "DEVICES",
    "FRAGMENTERS",
    "INITS",
    "MODELS",
    "OPTIMIZERS",
    "PARTITIONS",
    "TOPOLOGIES",
    "TRACKERS",
    "TRAINERS",
]

MODELS = ("gn-lenet", "lstm", "mf")
OPTIMIZERS = ("sgd", "adam", "adamw")
PARTITIONS = ("iid", "dirichlet", "shards", "natural")
FRAGMENTERS = ("contiguous", "random", "blocks")
INITS = ("shared", "per-node")
# Every kernel graph mode except a user edge list, which has no config field.
TOPOLOGIES = tuple(mode for mode in GRAPH_MODES if mode != "edges")
DEVICES = ("cpu", "cuda", "auto")
# Experiment trackers (mosaic_fast.tracking), each behind an optional extra of the same name.
TRACKERS = ("tensorboard", "mlflow", "wandb")
# ``auto`` lets the task pick its fastest strategy (engine.trainer.STRATEGIES holds the others).
TRAINERS = ("auto", "loop", "vmap", "batched", "sparse")
# The asynchronous engine's rules: DivShare's code, or those of runs before (engine.events).
ASYNC_SEMANTICS = ("divshare-code", "v1")
