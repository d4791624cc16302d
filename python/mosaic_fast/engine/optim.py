"""Local optimizers: every node runs its own, on its own row of the (n, d) parameter buffer ``X``.

Optimizer state (momentum buffers, Adam's moments, ...) belongs to the nodes: it persists across
rounds, is never gossiped and is saved in checkpoints.

An elementwise rule (every coordinate's update depends only on that coordinate's parameter,
gradient and state, plus scalars such as the step count) applied to one (n, d) tensor is exactly n
separate optimizers on the n rows. So one ``torch.optim`` optimizer runs over one persistent leaf
tensor whose data is pointed at the live ``X`` before each step (``X`` alternates between two
gossip buffers) and whose ``.grad`` is the gradient buffer; its state stays keyed to that leaf.

``sgd`` is not run through ``torch.optim``: it is the hand-written rule that produced the published
results (bit-identical to ``torch.optim.SGD`` with dampening 0), kept so that they do not change.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import state_dicts as checked
from ..errors import MosaicTypeError, MosaicValueError
from ..settings import SETTINGS, ExperimentConfig, is_reference
from ..user_code import describe, first_line, import_reference, is_object_label

Build = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


@dataclass(frozen=True)
class SGDConfig:
    """The hand-written SGD rule: ``torch.optim.SGD`` semantics with dampening 0."""

    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False


@dataclass(frozen=True)
class OptimizerSpec:
    """The local optimizer of every node: the hand-written SGD rule (``sgd``) or a ``torch.optim``
    optimizer made by ``build([param])`` (hyperparameters bound). Exactly one of the two is set.

    ``name`` is ``sgd``, ``adam``, ``adamw`` or the optimizer's class name; checkpoints record it.
    Make one with :func:`optimizer_from_config`, :meth:`from_sgd` or :func:`torch_optimizer`.
    """

    name: str
    sgd: SGDConfig | None = None
    build: Build | None = None

    def __post_init__(self) -> None:
        if (self.sgd is None) == (self.build is None):
            raise MosaicValueError(
                f"OptimizerSpec {self.name!r} needs exactly one of sgd and build"
            )

    @classmethod
    def from_sgd(cls, sgd: SGDConfig) -> OptimizerSpec:
        """The hand-written SGD rule with ``sgd``'s hyperparameters."""
        return cls("sgd", sgd=sgd)

    @property
    def plain_sgd(self) -> bool:
        """SGD without momentum and weight decay: ``x -= lr * g``, nothing else (no state)."""
        return self.sgd is not None and not self.sgd.momentum and not self.sgd.weight_decay


# Verified elementwise (tests/test_optimizers.py: one (n, d) tensor == n separate row optimizers).
ELEMENTWISE: tuple[type[torch.optim.Optimizer], ...] = tuple(
    getattr(torch.optim, name)
    for name in (
        "SGD",
        "Adam",
        "AdamW",
        "Adamax",
        "NAdam",
        "RAdam",
        "Adagrad",
        "RMSprop",
        "Adadelta",
        "ASGD",
        "Rprop",
    )
)
# torch.optim optimizers that cannot run one node per row, and why.
_REFUSED = {
    "LBFGS": "is not elementwise: its line search mixes all coordinates and step() needs a closure",
    "SparseAdam": "needs sparse gradients; the trainers compute dense ones",
    "Adafactor": "is not elementwise: it factors 2-D tensors into row and column statistics",
    "Muon": "is not elementwise: it orthogonalises whole 2-D updates",
}
# Values a checkpoint may hold besides tensors (torch.load(weights_only=True) reads them).
_PLAIN = (bool, int, float, str, type(None))
_PROBE_NODES, _PROBE_DIM, _PROBE_STEPS = 3, 5, 4


