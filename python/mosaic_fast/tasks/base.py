"""What every learning task declares, and which task a dataset gets.

A task is one kind of data and what learning on it means: the model built for it, the ways its
training set may be split over nodes, how a node's minibatch is assembled from sampled indices,
how models are scored, and which trainer strategy runs it fastest on each device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import torch

from ..device import host_to_device
from ..errors import MosaicValueError
from ..models import ModelSpec
from ..settings import ExperimentConfig


@dataclass(frozen=True)
class NodeScores:
    """Evaluation result: per-node metric float64 (n,), average-model metric (float), and the
    standard error of the per-node mean due to a finite test (sub)sample, where the task has one."""

    per_node: np.ndarray
    avg_model: float
    node_mean_se: float | None = None


class NodeData(ABC):
    """A task's data placed on the device: per-node minibatches and evaluation of node models."""

    device: torch.device

    @abstractmethod
    def batch(self, idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every node's minibatch from global train indices int64 (n, B), a host array or a tensor
        on the data's device (see :meth:`indices`); tensors lead with (n, B)."""

    def indices(self, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Sample indices as an int64 tensor on the data's device. A host array is copied without
        blocking the host (from pinned memory on CUDA), so that a round queues its steps on the
        device without waiting for them; a tensor is returned as it is."""
        if isinstance(idx, torch.Tensor):
            return idx
        return host_to_device(np.asarray(idx, dtype=np.int64), self.device)

    @abstractmethod
    def evaluate(self, X: torch.Tensor) -> NodeScores:
        """Scores of every row of ``X`` (float32 (n, n_params)) and of their average."""


SpecT = TypeVar("SpecT", bound=ModelSpec)


class Task(ABC, Generic[SpecT]):
    """One kind of data (``self.data``) and how a Mosaic Learning network learns on it, with
    models of spec type ``SpecT``.

    Class attributes: ``name`` (shown in messages); ``strategies`` (the strategies of
    :mod:`mosaic_fast.engine.trainer` that can train its model).
    """

    name: ClassVar[str]
    strategies: ClassVar[tuple[str, ...]]

    def __init__(self, data: Any) -> None:
        self.data = data

    @abstractmethod
    def model_spec(self, cfg: ExperimentConfig) -> SpecT:
        """The paper's model for this data, sized by the data and ``cfg``."""

    @property
    @abstractmethod
    def partitions(self) -> tuple[str, ...]:
        """The ``partition`` settings this data can be split by."""

    @abstractmethod
    def _unavailable(self, partition: str) -> str:
        """Why ``partition`` (not in ``partitions``) is not available, for the error message."""

    @abstractmethod
    def _split(self, cfg: ExperimentConfig, partition: str) -> list[np.ndarray]:
        """Train sample indices of every node, for ``partition`` (one of ``partitions``)."""

    def partition(self, cfg: ExperimentConfig) -> list[np.ndarray]:
        """Train sample indices of every node (int64 arrays, each non-empty) by ``cfg.partition``."""
        partition = cfg.partition
        if partition is None or partition not in self.partitions:
            raise MosaicValueError(
                f"partition={partition!r} is not available for {cfg.dataset} "
                f"({self._unavailable(str(partition))}); {_choose(self.partitions)}"
            )
        return self._split(cfg, partition)

    @classmethod
    @abstractmethod
    def default_strategy(cls, device: torch.device) -> str:
        """The fastest measured trainer strategy on ``device`` (see benches/bench_training.py)."""

    @classmethod
    def trainer_strategy(cls, requested: str, device: torch.device) -> str:
        """The concrete strategy for the ``trainer`` setting: ``auto`` is the default for ``device``."""
        if requested == "auto":
            return cls.default_strategy(device)
        if requested not in cls.strategies:
            raise MosaicValueError(
                f"trainer strategy {requested!r} is not available for the {cls.name} task; "
                f"{_choose(('auto', *cls.strategies))}"
            )
        return requested

    @abstractmethod
    def node_data(
        self,
        cfg: ExperimentConfig,
        spec: SpecT,
        parts: list[np.ndarray],
        device: torch.device,
        strategy: str,
    ) -> NodeData:
        """The data on ``device`` for a network with ``spec`` models split by ``parts``."""


def _choose(values: tuple[str, ...]) -> str:
    return f"choose {values[0]}" if len(values) == 1 else f"choose one of {', '.join(values)}"
