"""What every model spec provides: a parameter layout inside the flat row and a seeded initial row."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from .layout import ParamLayout

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def seeded_module(factory: Callable[[], ModuleT], seed: int) -> ModuleT:
    """Build ``factory()`` with torch's default initialisers seeded by ``seed``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


class ModelSpec(ABC):
    """A model architecture as seen by the simulator.

    Attributes: ``name``; ``layout`` (where each tensor lives in a node's flat float32 row of
    length ``n_params``); ``metric`` ("accuracy" or "rmse").
    """

    name: str
    layout: ParamLayout
    metric: str

    @property
    def n_params(self) -> int:
        return self.layout.n_params

    @property
    def lower_is_better(self) -> bool:
        return self.metric == "rmse"

    @abstractmethod
    def module(self, seed: int = 0) -> nn.Module:
        """A plain ``nn.Module`` of this architecture with seeded init (reference for tests and the initial model)."""

    def init_params(self, seed: int) -> torch.Tensor:
        """The initial model every node starts from: float32, shape (n_params,), CPU."""
        return self.layout.flatten_module(self.module(seed))