def optimizer_from_config(cfg: ExperimentConfig, user: Any = None) -> OptimizerSpec:
    """The optimizer a (resolved) config asks for.

    ``cfg.optimizer`` is ``sgd``, ``adam``, ``adamw`` or a ``module:Class`` reference. ``user`` (the
    public API's optimizer object) replaces it: a ``torch.optim.Optimizer`` subclass, or a factory
    ``params -> Optimizer`` such as ``functools.partial(torch.optim.RMSprop, alpha=0.9)``.

    Classes get ``lr`` plus each of ``momentum``, ``nesterov``, ``weight_decay``, ``betas``
    (beta1, beta2) and ``eps`` that is set away from its default (so the class's own defaults hold
    otherwise). A factory fixes every hyperparameter itself: it is called with the parameters only.
    A setting away from its default that the optimizer does not take is a MosaicValueError, as is
    an optimizer that is not elementwise (see :func:`torch_optimizer`).
    """
    if cfg.lr is None:
        raise MosaicValueError("lr=None: resolve the config (ExperimentConfig.resolved) first")
    name = cfg.optimizer
    if user is not None:
        # The setting then holds the object's label (a reference, or <name> from Experiment).
        labelled = is_reference(name) or is_object_label(name)
        if not (name == SETTINGS["optimizer"].default or labelled):
            raise MosaicValueError(
                f"optimizer={name!r} and an optimizer object were both given; give one"
            )
        return _from_object(cfg, user, describe(user))
    if name == "sgd":
        _refuse_unused(cfg, f"optimizer={name!r}", ("beta1", "beta2", "eps"))
        sgd = SGDConfig(cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov)
        return OptimizerSpec.from_sgd(sgd)
    if name in ("adam", "adamw"):
        _refuse_unused(cfg, f"optimizer={name!r}", ("momentum", "nesterov"))
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        kwargs = {
            "lr": cfg.lr,
            "betas": (cfg.beta1, cfg.beta2),
            "eps": cfg.eps,
            "weight_decay": cfg.weight_decay,
        }
        return torch_optimizer(functools.partial(cls, **kwargs), name=name)
    if is_reference(name):
        return _from_object(cfg, import_reference(name, "optimizer"), repr(name))
    raise MosaicValueError(f"optimizer={name!r} is not one of sgd, adam, adamw, or module:Class")


def torch_optimizer(
    build: Build, name: str | None = None, *, label: str | None = None
) -> OptimizerSpec:
    """``build`` (``[param] -> torch.optim.Optimizer``) as a per-node optimizer, checked first.

    ``build`` is run on a small (n, d) probe tensor and on its n rows separately. LBFGS,
    SparseAdam, Adafactor and Muon are refused; an optimizer outside :data:`ELEMENTWISE` must give
    exactly the same rows both ways; its state must be tensors and plain values. Otherwise a
    one-line MosaicValueError names the optimizer. ``name`` defaults to the class name; ``label``
    names ``build`` in messages until its class is known.
    """
    cls = _probe(build, name or label or describe(build))
    return OptimizerSpec(name or cls.__name__, build=build)


def _from_object(cfg: ExperimentConfig, obj: Any, label: str) -> OptimizerSpec:
    """A spec from a user's class or factory (``label`` names it in messages)."""
    if isinstance(obj, torch.optim.Optimizer):
        raise MosaicTypeError(
            f"optimizer {label} is an optimizer instance; pass its class or a factory "
            "params -> Optimizer (each run builds its own over the node buffer)"
        )
    if isinstance(obj, type):
        if not issubclass(obj, torch.optim.Optimizer):
            raise MosaicTypeError(
                f"optimizer {label} is a class but not a torch.optim.Optimizer subclass"
            )
        kwargs = _class_kwargs(cfg, obj, label)
        return torch_optimizer(functools.partial(obj, **kwargs), label=label)
    if not callable(obj):
        raise MosaicTypeError(
            f"optimizer {label} is {type(obj).__name__}, not a torch.optim.Optimizer subclass "
            "or a factory params -> Optimizer"
        )
    _refuse_unused(cfg, f"optimizer {label} (a factory sets its own hyperparameters)", _TUNABLE)
    return torch_optimizer(obj, label=label)


# Settings passed to an optimizer class when set away from their defaults: setting -> keyword.
_KEYWORDS = {
    "momentum": "momentum",
    "nesterov": "nesterov",
    "weight_decay": "weight_decay",
    "beta1": "betas",
    "beta2": "betas",
    "eps": "eps",
}
_TUNABLE = tuple(_KEYWORDS)


def _changed(cfg: ExperimentConfig, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if getattr(cfg, n) != SETTINGS[n].default]


def _refuse_unused(cfg: ExperimentConfig, where: str, names: tuple[str, ...]) -> None:
    changed = _changed(cfg, names)
    if changed:
        n = changed[0]
        raise MosaicValueError(f"{n}={getattr(cfg, n)!r} has no effect with {where}")


def _class_kwargs(cfg: ExperimentConfig, cls: type, label: str) -> dict[str, Any]:
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # no introspectable signature: pass what is asked for
        parameters = {}
    open_ended = not parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )

    def takes(keyword: str) -> bool:
        return open_ended or keyword in parameters

    if not takes("lr"):
        raise MosaicValueError(f"optimizer {label} takes no lr argument; lr={cfg.lr!r} is set")
    kwargs: dict[str, Any] = {"lr": cfg.lr}
    for n in _changed(cfg, _TUNABLE):
        keyword = _KEYWORDS[n]
        if not takes(keyword):
            raise MosaicValueError(
                f"{n}={getattr(cfg, n)!r} has no effect with optimizer {label} "
                f"(it takes no {keyword} argument)"
            )
        kwargs[keyword] = (cfg.beta1, cfg.beta2) if keyword == "betas" else getattr(cfg, n)
    return kwargs


