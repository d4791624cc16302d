"""Classification: every node is scored by its accuracy on the same (sub)sampled global test set.

:class:`ImageClassificationTask` trains GN-LeNet on images; the next-character task reuses the
partitioning and evaluation defined here with an LSTM.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from ..data import ClassificationData, deal_groups, partition_classes
from ..errors import MosaicValueError
from ..models import ClassifierSpec, GNLeNetSpec
from ..settings import ExperimentConfig
from .base import NodeData, NodeScores, Task

TEST_SUBSET_SEED = 0x7E57  # the same test subsample for every run, whatever its seed
EVAL_PAIRS = 1024  # (node, sample) pairs per batched evaluation forward: bounds activation memory
EVAL_CHUNK = 64  # samples per one-node evaluation forward (measured: 1.8x faster than 512 on CPU)
EVAL_NODES = 64  # nodes per batched evaluation forward
LABEL_PARTITIONS = ("iid", "dirichlet", "shards")


def test_subset(n_test: int, test_samples: int | None) -> np.ndarray:
    """The test rows every node is scored on: all, or a fixed sorted subsample of
    ``test_samples`` (the same for every run, whatever its seed)."""
    if test_samples is None or test_samples >= n_test:
        return np.arange(n_test)
    rng = np.random.default_rng(TEST_SUBSET_SEED)
    return np.sort(rng.choice(n_test, test_samples, replace=False))


class ClassificationNodeData(NodeData):
    """Node data live on ``device``; every node is tested on the same (sub)sampled global test set.

    ``batched_eval`` scores many nodes per forward through ``spec.batched_logits`` (what the
    ``batched`` trainer uses); otherwise each node runs its own forwards.
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        data: ClassificationData,
        spec: ClassifierSpec,
        device: torch.device,
        batched_eval: bool,
    ) -> None:
        self.spec, self.device, self.batched_eval = spec, device, batched_eval
        self.x_train = data.x_train.to(device)
        self.y_train = data.y_train.to(device)
        index = torch.from_numpy(test_subset(len(data.y_test), cfg.test_samples))
        self.x_test = data.x_test[index].to(device)
        self.y_test = data.y_test[index].to(device)

    def batch(self, idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-node minibatch from global indices int64 (n, B): x (n, B, ...), y (n, B[, T])."""
        i = self.indices(idx)
        return self.x_train[i], self.y_train[i]

    @torch.no_grad()
    def sample_hits(self, X: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row of X (float32 (m, d)) scored on the test set: correct predictions per row
        int64 (m,), per test sample correct predictions summed over the rows int64 (N,), and
        counted targets per test sample int64 (N,) (1 per image; a sequence's unpadded ones)."""
        spec, m = self.spec, X.shape[0]
        N = len(self.y_test)
        hits = torch.zeros(m, dtype=torch.int64, device=X.device)
        sample_hits = torch.zeros(N, dtype=torch.int64, device=X.device)
        sample_counts = torch.zeros(N, dtype=torch.int64, device=X.device)
        if self.batched_eval:
            group = min(m, EVAL_NODES)
            for a in range(0, m, group):
                rows = X[a : a + group]
                P = spec.layout.node_views(rows)
                chunk = max(1, EVAL_PAIRS // rows.shape[0])
                for s in range(0, N, chunk):
                    x, y = self.x_test[s : s + chunk], self.y_test[s : s + chunk]
                    y = y.expand(rows.shape[0], *y.shape)
                    h, c = spec.correct_per_sample(spec.batched_logits(P, x), y)
                    hits[a : a + group] += h.sum(-1)
                    sample_hits[s : s + chunk] += h.sum(0)
                    sample_counts[s : s + chunk] = c[0]
        else:
            for i in range(m):
                params = spec.layout.row_views(X[i])
                for s in range(0, N, EVAL_CHUNK):
                    x, y = self.x_test[s : s + EVAL_CHUNK], self.y_test[s : s + EVAL_CHUNK]
                    h, c = spec.correct_per_sample(spec.logits(params, x), y)
                    hits[i] += h.sum()
                    sample_hits[s : s + EVAL_CHUNK] += h
                    sample_counts[s : s + EVAL_CHUNK] = c
        return hits.cpu().numpy(), sample_hits.cpu().numpy(), sample_counts.cpu().numpy()

    def _accuracy(self, X: torch.Tensor) -> tuple[np.ndarray, float]:
        """Accuracy of every row of X float64 (m,), and the standard error of their mean that
        comes from testing on a finite (sub)sample."""
        hits, sample_hits, sample_counts = self.sample_hits(X)
        total = int(sample_counts.sum())
        per_row = hits.astype(np.float64) / max(total, 1)
        se = mean_standard_error(sample_hits / X.shape[0], sample_counts.astype(np.float64))
        return per_row, se

    def evaluate(self, X: torch.Tensor) -> NodeScores:
        if X.shape[0] > 1 and bool((X == X[0]).all()):  # say round 0: one model, scored once
            first, se = self._accuracy(X[:1])
            per_node = np.repeat(first, X.shape[0])
        else:
            per_node, se = self._accuracy(X)
        avg, _ = self._accuracy(X.mean(0, keepdim=True))
        return NodeScores(per_node, float(avg[0]), node_mean_se=se)


def mean_standard_error(hits: np.ndarray, counts: np.ndarray) -> float:
    """Standard error, over test samples drawn at random, of the ratio sum(hits) / sum(counts).

    ``hits``: correct predictions per test sample averaged over the rows, ``counts``: targets per
    sample (1 for an image, the unpadded characters of a sequence). The usual ratio-estimator
    (delta-method) formula; for images it is std(hits, ddof=1) / sqrt(N).
    """
    N, total = len(counts), counts.sum()
    if N < 2 or total == 0:
        return float("nan")
    ratio = hits.sum() / total
    residual = hits - ratio * counts
    return float(np.sqrt(N / (N - 1) * np.sum(residual**2)) / total)


class ClassificationTask(Task[ClassifierSpec]):
    """What image and next-character classification share: splits by label or group, accuracy."""

    strategies: ClassVar[tuple[str, ...]] = ("loop", "vmap", "batched")
    data: ClassificationData

    @property
    def partitions(self) -> tuple[str, ...]:
        natural = ("natural",) if self.data.groups_train is not None else ()
        return natural + LABEL_PARTITIONS

    def _unavailable(self, partition: str) -> str:
        return "it has no natural groups"  # label partitions are always available

    def _split(self, cfg: ExperimentConfig, partition: str) -> list[np.ndarray]:
        if partition == "natural":
            groups = self.data.groups_train
            assert groups is not None  # "natural" is one of `partitions` only with groups
            return deal_groups(groups, cfg.nodes)
        labels = self.data.y_train.numpy()
        if labels.ndim > 1:  # sequence targets split iid: any per-sample label will do
            labels = labels[:, -1]
        return partition_classes(
            labels,
            cfg.nodes,
            method=partition,
            alpha=cfg.alpha,
            shards_per_node=cfg.shards_per_node,
            seed=cfg.seed,
        )

    @classmethod
    def default_strategy(cls, device: torch.device) -> str:
        # Measured: one autograd pass per node beats vmap and grouped kernels on CPU.
        return "batched" if device.type == "cuda" else "loop"

    def node_data(
        self,
        cfg: ExperimentConfig,
        spec: ClassifierSpec,
        parts: list[np.ndarray],
        device: torch.device,
        strategy: str,
    ) -> ClassificationNodeData:
        return ClassificationNodeData(cfg, self.data, spec, device, strategy == "batched")


class ImageClassificationTask(ClassificationTask):
    """Images float32 (N, C, S, S) with one class each, learnt by GN-LeNet."""

    name = "image classification"

    def model_spec(self, cfg: ExperimentConfig) -> GNLeNetSpec:
        _, c, h, w = self.data.x_train.shape
        if h != w:
            raise MosaicValueError(f"GN-LeNet needs square images, got {h}x{w} in {cfg.dataset}")
        return GNLeNetSpec(c, h, self.data.num_classes)
