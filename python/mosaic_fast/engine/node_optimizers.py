"""Per-node optimizers over the flat (n, d) buffer: the hand-written SGD rule, or an elementwise
``torch.optim`` optimizer over the whole buffer (built from an :class:`.optim.OptimizerSpec`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from .. import state_dicts as checked
from ..errors import MosaicValueError
from .optim import Build, OptimizerSpec, SGDConfig


class NodeOptimizer(ABC):
    """Every node's optimizer and its state; :meth:`step` updates all rows of ``X`` in place."""

    @abstractmethod
    def step(self, X: torch.Tensor, G: torch.Tensor) -> None:
        """Update ``X`` (n, d) with gradients ``G`` (n, d), which may be overwritten."""

    @property
    @abstractmethod
    def steps_rows_independently(self) -> bool:
        """Whether :meth:`step_rows` can step some nodes exactly as :meth:`step` would: each node's
        state is its own (no count or statistic shared by all nodes)."""

    @abstractmethod
    def step_rows(self, X: torch.Tensor, G: torch.Tensor, rows: torch.Tensor) -> None:
        """Update nodes ``rows`` only: ``X`` (m, d) holds their parameters (gathered, updated in
        place), ``G`` (m, d) their gradients (may be overwritten), ``rows`` (m,) int64 their ids,
        distinct and sorted. Only those nodes' state changes, exactly as :meth:`step` would change
        it. MosaicValueError when not :attr:`steps_rows_independently`."""

    def node_tensors(self) -> list[torch.Tensor]:
        """The state tensors with one row per node (what a node's own steps change)."""
        return []

    def require_row_steps(self) -> None:
        """A one-line MosaicValueError naming the optimizer unless it steps rows independently
        (an engine whose nodes step on their own clocks calls it before it starts)."""
        if not self.steps_rows_independently:
            raise MosaicValueError(
                f"optimizer {self.name!r} keeps one step count for all nodes, so nodes cannot "
                "step on their own clocks; asynchronous algorithms train with optimizer='sgd'"
            )

    @property
    @abstractmethod
    def name(self) -> str:
        """The optimizer's name as the run's settings give it (``sgd``, ``adam``, ...)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """A CPU copy of the state: tensors and plain Python values only."""

    @abstractmethod
    def load_state_dict(self, state: Any) -> None:
        """Restore :meth:`state_dict`; checked first (MosaicValueError), nothing changes on error."""


def row_span(rows: torch.Tensor) -> slice | None:
    """``slice(lo, hi)`` when the sorted distinct node ids ``rows`` are exactly ``lo, ..., hi - 1``."""
    first, last = int(rows[0]), int(rows[-1])
    return slice(first, last + 1) if last - first + 1 == rows.shape[0] else None


def node_optimizer(spec: OptimizerSpec, like: torch.Tensor) -> NodeOptimizer:
    """The optimizer ``spec`` for a buffer shaped, typed and placed like ``like`` (n, d)."""
    if spec.sgd is not None:
        return HandWrittenSGD(spec.sgd, like)
    return TorchNodeOptimizer(spec, like)


class HandWrittenSGD(NodeOptimizer):
    """``torch.optim.SGD`` (dampening 0) by hand: ``g = grad + wd * x; m = mu * m + g;
    x -= lr * (m if mu else g)``, with ``g + mu * m`` in place of ``m`` for Nesterov momentum.

    State: ``{"momentum_buffer": M}``, M float32 (n, d), or None without momentum.
    """

    def __init__(self, sgd: SGDConfig, like: torch.Tensor) -> None:
        self.sgd = sgd
        self.momentum_buffer = torch.zeros_like(like) if sgd.momentum else None

    def step(self, X: torch.Tensor, G: torch.Tensor) -> None:
        self._update(X, G, self.momentum_buffer)

    @property
    def steps_rows_independently(self) -> bool:
        """True: the only state, the momentum buffer, has one row per node."""
        return True

    @property
    def name(self) -> str:
        return "sgd"

    def node_tensors(self) -> list[torch.Tensor]:
        return [] if self.momentum_buffer is None else [self.momentum_buffer]

    def step_rows(self, X: torch.Tensor, G: torch.Tensor, rows: torch.Tensor) -> None:
        M = self.momentum_buffer
        if M is None:
            self._update(X, G, None)
            return
        span = row_span(rows)
        if span is not None:  # consecutive nodes: their rows, in place
            self._update(X, G, M[span])
            return
        M_rows = M.index_select(0, rows)
        self._update(X, G, M_rows)
        M.index_copy_(0, rows, M_rows)

    def _update(self, X: torch.Tensor, G: torch.Tensor, M: torch.Tensor | None) -> None:
        """The rule on matching rows of ``X``, ``G`` and momentum ``M`` (None without momentum);
        elementwise, so a row's result does not depend on the other rows present."""
        lr, mu, wd = self.sgd.lr, self.sgd.momentum, self.sgd.weight_decay
        if wd:
            G.add_(X, alpha=wd)
        if mu:
            assert M is not None  # the buffer exists whenever the momentum is nonzero
            M = M.mul_(mu).add_(G)
            G = G.add_(M, alpha=mu) if self.sgd.nesterov else M
        X.add_(G, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        M = self.momentum_buffer
        return {"momentum_buffer": None if M is None else M.detach().to("cpu", copy=True)}

    def load_state_dict(self, state: Any) -> None:
        if isinstance(state, dict) and "optimizer" in state and "momentum_buffer" not in state:
            raise checked.bad(
                "trainer.optimizer",
                f"is {state['optimizer']!r}, but this run's optimizer is 'sgd'",
            )
        M = checked.entries(state, "trainer", ["momentum_buffer"])["momentum_buffer"]
        if self.momentum_buffer is None:
            if M is not None:
                raise checked.bad("trainer.momentum_buffer", "must be None: momentum is 0")
            return
        shape = tuple(self.momentum_buffer.shape)
        self.momentum_buffer.copy_(
            checked.tensor(M, "trainer.momentum_buffer", torch.float32, shape)
        )


class TorchNodeOptimizer(NodeOptimizer):
    """One ``torch.optim`` optimizer over one leaf (n, d) tensor: n per-node optimizers.

    State: ``{"optimizer": name, "state": {key: tensor or plain value}}``, the optimizer's state of
    its one parameter (``exp_avg``, ``step``, ...), tensors shaped like the buffer or as torch
    keeps them (``step`` is a scalar tensor). Empty before the first step for lazy optimizers.
    """

    def __init__(self, spec: OptimizerSpec, like: torch.Tensor) -> None:
        if spec.build is None:
            raise MosaicValueError(f"optimizer {spec.name!r} has no torch.optim builder")
        self.spec = spec
        self._build: Build = spec.build
        # A leaf sharing like's memory (no allocation); its data is re-pointed at X every step.
        self._param = like.detach().requires_grad_(True)
        self._opt = self._build([self._param])

    def step(self, X: torch.Tensor, G: torch.Tensor) -> None:
        self._param.data = X
        self._param.grad = G
        self._opt.step()

    @property
    def steps_rows_independently(self) -> bool:
        """False: torch.optim keeps one ``step`` count (and bias corrections) for the buffer."""
        return False

    def step_rows(self, X: torch.Tensor, G: torch.Tensor, rows: torch.Tensor) -> None:
        self.require_row_steps()

    @property
    def name(self) -> str:
        return self.spec.name

    def state_dict(self) -> dict[str, Any]:
        state = self._opt.state.get(self._param, {})
        copied = {
            k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v
            for k, v in state.items()
        }
        return {"optimizer": self.spec.name, "state": copied}

    def load_state_dict(self, state: Any) -> None:
        if isinstance(state, dict) and "momentum_buffer" in state and "optimizer" not in state:
            raise checked.bad(
                "trainer",
                f"holds SGD momentum buffers, but this run's optimizer is {self.spec.name!r}",
            )
        state = checked.entries(state, "trainer", ["optimizer", "state"])
        if state["optimizer"] != self.spec.name:
            raise checked.bad(
                "trainer.optimizer",
                f"is {state['optimizer']!r}, but this run's optimizer is {self.spec.name!r}",
            )
        saved = state["state"]
        if saved != {}:
            expected = self._expected_state()
            checked.entries(saved, "trainer.state", expected)
            for key, (kind, dtype, shape) in expected.items():
                where = f"trainer.state.{key}"
                if kind is torch.Tensor:
                    assert dtype is not None  # recorded for every tensor entry
                    checked.tensor(saved[key], where, dtype, shape)
                elif type(saved[key]) is not kind:
                    raise checked.bad(where, f"must be {kind.__name__}, got {saved[key]!r}"[:120])
        entry = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in saved.items()}
        groups = self._opt.state_dict()["param_groups"]
        self._opt.load_state_dict({"state": {0: entry} if entry else {}, "param_groups": groups})

    def _expected_state(
        self,
    ) -> dict[str, tuple[type, torch.dtype | None, tuple[int, ...]]]:
        """Key -> (type, dtype, shape) of the state after a step, from a small probe tensor."""
        probe_shape = (2, 3)
        probe = torch.zeros(probe_shape, requires_grad=True)
        opt = self._build([probe])
        probe.grad = torch.ones(probe_shape)
        opt.step()
        shape_of = tuple(self._param.shape)
        out: dict[str, tuple[type, torch.dtype | None, tuple[int, ...]]] = {}
        for key, value in opt.state[probe].items():
            if isinstance(value, torch.Tensor):
                shape = shape_of if tuple(value.shape) == probe_shape else tuple(value.shape)
                out[key] = (torch.Tensor, value.dtype, shape)
            else:
                out[key] = (type(value), None, ())
        return out
