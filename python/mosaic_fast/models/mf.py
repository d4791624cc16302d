"""Matrix factorisation for ratings: prediction = <p_u, q_i> (+ b_u + b_i + global mean), MSE loss."""

from __future__ import annotations

import math

import torch
from torch import nn

from .layout import ParamLayout
from .spec import ModelSpec, seeded_module


class MatrixFactorization(nn.Module):
    """Reference module. ``forward(users, items)``: int64 (B,), (B,) -> predicted ratings float32 (B,)."""

    def __init__(self, n_users: int, n_items: int, dim: int, biases: bool, mean: float) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.biases = biases
        self.mean = mean if biases else 0.0
        if biases:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            for emb in (self.user, self.item):
                nn.init.normal_(emb.weight, 0.0, 0.1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        else:
            # Without an offset the dot product itself must produce ratings: start it near the
            # global mean (uniform factors in [0, a] give E<p, q> = dim * a^2 / 4 = mean).
            a = 2.0 * math.sqrt(max(mean, 1e-3) / dim)
            for emb in (self.user, self.item):
                nn.init.uniform_(emb.weight, 0.0, a)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        pred: torch.Tensor = (self.user(users) * self.item(items)).sum(-1)
        if self.biases:
            pred = pred + self.user_bias(users)[:, 0] + self.item_bias(items)[:, 0] + self.mean
        return pred


class MatrixFactorizationSpec(ModelSpec):
    """Row layout: user table (U, dim), item table (I, dim)[, user bias (U, 1), item bias (I, 1)]."""

    metric = "rmse"

    def __init__(
        self, n_users: int, n_items: int, *, dim: int = 20, biases: bool = False, mean: float = 0.0
    ) -> None:
        self.name = "mf"
        self.n_users, self.n_items, self.dim, self.biases, self.mean = (
            n_users,
            n_items,
            dim,
            biases,
            float(mean),
        )
        shapes: list[tuple[int, ...]] = [(n_users, dim), (n_items, dim)]
        names = ["user.weight", "item.weight"]
        if biases:
            shapes += [(n_users, 1), (n_items, 1)]
            names += ["user_bias.weight", "item_bias.weight"]
        self.layout = ParamLayout(tuple(names), tuple(shapes))
        self.offset = self.mean if biases else 0.0

    def module(self, seed: int = 0) -> nn.Module:
        return seeded_module(
            lambda: MatrixFactorization(
                self.n_users, self.n_items, self.dim, self.biases, self.mean
            ),
            seed,
        )

    def gather(
        self, X: torch.Tensor, nodes: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Rows used by ratings (nodes[j], users[j], items[j]) (int64, any equal shapes S).

        Returns (p, q, b_u, b_i): float32 (*S, dim), (*S, dim), (*S,), (*S,) (biases None without biases).
        """
        V = self.layout.node_views(X)
        p = V["user.weight"][nodes, users]
        q = V["item.weight"][nodes, items]
        if not self.biases:
            return p, q, None, None
        return p, q, V["user_bias.weight"][nodes, users, 0], V["item_bias.weight"][nodes, items, 0]

    def predict(
        self, X: torch.Tensor, nodes: torch.Tensor, users: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """Predicted ratings float32 (*S,) of node models ``X[nodes]`` (X float32 (n, n_params))."""
        p, q, bu, bi = self.gather(X, nodes, users, items)
        pred = (p * q).sum(-1)
        if bu is not None and bi is not None:  # the model has biases
            pred = pred + bu + bi + self.offset
        return pred

    def flat_index(
        self, name: str, nodes: torch.Tensor, rows: torch.Tensor, width: int
    ) -> torch.Tensor:
        """Flat indices into ``X.view(-1)`` of row ``rows`` of table ``name`` of node ``nodes``: (*S, width)."""
        start: int = self.layout.slice(name).start
        base = nodes * self.n_params + start + rows * width
        return base.unsqueeze(-1) + torch.arange(width, device=rows.device)
