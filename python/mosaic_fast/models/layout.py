"""Where each parameter tensor of a model lives inside the flat per-node row of ``X``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from math import prod

import torch
from torch import nn


@dataclass(frozen=True)
class ParamLayout:
    """Named parameter tensors packed back to back (in this order) into one flat float32 row.

    ``names[j]`` has shape ``shapes[j]`` and occupies ``row[offsets[j] : offsets[j] + sizes[j]]``.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of_module(cls, module: nn.Module) -> ParamLayout:
        """The layout of ``module.named_parameters()`` in registration order."""
        named = list(module.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(p.shape) for _, p in named))

    @cached_property
    def sizes(self) -> tuple[int, ...]:
        return tuple(prod(s) for s in self.shapes)

    @cached_property
    def offsets(self) -> tuple[int, ...]:
        out, acc = [], 0
        for size in self.sizes:
            out.append(acc)
            acc += size
        return tuple(out)

    @property
    def n_params(self) -> int:
        return sum(self.sizes)

    def layer_sizes(self) -> list[int]:
        """Size of every parameter tensor, in row order (for the per-layer random fragmenter)."""
        return list(self.sizes)

    def slice(self, name: str) -> slice:
        j = self.names.index(name)
        return slice(self.offsets[j], self.offsets[j] + self.sizes[j])

    def row_views(self, row: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views (no copies) of one flat row, shape (n_params,), as the named parameter tensors."""
        return {
            n: row[o : o + s].view(shape)
            for n, o, s, shape in zip(
                self.names, self.offsets, self.sizes, self.shapes, strict=True
            )
        }

    def node_views(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of all rows of ``X`` (float32, shape (n, n_params)): name -> (n, *shape)."""
        n = X.shape[0]
        return {
            name: X[:, o : o + s].view(n, *shape)
            for name, o, s, shape in zip(
                self.names, self.offsets, self.sizes, self.shapes, strict=True
            )
        }

    def flatten_module(self, module: nn.Module) -> torch.Tensor:
        """The parameters of ``module`` (which must have this layout) as one float32 row (n_params,)."""
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1).float() for n in self.names])
