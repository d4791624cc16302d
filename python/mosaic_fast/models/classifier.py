"""Shared pieces of the classification specs (GN-LeNet, LSTM): losses and accuracy counts."""

from __future__ import annotations

from abc import abstractmethod

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .layout import ParamLayout
from .spec import ModelSpec


class ClassifierSpec(ModelSpec):
    """A classifier whose logits are (B, C), or (B, T, C) with ``sequence_targets``.

    Targets: int64 (B,), or (B, T) when ``sequence_targets``; positions whose target equals
    ``pad_index`` are ignored by the loss and by accuracy.
    """

    metric = "accuracy"
    sequence_targets: bool
    pad_index: int | None
    num_classes: int

    @staticmethod
    def _layout_of(module: nn.Module) -> ParamLayout:
        return ParamLayout.of_module(module)

    @abstractmethod
    def template(self) -> nn.Module:
        """A module of this architecture whose parameters are replaced in ``functional_call``.

        Built with seeded init (its values are never used) so that making a spec leaves torch's
        global RNG alone: nothing in a run draws from it, and checkpoints need not hold it."""

    def logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """One node: ``params`` name -> tensor of the layout's shape; x (B, ...) -> logits."""
        logits: torch.Tensor = functional_call(self.template(), params, (x,))
        return logits

    @abstractmethod
    def batched_logits(self, P: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """All nodes at once: ``P`` name -> (n, *shape); x per node (n, B, ...) or shared (B, ...).

        Returns logits (n, B, C), or (n, B, T, C) with ``sequence_targets``."""

    def _ignore(self) -> int:
        return -100 if self.pad_index is None else self.pad_index

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy per leading index: logits (..., B, [T,] C), y (..., B, [T]) -> (...)."""
        lead = logits.shape[: y.dim() - (2 if self.sequence_targets else 1)]
        flat = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            y.reshape(-1),
            ignore_index=self._ignore(),
            reduction="none",
        ).view(*lead, -1)
        if self.pad_index is None:
            return flat.mean(-1)
        valid = (y != self.pad_index).reshape(*lead, -1)
        return flat.sum(-1) / valid.sum(-1).clamp_min(1)

    def correct_per_sample(
        self, logits: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per leading index and sample: (correct predictions, counted targets), int64 (..., B).

        A sample is one image, or one sequence of ``sequence_targets`` (its unpadded characters)."""
        lead = logits.shape[: y.dim() - (1 if self.sequence_targets else 0)]
        hit = logits.argmax(-1) == y
        if self.pad_index is not None:
            valid = y != self.pad_index
            hit = hit & valid
            count = valid.reshape(*lead, -1).sum(-1)
        else:
            per = y.reshape(*lead, -1).shape[-1]
            count = torch.full(lead, per, dtype=torch.int64, device=y.device)
        return hit.reshape(*lead, -1).sum(-1), count

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per leading index: (number of correct predictions, number of counted targets), int64."""
        hits, counts = self.correct_per_sample(logits, y)
        return hits.sum(-1), counts.sum(-1)
