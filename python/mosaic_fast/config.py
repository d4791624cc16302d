"""Experiment configuration: one frozen dataclass, validated once, shared by the CLI, sweeps and the engine."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import MosaicValueError
from .kernel import GRAPH_MODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATASETS = ("fashion-mnist", "movielens", "cifar10", "cifar100", "shakespeare")
PARTITIONS = ("iid", "dirichlet", "shards", "natural")
FRAGMENTERS = ("contiguous", "random", "blocks")
# Every kernel graph mode except a user edge list, which has no config field.
TOPOLOGIES = tuple(mode for mode in GRAPH_MODES if mode != "edges")
DEVICES = ("cpu", "cuda", "auto")
# Settings that do not change what a run computes: runs differing only in these (and the seed)
# are repetitions of one setting.
NON_RESULT_SETTINGS = ("data_dir", "device", "checkpoint_every")
# Settings that may differ between an interrupted run and its resumption.
RESUMABLE_SETTINGS = ("rounds", "checkpoint_every", "device", "data_dir")

# Paper-like defaults per dataset, used when the user leaves an option unset (None).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "fashion-mnist": {
        "lr": 0.05,
        "batch_size": 32,
        "local_steps": 5,
        "partition": "dirichlet",
        "alpha": 0.1,
    },
    "cifar10": {
        "lr": 0.05,
        "batch_size": 32,
        "local_steps": 5,
        "partition": "dirichlet",
        "alpha": 0.1,
    },
    "cifar100": {
        "lr": 0.05,
        "batch_size": 32,
        "local_steps": 5,
        "partition": "dirichlet",
        "alpha": 0.1,
    },
    "shakespeare": {
        "lr": 0.5,
        "batch_size": 16,
        "local_steps": 5,
        "partition": "natural",
        "alpha": None,
    },
    "movielens": {
        "lr": 0.5,
        "batch_size": 64,
        "local_steps": 10,
        "partition": "natural",
        "alpha": None,
    },
}


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one Mosaic Learning run. Field names match the CLI options (``--local-steps`` -> ``local_steps``)."""

    dataset: str = "fashion-mnist"
    K: int = 8
    nodes: int = 16
    degree: int = 8
    rounds: int = 100
    local_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    momentum: float = 0.0
    weight_decay: float = 0.0
    partition: str | None = None
    alpha: float | None = None
    shards_per_node: int = 2
    fragmenter: str = "contiguous"
    block_size: int = 1024
    topology: str = "el-oracle"
    seed: int = 0
    eval_every: int = 10
    test_samples: int | None = 2000
    data_dir: str | None = None
    device: str = "cpu"
    checkpoint_every: int = 0
    embedding_dim: int = 20
    mf_biases: bool = False
    trainer: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved(self) -> ExperimentConfig:
        """Fill dataset-specific defaults for options left as None and validate everything."""
        defaults = DATASET_DEFAULTS.get(self.dataset)
        if defaults is None:
            raise MosaicValueError(
                f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}"
            )
        updates = {k: v for k, v in defaults.items() if k != "alpha" and getattr(self, k) is None}
        # alpha only means something for the Dirichlet partitioner
        if updates.get("partition", self.partition) == "dirichlet" and self.alpha is None:
            updates["alpha"] = defaults["alpha"] if defaults["alpha"] is not None else 0.1
        cfg = dataclasses.replace(self, **updates)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise MosaicValueError(msg)

        if self.dataset not in DATASETS:
            bad(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if self.nodes < 2:
            bad(f"nodes={self.nodes} must be at least 2")
        if self.K < 1:
            bad(f"K={self.K} must be at least 1")
        if self.topology not in TOPOLOGIES:
            bad(f"unknown topology {self.topology!r}; choose one of {', '.join(TOPOLOGIES)}")
        if self.topology not in ("ring", "complete") and not 1 <= self.degree < self.nodes:
            bad(f"degree={self.degree} must satisfy 1 <= degree < nodes={self.nodes}")
        if self.rounds < 1:
            bad(f"rounds={self.rounds} must be at least 1")
        if self.local_steps is not None and self.local_steps < 1:
            bad(f"local_steps={self.local_steps} must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            bad(f"batch_size={self.batch_size} must be at least 1")
        if self.lr is not None and not self.lr > 0:
            bad(f"lr={self.lr} must be positive")
        if not 0 <= self.momentum < 1:
            bad(f"momentum={self.momentum} must be in [0, 1)")
        if self.weight_decay < 0:
            bad(f"weight_decay={self.weight_decay} must be non-negative")
        if self.partition is not None and self.partition not in PARTITIONS:
            bad(f"unknown partition {self.partition!r}; choose one of {', '.join(PARTITIONS)}")
        if self.alpha is not None and not self.alpha > 0:
            bad(f"alpha={self.alpha} must be positive")
        if self.shards_per_node < 1:
            bad(f"shards_per_node={self.shards_per_node} must be at least 1")
        if self.fragmenter not in FRAGMENTERS:
            bad(f"unknown fragmenter {self.fragmenter!r}; choose one of {', '.join(FRAGMENTERS)}")
        if self.block_size < 1:
            bad(f"block_size={self.block_size} must be at least 1")
        if self.seed < 0:
            bad(f"seed={self.seed} must be non-negative")
        if self.eval_every < 1:
            bad(f"eval_every={self.eval_every} must be at least 1")
        if self.test_samples is not None and self.test_samples < 1:
            bad(
                f"test_samples={self.test_samples} must be at least 1 (or None for the whole test set)"
            )
        if self.device not in DEVICES:
            bad(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.checkpoint_every < 0:
            bad(f"checkpoint_every={self.checkpoint_every} must be non-negative")
        if self.embedding_dim < 1:
            bad(f"embedding_dim={self.embedding_dim} must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise MosaicValueError(f"unknown configuration key(s): {', '.join(unknown)}")
        return cls(**values)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; keys may use dashes or underscores (``local-steps`` or ``local_steps``)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise MosaicValueError(f"config file {str(p)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise MosaicValueError(f"config file {str(p)!r} is not valid TOML: {exc}") from None
    section = raw.get("run", raw)
    return {k.replace("-", "_"): v for k, v in section.items()}
