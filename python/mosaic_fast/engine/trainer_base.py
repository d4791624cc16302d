"""What every trainer is: the :class:`Trainer` interface and the helpers trainers share (device
waits, timing, vmap's backends). The strategies live in :mod:`.trainer`."""

from __future__ import annotations

import contextlib
import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import torch

from ..errors import MosaicValueError
from ..models import ModelSpec
from .node_optimizers import node_optimizer, row_span
from .optim import OptimizerSpec


class SizedSpec(Protocol):
    """What the Trainer base reads of a spec: the number of columns the optimizer updates."""

    @property
    def n_params(self) -> int: ...


SpecT = TypeVar("SpecT", bound=SizedSpec)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously): timings then measure it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def nondeterministic_error(exc: RuntimeError) -> MosaicValueError | None:
    """A one-line MosaicValueError for torch's refusal of an operation that has no deterministic
    implementation (``deterministic`` setting on), else None."""
    text = str(exc)
    if "does not have a deterministic implementation" not in text:
        return None
    op = text.split(" does not have", 1)[0].strip().splitlines()[-1]
    return MosaicValueError(
        f"deterministic=True, but {op} has no deterministic implementation on this device; "
        "run with --no-deterministic (results may then vary in rounding from run to run)"
    )


def vmap_backends(
    template: torch.nn.Module, device: torch.device
) -> contextlib.AbstractContextManager[None]:
    """Held around a vmapped call of ``template``: on CUDA, cuDNN is off for a model with recurrent
    layers, because cuDNN's RNN kernel (``_cudnn_rnn``, what ``nn.LSTM`` runs on CUDA) has no vmap
    batching rule; torch's own implementation (what CPU runs) has one. Convolutions elsewhere keep
    cuDNN."""
    if device.type == "cuda" and any(isinstance(m, torch.nn.RNNBase) for m in template.modules()):
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


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


