"""Local training for all nodes at once.

Every trainer takes the live parameters ``X`` (float32, (n, d), contiguous; row i = node i) and one
minibatch per node, computes each node's gradient of its own mean loss into ``G`` (n, d), and lets
the nodes' optimizer (:mod:`.optim`: the hand-written SGD rule or an elementwise ``torch.optim``
optimizer over the whole buffer) update ``X`` in place. Optimizer state belongs to the nodes,
persists across rounds and is never gossiped.

Strategies (each task declares the ones its model supports and its fastest per device, measured
in ``benches/bench_training.py``; the ``trainer`` setting ``auto`` picks that one):
``loop``     one autograd pass per node on leaf views of its row;
``vmap``     ``torch.func.vmap(grad(functional_call))`` over nodes;
``batched``  one forward/backward over all nodes (grouped conv for GN-LeNet, bmm cells for the LSTM);
``sparse``   matrix factorisation: hand-written gradient, gathered rows, scatter-added back in a fixed order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

import torch
from torch.func import functional_call, grad_and_value, vmap

from ..device import add_rows_
from ..errors import MosaicTypeError, MosaicValueError
from ..models import ClassifierSpec, MatrixFactorizationSpec, ModelSpec
from .optim import OptimizerSpec, SGDConfig
from .trainer_base import (
    Trainer,
    _leaves,
    best_time,
    nondeterministic_error,
    synchronize,
    vmap_backends,
)

__all__ = [
    "STRATEGIES",
    "TRAINERS",
    "SGDConfig",
    "Trainer",
    "best_time",
    "make_trainer",
    "nondeterministic_error",
    "synchronize",
    "vmap_backends",
]


class LoopTrainer(Trainer[ClassifierSpec]):
    """A python loop over nodes; each node runs one ordinary forward/backward on views of its row."""

    strategy = "loop"
    spec_type = ClassifierSpec

    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        spec: ClassifierSpec = self.spec
        xb, yb = batch
        layout = spec.layout
        losses = torch.empty(X.shape[0], device=X.device)
        for i in range(X.shape[0]):
            params = _leaves(layout.row_views(X[i]))
            loss = spec.loss(spec.logits(params, xb[i]), yb[i])
            grads = torch.autograd.grad(loss, list(params.values()))
            for g, o, s in zip(grads, layout.offsets, layout.sizes, strict=True):
                G[i, o : o + s].copy_(g.reshape(-1))
            losses[i] = loss.detach()
        return losses


class VmapTrainer(Trainer[ClassifierSpec]):
    """``torch.func.vmap`` of the per-node gradient over all nodes."""

    strategy = "vmap"
    spec_type = ClassifierSpec
    chunkable = True

    def __init__(
        self, spec: ClassifierSpec, n_nodes: int, optimizer: OptimizerSpec, device: torch.device
    ) -> None:
        super().__init__(spec, n_nodes, optimizer, device)
        template = spec.template()

        def node_loss(
            params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
        ) -> torch.Tensor:
            return spec.loss(functional_call(template, params, (x,)), y)

        self._fn = vmap(grad_and_value(node_loss))
        self._backends = functools.partial(vmap_backends, template, device)

    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        layout = self.spec.layout
        with self._backends():
            grads, losses = self._fn(layout.node_views(X), *batch)
        for name, o, s in zip(layout.names, layout.offsets, layout.sizes, strict=True):
            G[:, o : o + s].copy_(grads[name].reshape(X.shape[0], s))
        return cast(torch.Tensor, losses)  # vmap's result is untyped


class BatchedTrainer(Trainer[ClassifierSpec]):
    """One forward/backward for the whole network through the spec's ``batched_logits``."""

    strategy = "batched"
    spec_type = ClassifierSpec
    chunkable = True

    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        spec: ClassifierSpec = self.spec
        layout = spec.layout
        xb, yb = batch
        P = _leaves(layout.node_views(X))
        losses = spec.loss(spec.batched_logits(P, xb), yb)  # (n,)
        # Node i's parameters only touch node i's loss, so d(sum)/d(row i) = grad of node i's loss.
        grads = torch.autograd.grad(losses.sum(), list(P.values()))
        for g, o, s in zip(grads, layout.offsets, layout.sizes, strict=True):
            G[:, o : o + s].copy_(g.reshape(X.shape[0], s))
        return losses


