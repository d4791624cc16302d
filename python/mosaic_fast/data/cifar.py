"""CIFAR-10 / CIFAR-100 (Krizhevsky 2009) through ``torchvision.datasets.CIFAR10``/``CIFAR100``.

torchvision downloads the published "python version" tarball, checks the md5 of the tarball and
of every batch file against the published list before it unpickles anything (so a tampered file
is rejected before it could run code), and parses the pickles. It reads
``<root>/cifar-10-batches-py`` (``<root>/cifar-100-python``), so a local copy is a folder of
that name. Here the images become float32 ``(N, 3, 32, 32)`` normalised per channel, the labels
int64 ``(N,)`` (the fine labels for CIFAR-100).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MosaicValueError
from .containers import ClassificationData
from .download import DownloadError, one_line
from .locations import first_existing
from .normalise import normalise


@dataclass(frozen=True)
class CifarVariant:
    """One CIFAR dataset: its name here, torchvision's class, the published layout, normalisation."""

    name: str
    torchvision_class: str  # in torchvision.datasets
    folder: str  # torchvision's base_folder: the folder inside the published tarball
    files: tuple[str, ...]  # the batch files and the meta file torchvision checks
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def dataset_class(self) -> type[Any]:
        """torchvision's dataset class (imported on first use: torchvision takes a second)."""
        import torchvision.datasets

        cls: type[Any] = getattr(torchvision.datasets, self.torchvision_class)
        return cls

    # The variant is its dataset's loader (mosaic_fast.data.specs.Loader).
    @property
    def LAYOUT(self) -> str:  # noqa: N802 (the Loader protocol's name, a module constant elsewhere)
        return f"{self.folder}/ ({', '.join(self.files)})"

    def find(self, root: Path) -> Path | None:
        return find(self, root)

    def download_url(self) -> str:
        return download_url(self)

    def fetch_into(self, dest: Path) -> Path:
        return fetch_into(self, dest)

    def load(
        self, folder: Path, *, seed: int = 0, max_samples_per_group: int | None = None
    ) -> ClassificationData:
        return load(self, folder, seed=seed, max_samples_per_group=max_samples_per_group)


CIFAR10 = CifarVariant(
    name="cifar10",
    torchvision_class="CIFAR10",
    folder="cifar-10-batches-py",
    files=(*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
)
CIFAR100 = CifarVariant(
    name="cifar100",
    torchvision_class="CIFAR100",
    folder="cifar-100-python",
    files=("train", "test", "meta"),
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
)
VARIANTS = {v.name: v for v in (CIFAR10, CIFAR100)}


def _is_copy(variant: CifarVariant) -> Callable[[Path], bool]:
    def check(folder: Path) -> bool:
        return folder.name == variant.folder and all((folder / f).is_file() for f in variant.files)

    return check


def find(variant: CifarVariant, root: Path) -> Path | None:
    """The folder named like ``variant.folder`` at or under ``root`` holding its files, or None."""
    subdirs = (variant.folder, "", f"{variant.name}/{variant.folder}")
    return first_existing(root, subdirs, _is_copy(variant))


def download_url(variant: CifarVariant) -> str:
    """The tarball torchvision downloads."""
    url: str = variant.dataset_class().url
    return url


def fetch_into(variant: CifarVariant, dest: Path) -> Path:
    """Download and extract the tarball into ``dest`` with torchvision; return the batch folder.

    torchvision checks the tarball's and every file's md5; the tarball is removed afterwards.
    """
    cls = variant.dataset_class()
    try:
        cls(str(dest), train=False, download=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DownloadError(one_line(exc)) from None
    finally:
        (dest / cls.filename).unlink(missing_ok=True)
    return dest / variant.folder


def _tensors(split: Any, variant: CifarVariant, folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = split.data.transpose(0, 3, 1, 2)  # torchvision holds HWC; back to the published CHW
    x = np.empty(pixels.shape, dtype=np.float32)
    for c in range(3):
        x[:, c] = normalise(pixels[:, c], variant.mean[c], variant.std[c])
    y = torch.tensor(split.targets, dtype=torch.int64)
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= variant.num_classes):
        raise MosaicValueError(
            f"{variant.name}: {str(folder)!r} has labels in [{int(y.min())}, {int(y.max())}], "
            f"expected 0..{variant.num_classes - 1}"
        )
    return torch.from_numpy(x), y


def load(
    variant: CifarVariant, folder: Path, *, seed: int = 0, max_samples_per_group: int | None = None
) -> ClassificationData:
    """Load the pickles in ``folder`` through torchvision.

    Returns x float32 (N, 3, 32, 32) normalised per channel and y int64 (N,), in the published
    order (train batches 1..5, then the test batch). Raises MosaicValueError naming the folder
    if a file is missing, differs from the published one, or cannot be parsed.
    """
    cls = variant.dataset_class()
    try:
        train, test = (cls(str(folder.parent), train=t, download=False) for t in (True, False))
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted. You can use ..."
        reason = one_line(exc).split(". ")[0]
        raise MosaicValueError(
            f"{variant.name}: a file in {str(folder)!r} is missing or differs from the published "
            f"one (md5 mismatch; torchvision: {reason})"
        ) from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
        raise MosaicValueError(
            f"{variant.name}: torchvision cannot read {str(folder)!r} ({one_line(exc)})"
        ) from None
    x_train, y_train = _tensors(train, variant, folder)
    x_test, y_test = _tensors(test, variant, folder)
    return ClassificationData(
        variant.name, x_train, y_train, x_test, y_test, variant.num_classes, None, None
    )
