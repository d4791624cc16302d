"""Datasets and partitioners.

``load_dataset(name)`` returns a :class:`ClassificationData` (Fashion-MNIST, CIFAR-10/100,
Shakespeare) or a :class:`RatingsData` (MovieLens) from a local copy or a checksummed download;
:mod:`mosaic_fast.data.partition` splits the training set over nodes. Downloads, checksums and
the parsing of Fashion-MNIST and CIFAR are torchvision's (``torchvision.datasets``); the loaders
turn its output into the containers and its errors into one-line ones.

A dataset is a loader plus a :class:`DatasetSpec` (:mod:`mosaic_fast.data.specs`, which also holds
the settings' per-dataset defaults), registered with :func:`register_dataset`. The names below
are imported on first use: the settings read the specs without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .containers import ClassificationData, RatingsData
    from .partition import deal_group_ids, deal_groups, partition_classes
    from .registry import clear_cache, load_dataset, locate_dataset
    from .specs import DatasetSpec, dataset_names, register_dataset

# Public name -> the submodule that defines it.
_HOMES = {
    "ClassificationData": "containers",
    "RatingsData": "containers",
    "deal_group_ids": "partition",
    "deal_groups": "partition",
    "partition_classes": "partition",
    "clear_cache": "registry",
    "load_dataset": "registry",
    "locate_dataset": "registry",
    "DatasetSpec": "specs",
    "dataset_names": "specs",
    "register_dataset": "specs",
}

__all__ = [
    "ClassificationData",
    "DatasetSpec",
    "RatingsData",
    "clear_cache",
    "dataset_names",
    "deal_group_ids",
    "deal_groups",
    "load_dataset",
    "locate_dataset",
    "partition_classes",
    "register_dataset",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
