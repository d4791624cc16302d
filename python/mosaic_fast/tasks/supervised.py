"""Learning with any ``torch.nn.Module`` on any (inputs, targets) data: the public API's task.

Data comes as torch Datasets or ``(inputs, targets)`` tensor pairs; the built-in image and
character datasets convert too. Integer targets mean classification (cross-entropy, accuracy),
floating-point targets regression (mean squared error, RMSE), unless ``loss`` and ``metric`` say
otherwise. Every node is scored on the same (sub)sampled test set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import ClassificationData, RatingsData, partition_classes
from ..errors import MosaicTypeError, MosaicValueError
from ..models.module_model import ModuleModel
from ..user_code import describe, first_line
from .base import NodeData, NodeScores
from .classification import EVAL_PAIRS, test_subset

# Built-in metrics: name -> lower is better.
METRICS = {"accuracy": False, "rmse": True, "mse": True, "mae": True}


@dataclass(frozen=True, eq=False)
class SupervisedData:
    """Train and test (inputs, targets) tensors; row i of inputs goes with row i of targets."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def classification(self) -> bool:
        return not self.y_train.is_floating_point()


def as_tensors(data: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, targets)`` tensors from a pair of tensors/arrays or a map-style torch Dataset.

    A Dataset's items must be ``(input, target)`` pairs; they are stacked once, in index order.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = _tensor(data[0], f"{what} inputs"), _tensor(data[1], f"{what} targets")
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        x, y = _stack_dataset(data, what)
    else:
        raise MosaicTypeError(
            f"{what} must be a torch Dataset or an (inputs, targets) pair, got {type(data).__name__}"
        )
    if len(x) != len(y):
        raise MosaicValueError(f"{what}: inputs have {len(x)} rows but targets have {len(y)}")
    if len(x) == 0:
        raise MosaicValueError(f"{what} is empty")
    if x.is_floating_point() and x.dtype != torch.float32:
        x = x.float()
    if y.is_floating_point() and y.dtype != torch.float32:
        y = y.float()
    elif not y.is_floating_point():
        if y.dtype == torch.bool or y.is_complex():
            raise MosaicTypeError(f"{what} targets must be integers or floats, got {y.dtype}")
        y = y.long()
    return x, y


def _tensor(value: Any, what: str) -> torch.Tensor:
    try:
        return value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError) as exc:
        raise MosaicTypeError(f"{what} cannot be made a tensor: {exc}") from None


