"""Turn a dataset and a config into what the simulation needs: model spec, node data, batches, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import ExperimentConfig
from ..errors import MosaicValueError
from ..models import ClassifierSpec, GNLeNetSpec, LSTMSpec, MatrixFactorizationSpec, ModelSpec

TEST_SUBSET_SEED = 0x7E57  # the same test subsample for every run, whatever its seed
EVAL_PAIRS = 1024  # (node, sample) pairs per evaluation forward: bounds activation memory
EVAL_NODES = 64  # nodes per batched evaluation forward


@dataclass(frozen=True)
class NodeScores:
    """Evaluation result: per-node metric float64 (n,), average-model metric (float)."""

    per_node: np.ndarray
    avg_model: float


def build_spec(cfg: ExperimentConfig, data: Any) -> ModelSpec:
    """The paper's model for the dataset: GN-LeNet (images), LSTM (Shakespeare), MF (MovieLens)."""
    if hasattr(data, "n_users"):
        return MatrixFactorizationSpec(
            data.n_users,
            data.n_items,
            dim=cfg.embedding_dim,
            biases=cfg.mf_biases,
            mean=data.rating_mean,
        )
    if data.x_train.dtype == torch.int64:
        pad = None
        if data.sequence_targets:
            from ..data.shakespeare import PAD_ID

            pad = PAD_ID
        return LSTMSpec(data.num_classes, sequence_targets=data.sequence_targets, pad_index=pad)
    _, c, h, w = data.x_train.shape
    if h != w:
        raise MosaicValueError(f"GN-LeNet needs square images, got {h}x{w} in {cfg.dataset}")
    return GNLeNetSpec(c, h, data.num_classes)


def partition(cfg: ExperimentConfig, data: Any) -> list[np.ndarray]:
    """Train sample indices of every node (int64 arrays, each non-empty)."""
    from ..data import deal_groups, partition_classes

    n = cfg.nodes
    if hasattr(data, "n_users"):
        if cfg.partition != "natural":
            raise MosaicValueError(
                f"partition={cfg.partition!r} is not available for {cfg.dataset}; ratings are split by user ('natural')"
            )
        return deal_groups(data.train_users.numpy(), n)
    if cfg.partition == "natural":
        if data.groups_train is None:
            raise MosaicValueError(
                f"partition='natural' needs natural groups, which {cfg.dataset} does not have"
            )
        return deal_groups(data.groups_train, n)
    if data.sequence_targets and cfg.partition != "iid":
        raise MosaicValueError(
            f"partition={cfg.partition!r} needs one class per sample; {cfg.dataset} supports 'natural' or 'iid'"
        )
    labels = data.y_train.numpy()
    if labels.ndim > 1:
        labels = labels[:, -1]
    return partition_classes(
        labels,
        n,
        method=cfg.partition,
        alpha=cfg.alpha,
        shards_per_node=cfg.shards_per_node,
        seed=cfg.seed,
    )


class ClassificationProblem:
    """Node data live on ``device``; every node is tested on the same (sub)sampled global test set."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        data: Any,
        spec: ClassifierSpec,
        device: torch.device,
        batched_eval: bool,
    ) -> None:
        self.spec, self.device, self.batched_eval = spec, device, batched_eval
        self.x_train = data.x_train.to(device)
        self.y_train = data.y_train.to(device)
        n_test = len(data.y_test)
        idx = np.arange(n_test)
        if cfg.test_samples is not None and cfg.test_samples < n_test:
            idx = np.sort(
                np.random.default_rng(TEST_SUBSET_SEED).choice(
                    n_test, cfg.test_samples, replace=False
                )
            )
        index = torch.from_numpy(idx)
        self.x_test = data.x_test[index].to(device)
        self.y_test = data.y_test[index].to(device)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-node minibatch from global indices int64 (n, B): x (n, B, ...), y (n, B[, T])."""
        i = torch.from_numpy(idx).to(self.device)
        return self.x_train[i], self.y_train[i]

    @torch.no_grad()
    def _accuracy(self, X: torch.Tensor) -> np.ndarray:
        """Accuracy of every row of X (float32 (m, d)) on the test set: float64 (m,)."""
        spec, m = self.spec, X.shape[0]
        hits = torch.zeros(m, dtype=torch.int64, device=X.device)
        counts = torch.zeros(m, dtype=torch.int64, device=X.device)
        N = len(self.y_test)
        if self.batched_eval:
            group = min(m, EVAL_NODES)
            for a in range(0, m, group):
                rows = X[a : a + group]
                P = spec.layout.node_views(rows)
                chunk = max(1, EVAL_PAIRS // rows.shape[0])
                for s in range(0, N, chunk):
                    x, y = self.x_test[s : s + chunk], self.y_test[s : s + chunk]
                    y = y.expand(rows.shape[0], *y.shape)
                    h, c = spec.correct(spec.batched_logits(P, x), y)
                    hits[a : a + group] += h
                    counts[a : a + group] += c
        else:
            for i in range(m):
                params = spec.layout.row_views(X[i])
                for s in range(0, N, EVAL_PAIRS):
                    x, y = self.x_test[s : s + EVAL_PAIRS], self.y_test[s : s + EVAL_PAIRS]
                    h, c = spec.correct(spec.logits(params, x), y)
                    hits[i] += h
                    counts[i] += c
        return (hits.double() / counts.clamp_min(1).double()).cpu().numpy()

    def evaluate(self, X: torch.Tensor) -> NodeScores:
        per_node = self._accuracy(X)
        avg = self._accuracy(X.mean(0, keepdim=True))
        return NodeScores(per_node, float(avg[0]))


class RatingsProblem:
    """Node i trains on and is tested on the ratings of its own block of users (RMSE)."""

    def __init__(
        self,
        data: Any,
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

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """users, items int64 (n, B) and ratings float32 (n, B) of every node's minibatch."""
        i = torch.from_numpy(idx).to(self.device)
        return self.users[i], self.items[i], self.ratings[i]

    @torch.no_grad()
    def evaluate(self, X: torch.Tensor) -> NodeScores:
        owner = self.test_owner[self._owned]
        pred = self.spec.predict(
            X, owner, self.test_users[self._owned], self.test_items[self._owned]
        )
        sq = (pred - self.test_ratings[self._owned]).double() ** 2
        sums = torch.zeros(self.n_nodes, dtype=torch.float64, device=X.device).index_add_(
            0, owner, sq
        )
        counts = self.test_counts
        # Nodes without held-out ratings have no RMSE; they are left out of the node statistics.
        per_node = np.sqrt(sums.cpu().numpy()[counts > 0] / counts[counts > 0])
        mean = X.mean(0, keepdim=True)
        zeros = torch.zeros_like(self.test_users)
        avg_pred = self.spec.predict(mean, zeros, self.test_users, self.test_items)
        avg = torch.sqrt(((avg_pred - self.test_ratings).double() ** 2).mean())
        return NodeScores(per_node, float(avg))
