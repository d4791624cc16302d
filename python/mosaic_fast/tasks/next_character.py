"""Next-character prediction (Shakespeare): character ids int64 (N, T) learnt by the stacked LSTM.

Targets are the single next character (N,), or with ``sequence_targets`` the next character at
every position (N, T) where padding targets are ignored by loss and accuracy.
"""

from __future__ import annotations

from ..data.shakespeare import PAD_ID
from ..models import LSTMSpec
from ..settings import ExperimentConfig
from .classification import ClassificationTask


class NextCharacterTask(ClassificationTask):
    name = "next-character"

    @property
    def partitions(self) -> tuple[str, ...]:
        if not self.data.sequence_targets:
            return super().partitions
        # Label partitions need one class per sample; a sequence of targets has many.
        natural = ("natural",) if self.data.groups_train is not None else ()
        return natural + ("iid",)

    def _unavailable(self, partition: str) -> str:
        if partition == "natural":
            return super()._unavailable(partition)
        return "label-based splits need one class per sample, not a sequence of targets"

    def model_spec(self, cfg: ExperimentConfig) -> LSTMSpec:
        pad = PAD_ID if self.data.sequence_targets else None
        return LSTMSpec(
            self.data.num_classes, sequence_targets=self.data.sequence_targets, pad_index=pad
        )