class SparseMFTrainer(Trainer[MatrixFactorizationSpec]):
    """Matrix factorisation, all nodes in one hand-batched step touching only the sampled rows.

    With plain SGD (momentum 0, weight decay 0) the update is applied directly to the touched rows
    of X (no dense (n, d) pass); otherwise the sparse gradient is scattered into G and the
    optimizer runs on it, exactly as on a dense autograd gradient.
    """

    strategy = "sparse"
    spec_type = MatrixFactorizationSpec

    def __init__(
        self,
        spec: MatrixFactorizationSpec,
        n_nodes: int,
        optimizer: OptimizerSpec,
        device: torch.device,
    ) -> None:
        super().__init__(spec, n_nodes, optimizer, device)
        self._dense = not optimizer.plain_sgd
        self._nodes = torch.arange(n_nodes, device=device).unsqueeze(1)
        if not self._dense:
            self._grad = torch.zeros(0, device=device)

    @property
    def write_widths(self) -> tuple[int, ...]:
        if self._dense:  # the optimizer writes every coordinate
            return ()
        tables = [(name, self.spec.dim) for name in ("user.weight", "item.weight")]
        if self.spec.biases:
            tables += [(name, 1) for name in ("user_bias.weight", "item_bias.weight")]
        return tuple(sorted({self._piece_width(name, width) for name, width in tables}))

    def _piece_width(self, name: str, width: int) -> int:
        """``width`` when table ``name``'s rows are whole rows of ``X.view(-1, width)``, else 1."""
        spec: MatrixFactorizationSpec = self.spec
        whole = spec.n_params % width == 0 and spec.layout.slice(name).start % width == 0
        return width if whole else 1

    def _local_step(
        self,
        X: torch.Tensor,
        batch: tuple[torch.Tensor, ...],
        G: torch.Tensor,
        update: Callable[[torch.Tensor, torch.Tensor], None],
    ) -> torch.Tensor:
        spec: MatrixFactorizationSpec = self.spec
        users, items, ratings = batch
        n, B = users.shape
        nodes = self._nodes[:n].expand(n, B)
        p, q, bu, bi = spec.gather(X, nodes, users, items)
        pred = (p * q).sum(-1)
        if spec.biases:
            assert bu is not None and bi is not None  # gathered whenever the spec has biases
            pred = pred + bu + bi + spec.offset
        err = pred - ratings
        losses = (err * err).mean(1)
        coef = (2.0 / B) * err  # d(mean squared error)/d(pred), per rating
        flat = X.view(-1)
        target = flat if not self._dense else G.zero_().view(-1)
        if self._dense:
            scale = 1.0
        else:
            sgd = self.optimizer_spec.sgd
            assert sgd is not None  # not dense: plain SGD
            scale = -sgd.lr
        c = (scale * coef).unsqueeze(-1)
        updates = [("user.weight", users, c * q), ("item.weight", items, c * p)]
        if spec.biases:
            updates += [("user_bias.weight", users, c), ("item_bias.weight", items, c)]
        # Gradients are computed from pre-step values above, then all scattered: same as autograd.
        for name, rows, val in updates:
            self._scatter_add(target, name, nodes, rows, val)
        if self._dense:
            update(X, G)
        return losses

    def _scatter_add(
        self,
        flat: torch.Tensor,
        name: str,
        nodes: torch.Tensor,
        rows: torch.Tensor,
        val: torch.Tensor,
    ) -> None:
        """``flat`` (the (n, n_params) buffer as one vector) += ``val`` (n, B, width) at table rows.

        When every table row is a whole row of ``flat.view(-1, width)``, rows are added as rows
        (twice as fast as one index per float, measured); each float still receives its additions
        in the same order, so the result is bit-identical either way. The order is the batch's on
        CPU, and on CUDA while the ``deterministic`` setting is on (:func:`add_rows_`); with it
        off, CUDA adds with atomics in any order.
        """
        spec: MatrixFactorizationSpec = self.spec
        width = val.shape[-1]
        start = spec.layout.slice(name).start
        if self._piece_width(name, width) == width:
            index = (nodes * (spec.n_params // width) + (start // width) + rows).reshape(-1)
            add_rows_(flat.view(-1, width), index, val.reshape(-1, width))
        else:
            width, index = 1, spec.flat_index(name, nodes, rows, width).reshape(-1)
            add_rows_(flat, index, val.reshape(-1))
        if self.write_log is not None and not self._dense:  # dense: ``flat`` is the gradient
            self.write_log.setdefault(width, []).append(index)

    def gradients(  # pragma: no cover - step is overridden
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError


TRAINERS: dict[str, type[Trainer[Any]]] = {
    t.strategy: t for t in (LoopTrainer, VmapTrainer, BatchedTrainer, SparseMFTrainer)
}
# Values of the ``trainer`` setting: "auto" (the task's default) or a strategy.
STRATEGIES = ("auto", *TRAINERS)


def make_trainer(
    spec: ModelSpec,
    n_nodes: int,
    optimizer: OptimizerSpec | SGDConfig,
    device: torch.device,
    strategy: str,
) -> Trainer[Any]:
    """The ``strategy`` trainer for ``spec`` (``Task.trainer_strategy`` resolves ``auto``).

    ``optimizer``: an :class:`OptimizerSpec` (``optim.optimizer_from_config``) or an
    :class:`SGDConfig`, the hand-written SGD rule.
    """
    if isinstance(optimizer, SGDConfig):
        optimizer = OptimizerSpec.from_sgd(optimizer)
    elif not isinstance(optimizer, OptimizerSpec):
        raise MosaicTypeError(
            f"optimizer must be an OptimizerSpec or SGDConfig, got {type(optimizer).__name__}"
        )
    cls = TRAINERS.get(strategy)
    if cls is None:
        hint = (
            " ('auto' is resolved by the task: Task.trainer_strategy)" if strategy == "auto" else ""
        )
        raise MosaicValueError(
            f"unknown trainer strategy {strategy!r}; choose one of {', '.join(TRAINERS)}{hint}"
        )
    if not isinstance(spec, cls.spec_type):
        raise MosaicValueError(
            f"trainer strategy {strategy!r} cannot train {spec.name}: it needs a {cls.spec_type.__name__}"
        )
    return cls(spec, n_nodes, optimizer, device)
