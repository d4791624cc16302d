"""Rating prediction (MovieLens): matrix factorisation, each node owns a block of users (RMSE)."""

from __future__ import annotations

import numpy as np
import torch

from ..data import RatingsData, deal_groups
from ..device import add_rows_
from ..models import MatrixFactorizationSpec
from ..settings import ExperimentConfig
from .base import NodeData, NodeScores, Task


class RatingsNodeData(NodeData):
    """Node i trains on and is tested on the ratings of its own block of users (RMSE)."""

    def __init__(
        self,
        data: RatingsData,
        spec: MatrixFactorizationSpec,
        parts: list[np.ndarray],
        device: torch.device,
    ) -> None:
        self.spec, self.device = spec, device
        self.users = data.train_users.to(device)
        self.items = data.train_items.to(device)
        self.ratings = data.train_ratings.to(device)
        owner = np.full(data.n_users, -1, dtype=np.int64)
        train_users = data.train_users.numpy()
        for node, part in enumerate(parts):
            owner[train_users[part]] = node
        test_owner = owner[data.test_users.numpy()]
        self.n_nodes = len(parts)
        self.test_users = data.test_users.to(device)
        self.test_items = data.test_items.to(device)
        self.test_ratings = data.test_ratings.to(device)
        self.test_owner = torch.from_numpy(test_owner).to(device)
        self._owned = self.test_owner >= 0
        self.test_counts = (
            torch.bincount(self.test_owner[self._owned], minlength=self.n_nodes).cpu().numpy()
        )

    def batch(
        self, idx: np.ndarray | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """users, items int64 (n, B) and ratings float32 (n, B) of every node's minibatch."""
        i = self.indices(idx)
        return self.users[i], self.items[i], self.ratings[i]

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor) -> NodeScores:
        owner = self.test_owner[self._owned]
        pred = self.spec.predict(
            X, owner, self.test_users[self._owned], self.test_items[self._owned]
        )
        sq = (pred - self.test_ratings[self._owned]).double() ** 2
        sums = add_rows_(torch.zeros(self.n_nodes, dtype=torch.float64, device=X.device), owner, sq)
        counts = self.test_counts
        # Nodes without held-out ratings have no RMSE; they are left out of the node statistics.
        per_node = np.sqrt(sums.cpu().numpy()[counts > 0] / counts[counts > 0])
        mean = X.mean(0, keepdim=True)
        zeros = torch.zeros_like(self.test_users)
        avg_pred = self.spec.predict(mean, zeros, self.test_users, self.test_items)
        avg = torch.sqrt(((avg_pred - self.test_ratings).double() ** 2).mean())
        return NodeScores(per_node, float(avg))


class RatingsTask(Task[MatrixFactorizationSpec]):
    """Explicit ratings (user, item, rating), split over nodes by user."""

    name = "ratings"
    strategies = ("sparse",)
    data: RatingsData

    def model_spec(self, cfg: ExperimentConfig) -> MatrixFactorizationSpec:
        return MatrixFactorizationSpec(
            self.data.n_users,
            self.data.n_items,
            dim=cfg.embedding_dim,
            biases=cfg.mf_biases,
            mean=self.data.rating_mean,
        )

    @property
    def partitions(self) -> tuple[str, ...]:
        return ("natural",)

    def _unavailable(self, partition: str) -> str:
        return "ratings are split by user"

    def _split(self, cfg: ExperimentConfig, partition: str) -> list[np.ndarray]:
        return deal_groups(self.data.train_users.numpy(), cfg.nodes)

    @classmethod
    def default_strategy(cls, device: torch.device) -> str:
        return "sparse"

    def node_data(
        self,
        cfg: ExperimentConfig,
        spec: MatrixFactorizationSpec,
        parts: list[np.ndarray],
        device: torch.device,
        strategy: str,
    ) -> RatingsNodeData:
        return RatingsNodeData(self.data, spec, parts, device)
