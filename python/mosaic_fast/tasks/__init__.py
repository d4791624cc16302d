"""Learning tasks, one per kind of data: image classification, next-character prediction, ratings.

``task_for(data)`` picks the task of a loaded dataset; a :class:`Task` then declares the model,
the partitions, the per-node batches, the evaluation and the default trainer strategy.
"""

from __future__ import annotations

from typing import Any

from ..data import ClassificationData, RatingsData
from ..errors import MosaicTypeError
from .base import NodeData, NodeScores, Task
from .classification import ClassificationNodeData, ClassificationTask, ImageClassificationTask
from .next_character import NextCharacterTask
from .ratings import RatingsNodeData, RatingsTask

__all__ = [
    "ClassificationNodeData",
    "ClassificationTask",
    "ImageClassificationTask",
    "NextCharacterTask",
    "NodeData",
    "NodeScores",
    "RatingsNodeData",
    "RatingsTask",
    "Task",
    "task_for",
]


def task_for(data: Any) -> Task[Any]:
    """The task of a container from :func:`mosaic_fast.data.load_dataset`.

    ``RatingsData`` is rating prediction; ``ClassificationData`` is image classification when it
    holds images (floating point) and next-character prediction when it holds character ids.
    """
    if isinstance(data, RatingsData):
        return RatingsTask(data)
    if isinstance(data, ClassificationData):
        if data.x_train.is_floating_point():
            return ImageClassificationTask(data)
        return NextCharacterTask(data)
    raise MosaicTypeError(
        f"no task for data of type {type(data).__name__}; expected ClassificationData or RatingsData"
    )
