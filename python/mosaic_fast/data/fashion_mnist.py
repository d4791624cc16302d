"""Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 grey images, 10 classes."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import MosaicValueError
from .containers import ClassificationData
from .download import Remote, fetch
from .idx import read_idx
from .locations import first_existing
from .normalise import normalise

NAME = "fashion-mnist"
MEAN, STD = 0.2860, 0.3530
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# torchvision's list: the official mirror and Zalando's repository, with the published md5s.
_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
URLS = (_MIRRORS[0],)
LAYOUT = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
_SUBDIRS = (
    "",
    "FashionMNIST/raw",
    "fashion-mnist",
    "fashion-mnist/FashionMNIST/raw",
    "fashion_mnist",
)


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):  # torchvision keeps both the .gz and the unpacked file
        if (folder / name).is_file():
            return folder / name
    return None


def _is_copy(folder: Path) -> bool:
    return all(_file(folder, stem) is not None for stem in FILES.values())


def find(root: Path) -> Path | None:
    """The folder at or under ``root`` holding the four IDX files (gz or raw), or None."""
    return first_existing(root, _SUBDIRS, _is_copy)


def fetch_into(dest: Path) -> Path:
    """Download the four files into ``dest`` (md5-checked) and return ``dest``."""
    for filename in _MD5:
        fetch([Remote(base + filename, filename, md5=_MD5[filename]) for base in _MIRRORS], dest)
    return dest


def _images(path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise MosaicValueError(
            f"{str(path)!r} holds images of shape {images.shape[1:]}, expected (28, 28)"
        )
    if len(labels) != len(images):
        raise MosaicValueError(
            f"{str(labels_path)!r} has {len(labels)} labels for {len(images)} images in {path.name}"
        )
    if len(labels) and int(labels.max()) > 9:
        raise MosaicValueError(f"{str(labels_path)!r} has label {int(labels.max())}, expected 0..9")
    x = torch.from_numpy(normalise(images, MEAN, STD)).unsqueeze(1)
    return x, torch.from_numpy(labels.astype("int64"))


def load(
    folder: Path, *, seed: int = 0, max_samples_per_group: int | None = None
) -> ClassificationData:
    """Parse the IDX files in ``folder``: x float32 (N, 1, 28, 28) normalised, y int64 (N,)."""
    paths = {key: _file(folder, stem) for key, stem in FILES.items()}
    missing = [FILES[k] for k, p in paths.items() if p is None]
    if missing:
        raise MosaicValueError(f"{str(folder)!r} lacks {', '.join(missing)} (.gz or raw)")
    x_train, y_train = _images(paths["train_images"], paths["train_labels"])
    x_test, y_test = _images(paths["test_images"], paths["test_labels"])
    return ClassificationData(NAME, x_train, y_train, x_test, y_test, 10, None, None)
