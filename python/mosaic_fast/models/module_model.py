"""Any ``torch.nn.Module`` as n node models: trainable parameters in the flat rows of X, the rest per node.

What lives where, for a module built by the user's factory:

- trainable parameters (``requires_grad``): packed into each node's row of X, gossiped and trained;
- floating-point buffers (BatchNorm running statistics): one copy per node, never gossiped, updated
  by each node's own forward passes; with ``gossip_buffers`` they are packed into the row after the
  parameters instead, and averaged with them (never touched by the optimizer);
- other buffers (``num_batches_tracked``): one copy per node;
- frozen parameters (``requires_grad=False``): one shared constant copy, never trained or sent;
- tied weights: one tensor in the row (``named_parameters`` lists it once), used under every name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ..errors import MosaicTypeError, MosaicValueError
from ..user_code import describe, first_line
from .layout import ParamLayout
from .spec import seeded_module

# The kernel averages float32: half-precision models would be silently up- and down-cast.
_REFUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float64)


def build_module(factory: Callable[[], Any], seed: int) -> nn.Module:
    """``factory()`` under torch's default initialisers seeded by ``seed``; checked to be a module."""
    if not callable(factory):
        raise MosaicTypeError(
            f"model must be a callable returning a torch.nn.Module, got {type(factory).__name__}"
        )
    try:
        module = seeded_module(factory, seed)
    except Exception as exc:
        raise MosaicValueError(
            f"model factory {describe(factory)} raised {first_line(exc)}"
        ) from None
    if not isinstance(module, nn.Module):
        raise MosaicTypeError(
            f"model factory {describe(factory)} returned {type(module).__name__}, "
            "not a torch.nn.Module"
        )
    return module


class ModuleModel:
    """A user's module replicated over ``n_nodes`` nodes (see the module docstring).

    Attributes: ``layout`` (the row of X: trainable parameters, then gossiped buffers);
    ``n_trained`` (the first columns of the row, the ones the optimizer updates); ``buffers``
    (name -> per-node tensor (n, *shape) on the device, not gossiped); ``frozen`` (name -> shared
    tensor); ``template`` (the module whose tensors ``functional_call`` replaces).
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        seed: int,
        n_nodes: int,
        device: torch.device,
        *,
        gossip_buffers: bool = False,
    ) -> None:
        self.factory, self.n_nodes, self.device = factory, n_nodes, device
        module = build_module(factory, seed)
        self.name = type(module).__name__
        _check_dtypes(module)
        trained = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not trained:
            raise MosaicValueError(
                f"model {self.name} has no trainable parameters (every one has requires_grad=False)"
            )
        self.frozen = {
            n: p.detach().to(device) for n, p in module.named_parameters() if not p.requires_grad
        }
        float_buffers = [(n, b) for n, b in module.named_buffers() if b.is_floating_point()]
        gossiped = float_buffers if gossip_buffers else []
        row = trained + gossiped
        self.layout = ParamLayout(tuple(n for n, _ in row), tuple(tuple(t.shape) for _, t in row))
        self.n_trained = sum(p.numel() for _, p in trained)
        self.gossiped_buffers = tuple(n for n, _ in gossiped)
        self.buffers = {
            n: b.detach().to(device).expand(n_nodes, *b.shape).clone()
            for n, b in module.named_buffers()
            if n not in self.gossiped_buffers
        }
        self._initial_row = torch.cat([t.detach().reshape(-1).float() for _, t in row])
        self.template = module.to(device)
        self.forward_nodes = getattr(module, "forward_nodes", None)

    @property
    def n_params(self) -> int:
        return self.layout.n_params

    def init_params(self, seed: int | None = None) -> torch.Tensor:
        """The row every node starts from: float32 (n_params,), CPU; with ``seed``, the row of a
        fresh ``factory()`` seeded by it (a node's own draw under ``init='per-node'``)."""
        if seed is None:
            return self._initial_row.clone()
        module = build_module(self.factory, seed)
        tensors = dict(module.named_parameters()) | dict(module.named_buffers())
        return torch.cat([tensors[n].detach().reshape(-1).float() for n in self.layout.names])

    def node_tensors(self, X: torch.Tensor, i: int) -> dict[str, torch.Tensor]:
        """Node ``i``'s tensors for ``functional_call``: views of its row and buffers, frozen ones."""
        out = self.layout.row_views(X[i])
        out.update({n: b[i] for n, b in self.buffers.items()})
        out.update(self.frozen)
        return out

    def all_tensors(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every node's tensors, name -> (n, *shape) (frozen ones are shared, without the n axis)."""
        out = self.layout.node_views(X)
        out.update(self.buffers)
        return out

    @contextlib.contextmanager
    def buffers_of(self, rows: torch.Tensor) -> Iterator[None]:
        """While held, ``buffers`` holds only nodes ``rows``' buffers (m, *shape), gathered in the
        order of ``rows`` (int64, distinct), so that code indexing nodes 0..m-1 reaches them; on
        a normal exit they are scattered back into the full (n, *shape) buffers. On an error the
        full buffers are restored unchanged."""
        full = self.buffers
        gathered = {n: b.index_select(0, rows) for n, b in full.items()}
        self.buffers = gathered
        try:
            yield
        finally:
            self.buffers = full
        for n, b in full.items():
            b.index_copy_(0, rows, gathered[n])

    def forward(self, tensors: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """One node's outputs for inputs ``x`` with ``tensors`` in place of the module's own."""
        out: torch.Tensor = functional_call(self.template, tensors, (x,))
        return out

    def train(self, mode: bool = True) -> None:
        """Training mode (BatchNorm uses batch statistics and updates running ones) or eval mode."""
        self.template.train(mode)

    def node_module(self, X: torch.Tensor, i: int) -> nn.Module:
        """A standalone module holding node ``i``'s parameters and buffers (CPU, eval mode)."""
        module = build_module(self.factory, 0)
        state = {n: t.detach().to("cpu", copy=True) for n, t in self.node_tensors(X, i).items()}
        module.load_state_dict(state, strict=False)
        return module.eval()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Per-node buffers on CPU (what a checkpoint keeps besides X)."""
        return {n: b.detach().to("cpu", copy=True) for n, b in self.buffers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, checked first (MosaicValueError); nothing changes on error."""
        from .. import state_dicts as checked

        state = checked.entries(state, "buffers", list(self.buffers))
        loaded = {
            n: checked.tensor(state[n], f"buffers.{n}", b.dtype, tuple(b.shape))
            for n, b in self.buffers.items()
        }
        for n, b in self.buffers.items():
            b.copy_(loaded[n])


def _check_dtypes(module: nn.Module) -> None:
    for kind, named in (
        ("parameter", module.named_parameters()),
        ("buffer", module.named_buffers()),
    ):
        for name, tensor in named:
            if tensor.dtype in _REFUSED_DTYPES:
                raise MosaicTypeError(
                    f"model {kind} {name!r} is {tensor.dtype}; mosaic-fast trains and averages "
                    "float32 models: build the model in float32"
                )
            if tensor.is_complex():
                raise MosaicTypeError(f"model {kind} {name!r} is complex ({tensor.dtype})")
