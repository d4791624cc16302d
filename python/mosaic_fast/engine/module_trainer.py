"""Local training of a user's ``nn.Module`` on every node: loop, vmap, or the model's own batched form.

Each strategy writes every node's gradient of its own mean loss into G (n, n_trained) and returns
the per-node losses; :class:`~mosaic_fast.engine.trainer.Trainer` then applies the optimizer to the
trained columns of X (gossiped buffers, after them, are never touched by the optimizer).
``auto`` times each strategy that works for the model on a few steps and keeps the fastest
(``loop`` unless another takes under 80% of its time).

``loop``     one ordinary forward/backward per node on views of its row (BatchNorm and the like
             update the node's own running statistics in place);
``vmap``     ``torch.func.vmap(grad(functional_call))`` over nodes (``randomness="different"``);
``batched``  the model's ``forward_nodes(tensors, x)``: ``tensors`` name -> (n, *shape) for every
             node (frozen parameters without the node axis), ``x`` (n, B, ...) -> outputs (n, B, ...).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch.func import functional_call, grad_and_value, vmap

from ..errors import MosaicValueError
from ..models.module_model import ModuleModel
from ..user_code import describe, first_line
from .optim import OptimizerSpec
from .trainer import Trainer, best_time, vmap_backends

MODULE_STRATEGIES = ("loop", "vmap", "batched")
_TRIAL_STEPS = 2  # timed steps per strategy after one warm-up step
_CLEAR_GAIN = 0.8  # another strategy replaces loop when it takes under 80% of loop's time


@dataclass(frozen=True)
class _Columns:
    """What the Trainer base needs of a spec: the number of columns the optimizer updates."""

    n_params: int


class ModuleTrainer(Trainer[_Columns]):
    """Gradients of a :class:`ModuleModel`'s trained parameters; see the module docstring."""

    strategy: str

    def __init__(
        self,
        model: ModuleModel,
        loss: Callable[..., Any],
        n_nodes: int,
        optimizer: OptimizerSpec,
        device: torch.device,
    ) -> None:
        super().__init__(_Columns(model.n_trained), n_nodes, optimizer, device)
        self.model, self.loss = model, loss
        trained = []
        for name, offset, size in zip(
            model.layout.names, model.layout.offsets, model.layout.sizes, strict=True
        ):
            if offset < model.n_trained:
                trained.append((name, offset, size))
        self.trained = trained

    def _local_step(
        self,
        X: torch.Tensor,
        batch: tuple[torch.Tensor, ...],
        G: torch.Tensor,
        update: Callable[[torch.Tensor, torch.Tensor], None],
    ) -> torch.Tensor:
        self.model.train(True)
        losses = self._gradients(X, batch, G)
        p = self.model.n_trained
        update(X if p == X.shape[1] else X[:, :p], G)
        return losses.detach()

    def _rows_context(self, rows: torch.Tensor) -> contextlib.AbstractContextManager[None]:
        return self.model.buffers_of(rows)

    def _write(
        self, G: torch.Tensor, grads: Sequence[torch.Tensor | None], rows: int | slice
    ) -> None:
        for g, (_, offset, size) in zip(grads, self.trained, strict=True):
            target = G[rows, offset : offset + size]
            if g is None:  # a parameter this batch did not reach
                target.zero_()
            else:
                target.copy_(g.reshape(target.shape))


class LoopModuleTrainer(ModuleTrainer):
    strategy = "loop"

    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        xb, yb = batch
        model, names = self.model, [name for name, _, _ in self.trained]
        losses = torch.empty(X.shape[0], device=X.device)
        for i in range(X.shape[0]):
            tensors = model.node_tensors(X, i)
            leaves = [tensors[name].detach().requires_grad_(True) for name in names]
            tensors.update(zip(names, leaves, strict=True))
            loss = self.loss(model.forward(tensors, xb[i]), yb[i])
            grads = torch.autograd.grad(loss, leaves, allow_unused=True)
            self._write(G, grads, i)
            losses[i] = loss.detach()
        return losses


