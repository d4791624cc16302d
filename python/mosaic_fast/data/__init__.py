"""Datasets and partitioners.

``load_dataset(name)`` returns a :class:`ClassificationData` (Fashion-MNIST, CIFAR-10/100,
Shakespeare) or a :class:`RatingsData` (MovieLens) from a local copy or a checksummed download;
:mod:`mosaic_fast.data.partition` splits the training set over nodes. Downloads, checksums and
the parsing of Fashion-MNIST and CIFAR are torchvision's (``torchvision.datasets``); the loaders
turn its output into the containers and its errors into one-line ones.
"""

from __future__ import annotations

from .containers import ClassificationData, RatingsData
from .partition import deal_group_ids, deal_groups, partition_classes
from .registry import clear_cache, dataset_names, load_dataset, locate_dataset

__all__ = [
    "ClassificationData",
    "RatingsData",
    "clear_cache",
    "dataset_names",
    "deal_group_ids",
    "deal_groups",
    "load_dataset",
    "locate_dataset",
    "partition_classes",
]
