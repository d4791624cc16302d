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
``sparse``   matrix factorisation: hand-written gradient, gathered rows and ``index_add_`` back.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch.func import functional_call, grad_and_value, vmap

from ..errors import MosaicTypeError, MosaicValueError
from ..models import ClassifierSpec, MatrixFactorizationSpec, ModelSpec
from .optim import OptimizerSpec, SGDConfig, node_optimizer


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): timings then measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``fn``, after one untimed warm-up call
    (the first call allocates and picks kernels)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


class Trainer(ABC):
    """Owns the per-node optimizer; ``step`` updates ``X`` in place and returns losses (n,).

    ``spec_type`` is the kind of model spec the strategy can train.
    """

    strategy: str
    spec_type: type[ModelSpec]

    def __init__(
        self, spec: ModelSpec, n_nodes: int, optimizer: OptimizerSpec, device: torch.device
    ) -> None:
        self.spec, self.n_nodes, self.device = spec, n_nodes, device
        self.optimizer_spec = optimizer
        self._grad = torch.zeros(n_nodes, spec.n_params, device=device)
        self.optimizer = node_optimizer(optimizer, self._grad)

    @abstractmethod
    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        """Write every node's gradient into G (n, d); return per-node mean losses float32 (n,)."""

    def step(self, X: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One local step of every node on its minibatch; returns the losses before it (n,)."""
        losses = self.gradients(X, batch, self._grad)
        self.apply(X, self._grad)
        return losses.detach()

    def apply(self, X: torch.Tensor, G: torch.Tensor) -> None:
        """The optimizer step of all rows with gradients ``G`` (which it may overwrite)."""
        self.optimizer.step(X, G)

    def state_dict(self) -> dict:
        """A CPU copy of the optimizer state (``{"momentum_buffer": M or None}`` for SGD)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; checked first (MosaicValueError), nothing changes on error."""
        self.optimizer.load_state_dict(state)


def _leaves(views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Fresh autograd leaves sharing memory with X: no copy in, gradients come out per tensor.
    return {k: v.detach().requires_grad_(True) for k, v in views.items()}


class LoopTrainer(Trainer):
    """A python loop over nodes; each node runs one ordinary forward/backward on views of its row."""

    strategy = "loop"
    spec_type = ClassifierSpec

    def gradients(self, X, batch, G):
        spec: ClassifierSpec = self.spec
        xb, yb = batch
        layout = spec.layout
        losses = torch.empty(self.n_nodes, device=X.device)
        for i in range(self.n_nodes):
            params = _leaves(layout.row_views(X[i]))
            loss = spec.loss(spec.logits(params, xb[i]), yb[i])
            grads = torch.autograd.grad(loss, list(params.values()))
            for g, o, s in zip(grads, layout.offsets, layout.sizes, strict=True):
                G[i, o : o + s].copy_(g.reshape(-1))
            losses[i] = loss.detach()
        return losses


class VmapTrainer(Trainer):
    """``torch.func.vmap`` of the per-node gradient over all nodes."""

    strategy = "vmap"
    spec_type = ClassifierSpec

    def __init__(self, spec, n_nodes, optimizer, device) -> None:
        super().__init__(spec, n_nodes, optimizer, device)
        template = spec.template()

        def node_loss(params, x, y):
            return spec.loss(functional_call(template, params, (x,)), y)

        self._fn = vmap(grad_and_value(node_loss))

    def gradients(self, X, batch, G):
        layout = self.spec.layout
        grads, losses = self._fn(layout.node_views(X), *batch)
        for name, o, s in zip(layout.names, layout.offsets, layout.sizes, strict=True):
            G[:, o : o + s].copy_(grads[name].reshape(self.n_nodes, s))
        return losses


class BatchedTrainer(Trainer):
    """One forward/backward for the whole network through the spec's ``batched_logits``."""

    strategy = "batched"
    spec_type = ClassifierSpec

    def gradients(self, X, batch, G):
        spec: ClassifierSpec = self.spec
        layout = spec.layout
        xb, yb = batch
        P = _leaves(layout.node_views(X))
        losses = spec.loss(spec.batched_logits(P, xb), yb)  # (n,)
        # Node i's parameters only touch node i's loss, so d(sum)/d(row i) = grad of node i's loss.
        grads = torch.autograd.grad(losses.sum(), list(P.values()))
        for g, o, s in zip(grads, layout.offsets, layout.sizes, strict=True):
            G[:, o : o + s].copy_(g.reshape(self.n_nodes, s))
        return losses


class SparseMFTrainer(Trainer):
    """Matrix factorisation, all nodes in one hand-batched step touching only the sampled rows.

    With plain SGD (momentum 0, weight decay 0) the update is applied directly to the touched rows
    of X (no dense (n, d) pass); otherwise the sparse gradient is scattered into G and the
    optimizer runs on it, exactly as on a dense autograd gradient.
    """

    strategy = "sparse"
    spec_type = MatrixFactorizationSpec

    def __init__(self, spec, n_nodes, optimizer, device) -> None:
        super().__init__(spec, n_nodes, optimizer, device)
        self._dense = not optimizer.plain_sgd
        self._nodes = torch.arange(n_nodes, device=device).unsqueeze(1)
        if not self._dense:
            self._grad = torch.zeros(0, device=device)

    def step(self, X, batch):
        spec: MatrixFactorizationSpec = self.spec
        users, items, ratings = batch
        n, B = users.shape
        nodes = self._nodes.expand(n, B)
        p, q, bu, bi = spec.gather(X, nodes, users, items)
        pred = (p * q).sum(-1)
        if spec.biases:
            pred = pred + bu + bi + spec.offset
        err = pred - ratings
        losses = (err * err).mean(1)
        coef = (2.0 / B) * err  # d(mean squared error)/d(pred), per rating
        flat = X.view(-1)
        target = flat if not self._dense else self._grad.zero_().view(-1)
        scale = -self.optimizer_spec.sgd.lr if not self._dense else 1.0
        c = (scale * coef).unsqueeze(-1)
        updates = [("user.weight", users, c * q), ("item.weight", items, c * p)]
        if spec.biases:
            updates += [("user_bias.weight", users, c), ("item_bias.weight", items, c)]
        # Gradients are computed from pre-step values above, then all scattered: same as autograd.
        for name, rows, val in updates:
            self._scatter_add(target, name, nodes, rows, val)
        if self._dense:
            self.apply(X, self._grad)
        return losses

    def _scatter_add(self, flat, name, nodes, rows, val) -> None:
        """``flat`` (the (n, n_params) buffer as one vector) += ``val`` (n, B, width) at table rows.

        When every table row is a whole row of ``flat.view(-1, width)``, rows are added as rows
        (twice as fast as one index per float, measured); each float still receives its additions
        in the same order, so the result is bit-identical either way.
        """
        spec: MatrixFactorizationSpec = self.spec
        width = val.shape[-1]
        start = spec.layout.slice(name).start
        if spec.n_params % width == 0 and start % width == 0:
            row_index = nodes * (spec.n_params // width) + (start // width) + rows
            flat.view(-1, width).index_add_(0, row_index.reshape(-1), val.reshape(-1, width))
        else:
            index = spec.flat_index(name, nodes, rows, width)
            flat.index_add_(0, index.reshape(-1), val.reshape(-1))

    def gradients(self, X, batch, G):  # pragma: no cover - step is overridden
        raise NotImplementedError


TRAINERS: dict[str, type[Trainer]] = {
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
) -> Trainer:
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
