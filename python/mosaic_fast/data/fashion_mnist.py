"""Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 grey images, 10 classes.

``torchvision.datasets.FashionMNIST`` downloads the published ``.gz`` files (md5-checked),
unpacks them into ``<root>/FashionMNIST/raw/`` and parses the IDX files there. A copy in that
layout is read in place. Any other copy (the four files, gzipped or not, in one folder: the
published ``.gz`` files, or Debian's ``dataset-fashion-mnist``, whose ``.gz`` files hold the same
images recompressed, so their md5s differ from the published ones and torchvision's download
check would reject them) is first unpacked into ``<cache>/fashion-mnist/FashionMNIST/raw/``;
a stamp file there names the copy it came from, so each copy is unpacked once. Before
torchvision parses them, the IDX headers (magic number, dimensions, file size) are checked,
so a corrupt or truncated file is a one-line error naming it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch

from ..errors import MosaicValueError
from .containers import ClassificationData
from .download import DownloadError, one_line
from .locations import CACHE_ENV, cache_dir, first_existing
from .normalise import normalise

NAME = "fashion-mnist"
MEAN, STD = 0.2860, 0.3530
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
LAYOUT = "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz"
_SUBDIRS = (
    "",
    "FashionMNIST/raw",
    "fashion-mnist",
    "fashion-mnist/FashionMNIST/raw",
    "fashion_mnist",
)
_STAMP = ".mosaic-source.json"  # in the unpacked folder: which copy its files came from
_UBYTE = 0x08  # IDX type code of unsigned bytes


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):  # unpacked first: copying beats decompressing
        if (folder / name).is_file():
            return folder / name
    return None


def _is_copy(folder: Path) -> bool:
    return all(_file(folder, stem) is not None for stem in FILES.values())


def _in_torchvision_layout(folder: Path) -> bool:
    return (
        folder.name == "raw"
        and folder.parent.name == "FashionMNIST"
        and all((folder / stem).is_file() for stem in FILES.values())
    )


def find(root: Path) -> Path | None:
    """The folder at or under ``root`` holding the four IDX files (gz or unpacked), or None."""
    return first_existing(root, _SUBDIRS, _is_copy)


def download_url() -> str:
    """The first mirror torchvision downloads from."""
    from torchvision.datasets import FashionMNIST

    mirror: str = FashionMNIST.mirrors[0]
    return mirror


def fetch_into(dest: Path) -> Path:
    """Download into ``dest/FashionMNIST/raw`` with torchvision (md5-checked); return that folder."""
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(dest), train=False, download=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DownloadError(one_line(exc)) from None
    return dest / "FashionMNIST" / "raw"


def _stamp(sources: dict[str, Path]) -> str:
    stats = {
        stem: (str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
        for stem, p in sources.items()
    }
    return json.dumps(stats, sort_keys=True)


def _unpack(source: Path, target: Path) -> None:
    """Write ``source`` (gzipped or not) to ``target``, atomically."""
    from torchvision.datasets.utils import extract_archive

    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        if source.suffix == ".gz":
            extract_archive(str(source), str(tmp))  # a lone .gz is decompressed to tmp/<stem>
        else:
            shutil.copyfile(source, tmp / target.name)
        os.replace(tmp / target.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def stage(folder: Path) -> Path:
    """Unpack the copy in ``folder`` into ``<cache>/fashion-mnist/FashionMNIST/raw``; return the root.

    Nothing is written when the stamp there says the files already came from this copy.
    Raises MosaicValueError naming the file if a file cannot be decompressed or written.
    """
    root = cache_dir() / NAME
    raw = root / "FashionMNIST" / "raw"
    found = {stem: _file(folder, stem) for stem in FILES.values()}
    sources = {stem: path for stem, path in found.items() if path is not None}
    missing = [stem for stem, path in found.items() if path is None]
    if missing:
        raise MosaicValueError(f"{str(folder)!r} lacks {', '.join(missing)} (.gz or unpacked)")
    stamp = _stamp(sources)
    stamp_path = raw / _STAMP
    if (
        stamp_path.is_file()
        and stamp_path.read_text() == stamp
        and all((raw / stem).is_file() for stem in FILES.values())
    ):
        return root
    source = folder
    try:
        raw.mkdir(parents=True, exist_ok=True)
        stamp_path.unlink(missing_ok=True)  # the files are about to change
        for stem, source in sources.items():
            if source.resolve() != (raw / stem).resolve():
                _unpack(source, raw / stem)
        stamp_tmp = raw / f"{_STAMP}.{os.getpid()}"
        stamp_tmp.write_text(stamp)
        os.replace(stamp_tmp, stamp_path)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise MosaicValueError(
            f"fashion-mnist: cannot unpack {str(source)!r} into {str(raw)!r} ({one_line(exc)}); "
            f"torchvision reads unpacked files (set {CACHE_ENV} to a writable folder if needed)"
        ) from None
    return root


def _check_idx(path: Path, ndim: int) -> tuple[int, ...]:
    """The dimensions in ``path``'s IDX header, after checking its magic number and file size."""
    with open(path, "rb") as fh:
        header = fh.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim:
        raise MosaicValueError(
            f"{str(path)!r} is too short ({len(header)} bytes) to be an IDX file"
        )
    magic = int.from_bytes(header[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise MosaicValueError(
            f"{str(path)!r} has IDX magic number 0x{magic:08x}, expected 0x{expected:08x} "
            f"(unsigned bytes, {ndim} dimensions)"
        )
    dims = struct.unpack(f">{ndim}I", header[4:])
    payload, needed = path.stat().st_size - len(header), 1
    for d in dims:
        needed *= d
    if payload != needed:
        raise MosaicValueError(
            f"{str(path)!r} holds {payload} payload bytes but its header {dims} needs {needed} "
            "(truncated or corrupt file)"
        )
    return dims


def _check_raw(raw: Path) -> None:
    for images_key, labels_key in (
        ("train_images", "train_labels"),
        ("test_images", "test_labels"),
    ):
        images, labels = raw / FILES[images_key], raw / FILES[labels_key]
        image_dims, (n_labels,) = _check_idx(images, 3), _check_idx(labels, 1)
        if image_dims[1:] != (28, 28):
            raise MosaicValueError(
                f"{str(images)!r} holds images of shape {image_dims[1:]}, expected (28, 28)"
            )
        if n_labels != image_dims[0]:
            raise MosaicValueError(
                f"{str(labels)!r} has {n_labels} labels for {image_dims[0]} images in {images.name}"
            )


def _tensors(split: Any, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    y = split.targets  # int64, from torchvision
    if len(y) and int(y.max()) > 9:
        raise MosaicValueError(f"{str(labels_path)!r} has label {int(y.max())}, expected 0..9")
    return torch.from_numpy(normalise(split.data.numpy(), MEAN, STD)).unsqueeze(1), y


def load(
    folder: Path, *, seed: int = 0, max_samples_per_group: int | None = None
) -> ClassificationData:
    """Load the copy in ``folder`` through torchvision: x float32 (N, 1, 28, 28) normalised, y int64 (N,).

    A ``FashionMNIST/raw`` folder holding the unpacked files is read in place; any other copy is
    unpacked into the cache first (:func:`stage`).
    """
    from torchvision.datasets import FashionMNIST

    root = folder.parent.parent if _in_torchvision_layout(folder) else stage(folder)
    raw = root / "FashionMNIST" / "raw"
    _check_raw(raw)
    try:
        train, test = (FashionMNIST(str(root), train=t, download=False) for t in (True, False))
    except (RuntimeError, ValueError, TypeError, AssertionError, OSError) as exc:
        raise MosaicValueError(
            f"fashion-mnist: torchvision cannot read {str(raw)!r} ({one_line(exc)})"
        ) from None
    x_train, y_train = _tensors(train, raw / FILES["train_labels"])
    x_test, y_test = _tensors(test, raw / FILES["test_labels"])
    return ClassificationData(NAME, x_train, y_train, x_test, y_test, 10, None, None)
