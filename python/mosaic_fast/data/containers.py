"""The two in-memory dataset containers every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import MosaicValueError


def _check_len(name: str, what: str, n: int, other: int) -> None:
    if n != other:
        raise MosaicValueError(f"{name}: {what} has {n} rows but expected {other}")


# eq=False: tensors have no total equality, and identity is what the per-process cache hands out.
@dataclass(frozen=True, eq=False)
class ClassificationData:
    """A classification dataset (images or character sequences), train and test.

    Attributes:
        name: dataset name, e.g. ``"cifar10"``.
        x_train, x_test: float32 ``(N, C, H, W)`` normalised images, or int64 ``(N, 80)`` character
            ids for Shakespeare (see :mod:`mosaic_fast.data.shakespeare` for the vocabulary).
        y_train, y_test: int64 ``(N,)`` class ids, or int64 ``(N, 80)`` next-character ids when
            ``sequence_targets`` is True (padding positions hold ``shakespeare.PAD_ID``).
        num_classes: 10 / 100, or the vocabulary size for Shakespeare.
        groups_train, groups_test: int64 ``(N,)`` natural group (Shakespeare role) of each sample,
            numbered consistently between train and test; None when the dataset has none.
        sequence_targets: True when ``y`` is a ``(N, 80)`` sequence of targets.

    Loaders cache instances per process and share them: treat the tensors as read-only.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    groups_train: np.ndarray | None
    groups_test: np.ndarray | None
    sequence_targets: bool = False

    def __post_init__(self) -> None:
        _check_len(self.name, "y_train", len(self.y_train), len(self.x_train))
        _check_len(self.name, "y_test", len(self.y_test), len(self.x_test))
        if self.groups_train is not None:
            _check_len(self.name, "groups_train", len(self.groups_train), len(self.x_train))
        if self.groups_test is not None:
            _check_len(self.name, "groups_test", len(self.groups_test), len(self.x_test))

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)


@dataclass(frozen=True, eq=False)
class RatingsData:
    """Explicit-feedback ratings (MovieLens), split per user into train and test.

    Attributes:
        n_users, n_items: user and item ids are re-indexed to ``0..n-1`` (sorted original ids).
        train_users, train_items: int64 ``(M,)``; train_ratings: float32 ``(M,)``.
        test_users, test_items: int64 ``(T,)``; test_ratings: float32 ``(T,)``.
        rating_mean: mean of ``train_ratings``.

    Every user has at least one train rating. Treat the tensors as read-only (cached, shared).
    """

    name: str
    n_users: int
    n_items: int
    train_users: torch.Tensor
    train_items: torch.Tensor
    train_ratings: torch.Tensor
    test_users: torch.Tensor
    test_items: torch.Tensor
    test_ratings: torch.Tensor
    rating_mean: float

    def __post_init__(self) -> None:
        m = len(self.train_users)
        _check_len(self.name, "train_items", len(self.train_items), m)
        _check_len(self.name, "train_ratings", len(self.train_ratings), m)
        t = len(self.test_users)
        _check_len(self.name, "test_items", len(self.test_items), t)
        _check_len(self.name, "test_ratings", len(self.test_ratings), t)

    @property
    def n_train(self) -> int:
        return len(self.train_ratings)

    @property
    def n_test(self) -> int:
        return len(self.test_ratings)