def _stack_dataset(dataset: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise MosaicTypeError(
                f"{what}[{i}] is a {type(item).__name__}; a Dataset must yield (input, target) pairs"
            )
        xs.append(_tensor(item[0], f"{what}[{i}] input"))
        ys.append(_tensor(item[1], f"{what}[{i}] target"))
    try:
        return torch.stack(xs), torch.stack(ys)
    except RuntimeError as exc:
        raise MosaicValueError(f"{what}: items differ in shape ({exc})") from None


def supervised_data(train: Any, test: Any, name: str) -> SupervisedData:
    """User data (see :func:`as_tensors`) or a built-in container as :class:`SupervisedData`."""
    if isinstance(train, RatingsData):
        raise MosaicValueError(
            f"{train.name} holds ratings, not (inputs, targets); use it with model='mf'"
        )
    if isinstance(train, ClassificationData):
        return SupervisedData(train.name, train.x_train, train.y_train, train.x_test, train.y_test)
    if test is None:
        raise MosaicValueError("test data is missing: pass test= (a Dataset or (inputs, targets))")
    x_train, y_train = as_tensors(train, "train")
    x_test, y_test = as_tensors(test, "test")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise MosaicValueError(
            f"train inputs are {tuple(x_train.shape[1:])} per sample but test inputs "
            f"{tuple(x_test.shape[1:])}"
        )
    if y_train.is_floating_point() != y_test.is_floating_point():
        raise MosaicValueError(f"train targets are {y_train.dtype} but test targets {y_test.dtype}")
    return SupervisedData(name, x_train, y_train, x_test, y_test)


def split(
    data: SupervisedData,
    partition: str | Sequence[Any],
    n_nodes: int,
    *,
    alpha: float | None,
    shards_per_node: int,
    seed: int,
) -> list[np.ndarray]:
    """Train indices per node: by label (``iid``, ``dirichlet``, ``shards``) or as the user gave them."""
    if not isinstance(partition, str):
        return checked_partition(partition, n_nodes, len(data.y_train))
    if partition == "natural":
        raise MosaicValueError(
            f"partition='natural' needs natural groups, which {data.name} does not have; "
            "choose iid, dirichlet or shards, or pass one index array per node"
        )
    labels = data.y_train.numpy()
    if partition != "iid" and (data.y_train.is_floating_point() or labels.ndim != 1):
        raise MosaicValueError(
            f"partition={partition!r} splits by class label, but {data.name}'s targets are not "
            "one class per sample; choose iid or pass one index array per node"
        )
    if labels.ndim != 1:
        labels = np.zeros(len(labels), dtype=np.int64)
    return partition_classes(
        labels.astype(np.int64, copy=False),
        n_nodes,
        method=partition,
        alpha=alpha,
        shards_per_node=shards_per_node,
        seed=seed,
    )


def checked_partition(parts: Sequence[Any], n_nodes: int, n_samples: int) -> list[np.ndarray]:
    """The user's partition (one index array per node): non-empty, in range, no sample twice."""
    if len(parts) != n_nodes:
        raise MosaicValueError(f"partition has {len(parts)} index arrays but nodes={n_nodes}")
    owner = np.full(n_samples, -1, dtype=np.int64)
    out = []
    for node, part in enumerate(parts):
        idx = np.asarray(part)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise MosaicTypeError(f"partition[{node}] must be a 1-D integer index array")
        if idx.size == 0:
            raise MosaicValueError(f"partition leaves node {node} with no training sample")
        bad = idx[(idx < 0) | (idx >= n_samples)]
        if bad.size:
            raise MosaicValueError(
                f"partition[{node}] holds index {int(bad[0])}, outside the {n_samples} training samples"
            )
        idx = idx.astype(np.int64)
        taken = owner[idx]
        if (taken >= 0).any() or len(np.unique(idx)) != len(idx):
            j = int(idx[taken >= 0][0]) if (taken >= 0).any() else _first_repeat(idx)
            other = int(owner[j]) if owner[j] >= 0 else node
            raise MosaicValueError(
                f"partition gives sample {j} to node {other} and to node {node}; "
                "every sample may belong to one node only"
            )
        owner[idx] = node
        out.append(np.sort(idx))
    return out


def _first_repeat(idx: np.ndarray) -> int:
    values, counts = np.unique(idx, return_counts=True)
    return int(values[counts > 1][0])


class LossMetric:
    """The loss that trains and the metric that scores, with their defaults for the targets."""

    def __init__(self, data: SupervisedData, loss: Callable[..., Any] | None, metric: Any) -> None:
        classification = data.classification
        self.loss = (
            loss if loss is not None else (F.cross_entropy if classification else F.mse_loss)
        )
        if not callable(self.loss):
            raise MosaicTypeError(
                f"loss must be callable (outputs, targets) -> scalar, got {loss!r}"
            )
        if metric is None:
            metric = "accuracy" if classification else "rmse"
        if isinstance(metric, str):
            if metric not in METRICS:
                raise MosaicValueError(
                    f"metric={metric!r} is not one of {', '.join(METRICS)}, or a callable"
                )
            if metric == "accuracy" and not classification:
                raise MosaicValueError("metric='accuracy' needs integer class targets")
            self.name, self.lower_is_better, self.fn = metric, METRICS[metric], None
        elif callable(metric):
            self.name, self.fn = describe(metric), metric
            self.lower_is_better = bool(getattr(metric, "lower_is_better", False))
        else:
            raise MosaicTypeError(
                f"metric must be a name ({', '.join(METRICS)}) or a callable, got {metric!r}"
            )


class SupervisedNodeData(NodeData):
    """Per-node minibatches of the training set and scores on the shared test set, for a ModuleModel."""

    def __init__(
        self,
        data: SupervisedData,
        model: ModuleModel,
        scoring: LossMetric,
        device: torch.device,
        test_samples: int | None,
    ) -> None:
        self.model, self.scoring, self.device = model, scoring, device
        self.x_train = data.x_train.to(device)
        self.y_train = data.y_train.to(device)
        index = torch.from_numpy(test_subset(len(data.y_test), test_samples))
        self.x_test = data.x_test[index].to(device)
        self.y_test = data.y_test[index].to(device)
        self.check_shapes()

    def batch(self, idx: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i = self.indices(idx)
        return self.x_train[i], self.y_train[i]

    @torch.no_grad()
    def check_shapes(self) -> None:
        """One forward of the initial model on two training samples: outputs fit the targets."""
        model, x, y = self.model, self.x_train[:2], self.y_train[:2]
        tensors: dict[str, torch.Tensor] = dict(model.template.named_parameters())
        tensors.update(model.template.named_buffers())
        model.train(False)
        try:
            out = model.forward({n: t.detach() for n, t in tensors.items()}, x)
        except Exception as exc:
            raise MosaicValueError(
                f"model {model.name} fails on inputs of shape {tuple(x.shape)}: {first_line(exc)}"
            ) from None
        if not isinstance(out, torch.Tensor):
            raise MosaicTypeError(
                f"model {model.name} returned {type(out).__name__}; it must return one tensor"
            )
        if y.is_floating_point() and out.shape != y.shape:
            raise MosaicValueError(
                f"model {model.name} outputs shape {tuple(out.shape)} for targets of shape "
                f"{tuple(y.shape)}; they must match for a regression loss"
            )
        try:
            value = self.scoring.loss(out, y)
        except Exception as exc:
            raise MosaicValueError(
                f"model {model.name} outputs shape {tuple(out.shape)} do not fit targets of shape "
                f"{tuple(y.shape)}: loss {describe(self.scoring.loss)} raised "
                f"{first_line(exc)}"
            ) from None
        if not isinstance(value, torch.Tensor) or value.numel() != 1:
            raise MosaicValueError(
                f"loss {describe(self.scoring.loss)} must return a scalar tensor (the batch mean)"
            )

    @torch.no_grad()
    def _scores(self, tensors_of: Callable[[int], dict[str, torch.Tensor]], m: int) -> np.ndarray:
        model, scoring = self.model, self.scoring
        model.train(False)
        out = np.empty(m)
        N = len(self.y_test)
        for i in range(m):
            tensors = tensors_of(i)
            outputs = [
                model.forward(tensors, self.x_test[s : s + EVAL_PAIRS])
                for s in range(0, N, EVAL_PAIRS)
            ]
            out[i] = _score(scoring, torch.cat(outputs), self.y_test, i)
        return out

    def evaluate(self, X: torch.Tensor) -> NodeScores:
        model = self.model
        per_node = self._scores(lambda i: model.node_tensors(X, i), X.shape[0])
        mean_row = X.mean(0, keepdim=True)
        average = model.node_tensors(mean_row, 0)
        for name, b in model.buffers.items():  # the average model's statistics: the nodes' mean
            average[name] = b.mean(0) if b.is_floating_point() else b[0]
        avg = self._scores(lambda i: average, 1)
        return NodeScores(per_node, float(avg[0]))


def _score(scoring: LossMetric, outputs: torch.Tensor, targets: torch.Tensor, node: int) -> float:
    if scoring.fn is not None:
        value = scoring.fn(outputs, targets)
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
    elif scoring.name == "accuracy":
        value = float((outputs.argmax(-1) == targets).double().mean())
    else:
        err = (outputs.double() - targets.double()).reshape(-1)
        if scoring.name == "mae":
            value = float(err.abs().mean())
        else:
            mse = float(err.square().mean())
            value = math.sqrt(mse) if scoring.name == "rmse" else mse
    if not math.isfinite(value):
        raise MosaicValueError(f"metric {scoring.name} returned {value} for node {node}")
    return value
