"""The two model worlds behind one interface: a built-in model's task, or a user's ``nn.Module``.

Everything that differs between them (the initial row, a node's standalone module, the random
numbers a forward may draw, the per-node buffers a checkpoint holds) is a method here, so the
engine never asks which world it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..errors import MosaicValueError
from ..models import ModelSpec, ParamLayout
from ..models.module_model import ModuleModel

_ROUND_SEED = 1_000_003  # seeds of the rounds of different run seeds do not collide


def per_node_seed(seed: int, node: int) -> int:
    """The seed of node ``node``'s initial model under ``init='per-node'``: distinct from the
    shared draw's ``seed`` and from every other run's nodes."""
    return (seed + 1) * 1_000_003 + node


class BuiltinModel:
    """A built-in model (``models/``): its spec lays out the flat row; it draws no random numbers
    and holds no per-node buffers."""

    module_model: ModuleModel | None = None

    def __init__(self, spec: ModelSpec) -> None:
        self.spec: ModelSpec | None = spec
        self._spec = spec  # spec, typed as never None here

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def layout(self) -> ParamLayout:
        return self._spec.layout

    def init_params(self, seed: int) -> torch.Tensor:
        """The model's initial row drawn from ``seed``."""
        return self._spec.init_params(seed)

    def shared_row(self, seed: int) -> torch.Tensor:
        """The row every node starts from under ``init='shared'``."""
        return self._spec.init_params(seed)

    def node_module(self, X: torch.Tensor, i: int) -> torch.nn.Module:
        """Row ``i`` of ``X`` as a standalone module (CPU, eval mode)."""
        module = self._spec.module(0)
        views = self._spec.layout.row_views(X[i].detach().to("cpu", copy=True))
        module.load_state_dict(views, strict=False)
        return module.eval()

    @contextmanager
    def seeded(self, seed: int, t: int, device: torch.device) -> Iterator[None]:
        """Built-in models draw nothing: no RNG to seed."""
        yield

    def buffers_state(self) -> dict[str, Any] | None:
        """The per-node buffers a checkpoint holds (none)."""
        return None

    def load_buffers(self, state: Any) -> None:
        """Nothing to restore."""

    def node_buffers(self) -> list[torch.Tensor]:
        """Per-node buffers (leading dim = nodes) that ranks share: none."""
        return []


class UserModule(BuiltinModel):
    """A user's ``nn.Module`` over n nodes (:class:`ModuleModel`): it may draw random numbers
    (dropout) and hold per-node buffers (batch norm statistics)."""

    def __init__(self, model: ModuleModel) -> None:
        self.module_model, self.spec = model, None
        self._module = model  # module_model, typed as never None here

    @property
    def name(self) -> str:
        return self._module.name

    @property
    def layout(self) -> ParamLayout:
        return self._module.layout

    def init_params(self, seed: int) -> torch.Tensor:
        return self._module.init_params(seed)

    def shared_row(self, seed: int) -> torch.Tensor:
        """The module's own draw (seeded by the run's seed when it was built)."""
        return self._module.init_params()

    def node_module(self, X: torch.Tensor, i: int) -> torch.nn.Module:
        return self._module.node_module(X, i)

    @contextmanager
    def seeded(self, seed: int, t: int, device: torch.device) -> Iterator[None]:
        """Torch's RNG seeded by (seed, ``t``), so that a run and its resumption draw the same;
        the caller's RNG state is left alone."""
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_ROUND_SEED * seed + t)
            yield

    def buffers_state(self) -> dict[str, Any] | None:
        return self._module.state_dict()

    def load_buffers(self, state: Any) -> None:
        self._module.load_state_dict(state)

    def node_buffers(self) -> list[torch.Tensor]:
        return list(self._module.buffers.values())


def draw_per_node_init(X: torch.Tensor, model: BuiltinModel, seed: int) -> None:
    """Node i's row of ``X`` from its own seeded draw of the model (``init='per-node'``)."""
    for i in range(X.shape[0]):
        X[i].copy_(model.init_params(per_node_seed(seed, i)))
    if torch.equal(X[0], X[1]):
        raise MosaicValueError(
            "init='per-node': nodes 0 and 1 drew the same initial model, so the model factory "
            "ignores torch's seed (does it seed itself?); use init='shared' or draw from torch's RNG"
        )