class Trainer(ABC, Generic[SpecT]):
    """Owns the per-node optimizer; ``step`` updates ``X`` in place and returns losses (n,);
    ``step_rows`` does the same for some nodes only (nodes on their own clocks).

    ``spec_type`` is the kind of model spec the strategy can train. Strategies size everything
    by ``X.shape[0]``, so that they also run on gathered rows.

    Node chunking: strategies that hold every node's activations at once (``chunkable``) compute
    the gradients ``nodes_per_pass`` nodes at a time when that is set; it starts unset (all nodes
    in one pass) and is halved, for the rest of the run, whenever a pass runs out of device memory.
    A single node that does not fit is a one-line MosaicValueError.
    """

    strategy: str
    spec_type: type[ModelSpec]
    chunkable = False
    nodes_per_pass: int | None = None

    def __init__(
        self,
        spec: SpecT,
        n_nodes: int,
        optimizer: OptimizerSpec,
        device: torch.device,
    ) -> None:
        self.spec, self.n_nodes, self.device = spec, n_nodes, device
        self.optimizer_spec = optimizer
        self._grad = torch.zeros(n_nodes, spec.n_params, device=device)
        self.optimizer = node_optimizer(optimizer, self._grad)
        self._row_store: torch.Tensor | None = None  # gathered rows of X, see step_rows
        # Set to {} to log what steps write: width w -> ids of the w-wide pieces of the stepped
        # rows (as ``X_rows.view(-1, w)`` numbers them) written; see ``write_widths``.
        self.write_log: dict[int, list[torch.Tensor]] | None = None

    @property
    def write_widths(self) -> tuple[int, ...]:
        """The widths ``write_log`` uses; empty where a step writes whole rows (then nothing is
        logged). A distributed run sends other ranks the written pieces instead of fragments
        where that is fewer bytes."""
        return ()

    @abstractmethod
    def gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        """Write every node's gradient into G (n, d); return per-node mean losses float32 (n,)."""

    def step(self, X: torch.Tensor, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One local step of every node on its minibatch; returns the losses before it (n,)."""
        return self._local_step(X, batch, self._grad, self.optimizer.step)

    def step_rows(
        self, X: torch.Tensor, rows: torch.Tensor, batch: tuple[torch.Tensor, ...]
    ) -> torch.Tensor:
        """One local step of the nodes ``rows`` only; returns their losses before it (m,).

        ``X`` is the full (n, d) buffer, ``rows`` an int64 tensor of distinct node ids in ascending
        order on ``X``'s device, ``batch`` those m nodes' minibatches in the order of ``rows``.
        Only rows ``rows`` of ``X`` and of the optimizer state (and of per-node model buffers)
        change, each exactly as :meth:`step` on all nodes would change it. The optimizer must step
        rows independently (``optimizer.steps_rows_independently``), else MosaicValueError.
        """
        rows = self._checked_rows(X, rows)
        self.optimizer.require_row_steps()
        m = rows.shape[0]
        if m == X.shape[0]:  # distinct and in range: every node, in order
            return self.step(X, batch)
        span = row_span(rows)
        # A run of consecutive nodes (a distributed rank's block) steps in place, on a view.
        X_rows = X[span] if span is not None else self._gathered(X, rows)
        with self._rows_context(rows):
            losses = self._local_step(
                X_rows,
                batch,
                self._grad[:m],
                functools.partial(self.optimizer.step_rows, rows=rows),
            )
        if span is None:
            X.index_copy_(0, rows, X_rows)
        return losses

    def _local_step(
        self,
        X: torch.Tensor,
        batch: tuple[torch.Tensor, ...],
        G: torch.Tensor,
        update: Callable[[torch.Tensor, torch.Tensor], None],
    ) -> torch.Tensor:
        """Gradients of the nodes in ``X`` (all, or gathered rows) into ``G``, then ``update(X, G)``
        (the optimizer on all rows or on the gathered ones); returns the losses."""
        losses = self._gradients(X, batch, G)
        update(X, G)
        return losses.detach()

    def _gradients(
        self, X: torch.Tensor, batch: tuple[torch.Tensor, ...], G: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`gradients`, ``nodes_per_pass`` nodes at a time where set (see the class
        docstring); torch's refusals become one-line MosaicValueErrors."""
        n = X.shape[0]
        while True:
            per = min(n, self.nodes_per_pass or n)
            try:
                if per == n:
                    return self.gradients(X, batch, G)
                return torch.cat(
                    [
                        self.gradients(
                            X[a : a + per],
                            tuple(t[a : a + per] for t in batch),
                            G[a : a + per],
                        )
                        for a in range(0, n, per)
                    ]
                )
            except torch.OutOfMemoryError:
                if not self.chunkable or per == 1:
                    raise MosaicValueError(
                        f"one local step of {per} node(s) at batch size {batch[0].shape[1]} does "
                        f"not fit in {X.device}'s memory; use fewer nodes, a smaller batch or model"
                    ) from None
                self.nodes_per_pass = (per + 1) // 2
                if X.device.type == "cuda":
                    torch.cuda.empty_cache()
            except RuntimeError as exc:
                error = nondeterministic_error(exc)
                if error is None:
                    raise
                raise error from None

    def _rows_context(self, rows: torch.Tensor) -> contextlib.AbstractContextManager[None]:
        """Held while nodes ``rows`` step on their own: per-node state besides X and the
        optimizer's (none here) is swapped for theirs."""
        return contextlib.nullcontext()

    def _gathered(self, X: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``rows`` of ``X`` copied into a contiguous (m, d) buffer, reused across calls."""
        m, d = rows.shape[0], X.shape[1]
        store = self._row_store
        if store is None or store.shape[0] < m or store.shape[1] != d or store.device != X.device:
            capacity = m if store is None else min(X.shape[0], max(m, 2 * store.shape[0]))
            store = self._row_store = torch.empty(capacity, d, dtype=X.dtype, device=X.device)
        return torch.index_select(X, 0, rows, out=store[:m])

    @staticmethod
    def _checked_rows(X: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` checked: a non-empty 1-D int64 tensor on X's device of distinct node ids in
        ascending order, all below ``X.shape[0]``; else a one-line MosaicValueError."""
        n = X.shape[0]
        if not isinstance(rows, torch.Tensor):
            raise MosaicValueError(
                f"rows must be an int64 tensor of node ids, got {type(rows).__name__}"
            )
        if rows.dtype != torch.int64 or rows.dim() != 1 or rows.numel() == 0:
            raise MosaicValueError(
                f"rows must be a non-empty 1-D int64 tensor of node ids, got {rows.dtype} "
                f"shape {tuple(rows.shape)}"
            )
        if rows.device != X.device:
            raise MosaicValueError(f"rows are on {rows.device}, but X is on {X.device}")
        increasing = rows[1:] > rows[:-1]
        # One check (one device sync) on the good path; the message is worked out only on error.
        if bool((rows[0] >= 0) & (rows[-1] < n) & increasing.all()):
            return rows
        values = rows.tolist()
        outside = [r for r in values if not 0 <= r < n]
        if outside:
            raise MosaicValueError(f"row {outside[0]} is out of range for {n} nodes")
        k = int((~increasing).nonzero()[0, 0]) + 1
        what = "appears twice" if values[k] == values[k - 1] else f"follows {values[k - 1]}"
        raise MosaicValueError(
            f"rows must be distinct node ids in ascending order; row {values[k]} {what}"
        )

    def apply(self, X: torch.Tensor, G: torch.Tensor) -> None:
        """The optimizer step of all rows with gradients ``G`` (which it may overwrite)."""
        self.optimizer.step(X, G)

    def state_dict(self) -> dict[str, Any]:
        """A CPU copy of the optimizer state (``{"momentum_buffer": M or None}`` for SGD)."""
        return self.optimizer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; checked first (MosaicValueError), nothing changes on error."""
        self.optimizer.load_state_dict(state)


def _leaves(views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Fresh autograd leaves sharing memory with X: no copy in, gradients come out per tensor.
    return {k: v.detach().requires_grad_(True) for k, v in views.items()}