class VmapModuleTrainer(ModuleTrainer):
    strategy = "vmap"

    def __init__(
        self,
        model: ModuleModel,
        loss: Callable[..., Any],
        n_nodes: int,
        optimizer: OptimizerSpec,
        device: torch.device,
    ) -> None:
        super().__init__(model, loss, n_nodes, optimizer, device)
        template, frozen = model.template, model.frozen

        def node_loss(
            trained: dict[str, torch.Tensor],
            others: dict[str, torch.Tensor],
            x: torch.Tensor,
            y: torch.Tensor,
        ) -> torch.Tensor:
            out: torch.Tensor = loss(
                functional_call(template, {**trained, **others, **frozen}, (x,)), y
            )
            return out

        self._fn = vmap(grad_and_value(node_loss), randomness="different")
        self._backends = functools.partial(vmap_backends, template, device)

    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        model = self.model
        views = model.all_tensors(X)
        names = [name for name, _, _ in self.trained]
        trained = {name: views.pop(name) for name in names}
        # vmap drops in-place updates (BatchNorm statistics) of non-contiguous batched tensors:
        # gossiped buffers, column views of X, go in as copies and are written back.
        gossiped = {name: views[name] for name in model.gossiped_buffers}
        views.update({name: view.contiguous() for name, view in gossiped.items()})
        with self._backends():
            grads, losses = self._fn(trained, views, *batch)
        for name, view in gossiped.items():
            view.copy_(views[name])
        self._write(G, [grads[name] for name in names], slice(None))
        return cast(torch.Tensor, losses)  # vmap's result is untyped


class BatchedModuleTrainer(ModuleTrainer):
    strategy = "batched"

    def __init__(
        self,
        model: ModuleModel,
        loss: Callable[..., Any],
        n_nodes: int,
        optimizer: OptimizerSpec,
        device: torch.device,
    ) -> None:
        if model.forward_nodes is None:
            raise MosaicValueError(
                f"trainer='batched' needs the model to define forward_nodes(tensors, x); "
                f"{model.name} does not"
            )
        super().__init__(model, loss, n_nodes, optimizer, device)
        self._losses = vmap(loss)

    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        model = self.model
        xb, yb = batch
        tensors = model.all_tensors(X)
        names = [name for name, _, _ in self.trained]
        leaves = [tensors[name].detach().requires_grad_(True) for name in names]
        tensors.update(zip(names, leaves, strict=True))
        tensors.update(model.frozen)
        forward_nodes = model.forward_nodes
        assert forward_nodes is not None  # checked in __init__
        losses: torch.Tensor = self._losses(forward_nodes(tensors, xb), yb)
        # Node i's tensors only reach node i's loss, so d(sum)/d(row i) = grad of node i's loss.
        grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        self._write(G, grads, slice(None))
        return losses


MODULE_TRAINERS: dict[str, type[ModuleTrainer]] = {
    t.strategy: t for t in (LoopModuleTrainer, VmapModuleTrainer, BatchedModuleTrainer)
}


def make_module_trainer(
    model: ModuleModel,
    loss: Callable[..., Any],
    n_nodes: int,
    optimizer: OptimizerSpec,
    device: torch.device,
    strategy: str,
    trial_batch: tuple[torch.Tensor, ...],
) -> ModuleTrainer:
    """The ``strategy`` trainer, or with ``auto`` the fastest that works on ``trial_batch``.

    The trial runs on copies of the parameters and buffers: the run itself is not changed by it.
    """
    if strategy != "auto":
        if strategy not in MODULE_TRAINERS:
            raise MosaicValueError(
                f"trainer strategy {strategy!r} is not available for a torch.nn.Module model; "
                f"choose one of auto, {', '.join(MODULE_TRAINERS)}"
            )
        return MODULE_TRAINERS[strategy](model, loss, n_nodes, optimizer, device)
    candidates = ["loop", "vmap"] + (["batched"] if model.forward_nodes is not None else [])
    timings: dict[str, float] = {}
    failures: dict[str, str] = {}
    saved = {name: b.clone() for name, b in model.buffers.items()}
    X = model.init_params().to(device).expand(n_nodes, -1).contiguous()
    try:
        for name in candidates:
            trainer = MODULE_TRAINERS[name](model, loss, n_nodes, optimizer, device)
            try:
                timings[name] = _time_gradients(trainer, X, trial_batch)
            except Exception as exc:  # a strategy this model cannot run (e.g. vmap limits)
                failures[name] = f"{first_line(exc)}"
    finally:
        for name, b in model.buffers.items():
            b.copy_(saved[name])
    if not timings:
        first = next(iter(failures.items()))
        raise MosaicValueError(
            f"model {model.name} cannot be trained with loss {describe(loss)}: "
            f"the {first[0]} strategy raised {first[1]}"
        )
    best = min(timings, key=timings.__getitem__)
    # Strategies round differently: leave loop only for a clear gain, so that timing noise on
    # one machine does not flip the choice (and the results) from run to run.
    if "loop" in timings and timings[best] > _CLEAR_GAIN * timings["loop"]:
        best = "loop"
    return MODULE_TRAINERS[best](model, loss, n_nodes, optimizer, device)


def _time_gradients(
    trainer: ModuleTrainer, X: torch.Tensor, batch: tuple[torch.Tensor, ...]
) -> float:
    G = torch.empty(X.shape[0], trainer.model.n_trained, device=X.device)
    trainer.model.train(True)
    return best_time(lambda: trainer.gradients(X, batch, G), X.device, _TRIAL_STEPS)
