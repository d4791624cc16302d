"""CIFAR-10 / CIFAR-100 (Krizhevsky 2009) from the published "python version" pickles.

The pickles were written by Python 2: dictionaries with bytes keys (``b"data"``: uint8
``(N, 3072)`` with the R, G and B planes of each 32x32 image in turn; ``b"labels"`` for
CIFAR-10, ``b"fine_labels"``/``b"coarse_labels"`` for CIFAR-100). They are read with an
unpickler that only resolves the numpy names such files contain, so a tampered file cannot
run code.
"""

from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MosaicValueError
from .containers import ClassificationData
from .download import Remote, extract_archive, fetch
from .locations import first_existing
from .normalise import normalise


@dataclass(frozen=True)
class CifarVariant:
    name: str
    folder: str  # the folder inside the published tarball
    train_files: tuple[str, ...]
    test_file: str
    label_key: bytes
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    remote: Remote


CIFAR10 = CifarVariant(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    label_key=b"labels",
    num_classes=10,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2023, 0.1994, 0.2010),
    remote=Remote(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
)
CIFAR100 = CifarVariant(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    label_key=b"fine_labels",
    num_classes=100,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    remote=Remote(
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
)
VARIANTS = {v.name: v for v in (CIFAR10, CIFAR100)}

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array-unpickling function
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3 writes bytes at protocol 2 through _codecs.encode (copies re-saved by Python 3).
    ("_codecs", "encode"): codecs.encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def read_batch(path: Path) -> dict[bytes, Any]:
    """Unpickle one CIFAR batch file (bytes keys). Raises MosaicValueError if it is not one."""
    try:
        with open(path, "rb") as fh:
            batch = _NumpyOnlyUnpickler(fh, encoding="bytes").load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
    ) as exc:
        raise MosaicValueError(f"{str(path)!r} is not a CIFAR python pickle ({exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch:
        raise MosaicValueError(f"{str(path)!r} is not a CIFAR batch (no b'data' entry)")
    return batch


def _split(paths: list[Path], variant: CifarVariant) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for path in paths:
        batch = read_batch(path)
        data = np.asarray(batch[b"data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise MosaicValueError(
                f"{str(path)!r}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)"
            )
        if variant.label_key not in batch:
            raise MosaicValueError(f"{str(path)!r} has no {variant.label_key!r} entry")
        y = np.asarray(batch[variant.label_key], dtype=np.int64)
        if y.shape != (len(data),):
            raise MosaicValueError(f"{str(path)!r} has {y.size} labels for {len(data)} images")
        if len(y) and (y.min() < 0 or y.max() >= variant.num_classes):
            raise MosaicValueError(
                f"{str(path)!r} has labels in [{y.min()}, {y.max()}], expected 0..{variant.num_classes - 1}"
            )
        images.append(data)
        labels.append(y)
    pixels = np.concatenate(images).reshape(-1, 3, 32, 32)
    x = np.empty(pixels.shape, dtype=np.float32)
    for c in range(3):
        x[:, c] = normalise(pixels[:, c], variant.mean[c], variant.std[c])
    return torch.from_numpy(x), torch.from_numpy(np.concatenate(labels))


def _is_copy(variant: CifarVariant):
    def check(folder: Path) -> bool:
        return all((folder / f).is_file() for f in (*variant.train_files, variant.test_file))

    return check


def find(variant: CifarVariant, root: Path) -> Path | None:
    """The folder at or under ``root`` holding ``variant``'s pickles, or None."""
    subdirs = (variant.folder, "", f"{variant.name}/{variant.folder}", variant.name)
    return first_existing(root, subdirs, _is_copy(variant))


def fetch_into(variant: CifarVariant, dest: Path) -> Path:
    """Download and extract the tarball into ``dest``; return the extracted batch folder."""
    archive = fetch(variant.remote, dest)
    extract_archive(archive, dest)
    archive.unlink()
    return dest / variant.folder


def load(
    variant: CifarVariant, folder: Path, *, seed: int = 0, max_samples_per_group: int | None = None
) -> ClassificationData:
    """Parse the pickles in ``folder``: x float32 (N, 3, 32, 32) normalised per channel, y int64 (N,)."""
    x_train, y_train = _split([folder / f for f in variant.train_files], variant)
    x_test, y_test = _split([folder / variant.test_file], variant)
    return ClassificationData(
        variant.name, x_train, y_train, x_test, y_test, variant.num_classes, None, None
    )