def _built(build: Build, param: torch.Tensor, label: str) -> torch.optim.Optimizer:
    try:
        opt = build([param])
    except MosaicValueError:
        raise
    except Exception as exc:  # user code or torch's hyperparameter checks: one line
        raise MosaicValueError(f"optimizer {label} cannot be built: {first_line(exc)}") from None
    if not isinstance(opt, torch.optim.Optimizer):
        raise MosaicTypeError(
            f"optimizer factory {label} returned {type(opt).__name__}, not a torch.optim.Optimizer"
        )
    return opt


def _stepped(opt: torch.optim.Optimizer, label: str) -> None:
    try:
        opt.step()
    except Exception as exc:  # user code: one line
        raise MosaicValueError(f"optimizer {label} failed a step: {first_line(exc)}") from None


def _probe(build: Build, label: str) -> type[torch.optim.Optimizer]:
    """Check ``build`` as described in :func:`torch_optimizer`; return its optimizer class."""
    g = torch.Generator().manual_seed(0)
    n, d = _PROBE_NODES, _PROBE_DIM
    start = torch.randn(n, d, generator=g)
    grads = [torch.randn(n, d, generator=g) for _ in range(_PROBE_STEPS)]
    whole = start.clone().requires_grad_(True)
    opt = _built(build, whole, label)
    cls = type(opt)
    label = cls.__name__
    for refused, why in _REFUSED.items():
        refused_cls = getattr(torch.optim, refused, None)  # Adafactor, Muon: recent torch only
        if refused_cls is not None and issubclass(cls, refused_cls):
            raise MosaicValueError(
                f"optimizer {label} {why}; choose an elementwise optimizer "
                "(sgd, adam, adamw, or e.g. torch.optim:RMSprop)"
            )
    rows = [start[i].clone().requires_grad_(True) for i in range(n)]
    row_opts = [_built(build, row, label) for row in rows]
    for G in grads:
        whole.grad = G.clone()
        _stepped(opt, label)
        for row, row_opt, g_row in zip(rows, row_opts, G, strict=True):
            row.grad = g_row.clone()
            _stepped(row_opt, label)
    for key, value in opt.state[whole].items():
        if not isinstance(value, (torch.Tensor, *_PLAIN)):
            raise MosaicValueError(
                f"optimizer {label} keeps state {key!r} as {type(value).__name__}; a checkpoint "
                "holds only tensors and plain values (int, float, bool, str, None)"
            )
    if cls not in ELEMENTWISE and not torch.equal(whole.detach(), torch.stack(rows).detach()):
        raise MosaicValueError(
            f"optimizer {label} is not elementwise: stepping one ({n}, {d}) tensor differs from "
            f"{n} optimizers on its rows, so nodes would not be independent"
        )
    return cls


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
            M = M.mul_(mu).add_(G)
            G = G.add_(M, alpha=mu) if self.sgd.nesterov else M
        X.add_(G, alpha=-lr)

    def state_dict(self) -> dict[str, Any]:
        M = self.momentum_buffer
        return {"momentum_buffer": None if M is None else M.detach().to("cpu", copy=True)}

    def load_state_dict(self, state: Any) -> None:
        if isinstance(state, dict) and "optimizer" in state and "momentum_buffer" not in state:
            raise checked.bad(
                "trainer.optimizer", f"is {state['optimizer']!r}, but this run's optimizer is 'sgd'"
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
        # A leaf sharing like's memory (no allocation); its data is re-pointed at X every step.
        self._param = like.detach().requires_grad_(True)
        self._opt = spec.build([self._param])

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
                    checked.tensor(saved[key], where, dtype, shape)
                elif type(saved[key]) is not kind:
                    raise checked.bad(where, f"must be {kind.__name__}, got {saved[key]!r}"[:120])
        entry = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in saved.items()}
        groups = self._opt.state_dict()["param_groups"]
        self._opt.load_state_dict({"state": {0: entry} if entry else {}, "param_groups": groups})

    def _expected_state(self) -> dict[str, tuple[type, torch.dtype | None, tuple[int, ...]]]:
        """Key -> (type, dtype, shape) of the state after a step, from a small probe tensor."""
        probe_shape = (2, 3)
        probe = torch.zeros(probe_shape, requires_grad=True)
        opt = self.spec.build([probe])
        probe.grad = torch.ones(probe_shape)
        opt.step()
        shape_of = tuple(self._param.shape)
        out = {}
        for key, value in opt.state[probe].items():
            if isinstance(value, torch.Tensor):
                shape = shape_of if tuple(value.shape) == probe_shape else tuple(value.shape)
                out[key] = (torch.Tensor, value.dtype, shape)
            else:
                out[key] = (type(value), None, ())
        return out
