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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import MosaicTypeError, MosaicValueError
from ..settings import SETTINGS, ExperimentConfig
from ..user_code import Import, Object, decode, describe, first_line

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
        labelled = isinstance(decode("optimizer", name), Import | Object)
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
        kwargs: dict[str, Any] = {
            "lr": cfg.lr,
            "betas": (cfg.beta1, cfg.beta2),
            "eps": cfg.eps,
            "weight_decay": cfg.weight_decay,
        }
        return torch_optimizer(functools.partial(cls, **kwargs), name=name)
    code = decode("optimizer", name)
    if isinstance(code, Import):
        return _from_object(cfg, code.load(), repr(name))
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
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(cls).parameters
    except (
        TypeError,
        ValueError,
    ):  # no introspectable signature: pass what is asked for
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
