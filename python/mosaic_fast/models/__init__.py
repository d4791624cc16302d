"""Model specs: parameter layout in the flat per-node row, seeded init, batched functional forwards."""

from __future__ import annotations

from .classifier import ClassifierSpec
from .gn_lenet import GNLeNet, GNLeNetSpec
from .layout import ParamLayout
from .lstm import LSTMSpec, StackedLSTM
from .mf import MatrixFactorization, MatrixFactorizationSpec
from .spec import ModelSpec

__all__ = [
    "ClassifierSpec",
    "GNLeNet",
    "GNLeNetSpec",
    "LSTMSpec",
    "MatrixFactorization",
    "MatrixFactorizationSpec",
    "ModelSpec",
    "ParamLayout",
    "StackedLSTM",
]
