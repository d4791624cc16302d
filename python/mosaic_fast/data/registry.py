"""Dataset lookup, download fallback (through torchvision) and the per-process cache behind
:func:`load_dataset`."""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataNotFoundError, MosaicTypeError, MosaicValueError
from . import cifar, fashion_mnist, movielens, shakespeare
from .containers import ClassificationData, RatingsData
from .download import DownloadError
from .locations import DATA_ENV, cache_dir, search_roots

Data = ClassificationData | RatingsData


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, download and parse one dataset."""

    name: str
    find: Callable[[Path], Path | None]  # a usable copy at or under a root folder, or None
    fetch_into: Callable[[Path], Path]  # download into a cache folder, return the dataset folder
    load: Callable[..., Data]  # (folder, *, seed, max_samples_per_group) -> data
    download_url: Callable[[], str]  # for error messages (torchvision's, read when needed)
    layout: str  # the files a user must provide, for error messages
    uses_seed: bool = False
    uses_groups: bool = False


def _cifar_spec(variant: cifar.CifarVariant) -> DatasetSpec:
    return DatasetSpec(
        name=variant.name,
        find=functools.partial(cifar.find, variant),
        fetch_into=functools.partial(cifar.fetch_into, variant),
        load=functools.partial(cifar.load, variant),
        download_url=functools.partial(cifar.download_url, variant),
        layout=f"{variant.folder}/ ({', '.join(variant.files)})",
    )


SPECS: dict[str, DatasetSpec] = {
    "fashion-mnist": DatasetSpec(
        "fashion-mnist",
        fashion_mnist.find,
        fashion_mnist.fetch_into,
        fashion_mnist.load,
        fashion_mnist.download_url,
        fashion_mnist.LAYOUT,
    ),
    "movielens": DatasetSpec(
        "movielens",
        movielens.find,
        movielens.fetch_into,
        movielens.load,
        movielens.download_url,
        movielens.LAYOUT,
        uses_seed=True,
    ),
    "cifar10": _cifar_spec(cifar.CIFAR10),
    "cifar100": _cifar_spec(cifar.CIFAR100),
    "shakespeare": DatasetSpec(
        "shakespeare",
        shakespeare.find,
        shakespeare.fetch_into,
        shakespeare.load,
        shakespeare.download_url,
        shakespeare.LAYOUT,
        uses_seed=True,
        uses_groups=True,
    ),
}


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`, in a fixed order."""
    return list(SPECS)


def _spec(name: str) -> DatasetSpec:
    if not isinstance(name, str) or name not in SPECS:
        raise MosaicValueError(f"unknown dataset {name!r}; choose one of {', '.join(SPECS)}")
    return SPECS[name]


def _search(
    spec: DatasetSpec, data_dir: str | os.PathLike[str] | None
) -> tuple[Path | None, list[Path]]:
    roots = search_roots(spec.name, data_dir)
    for root in roots:
        found = spec.find(root)
        if found is not None:
            return found, roots
    return None, roots


def locate_dataset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder of a usable local copy of ``name`` (same search order as load_dataset), or None.

    Raises MosaicValueError for an unknown name and DataNotFoundError if ``data_dir`` is given
    but is not a readable directory. Nothing is downloaded.
    """
    return _search(_spec(name), data_dir)[0]


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, folder: str, seed: int, max_samples_per_group: int | None) -> Data:
    return SPECS[name].load(Path(folder), seed=seed, max_samples_per_group=max_samples_per_group)


def clear_cache() -> None:
    """Forget every dataset parsed in this process (frees its memory once unreferenced)."""
    _load_cached.cache_clear()
    movielens.read_ratings.cache_clear()


def _check_optional_count(name: str, value: object, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MosaicTypeError(f"{name}={value!r} must be an integer")
    if value < minimum:
        raise MosaicValueError(f"{name}={value} must be at least {minimum}")


def _not_found(spec: DatasetSpec, roots: list[Path], reason: str) -> DataNotFoundError:
    where = ", ".join(str(r) for r in roots)
    return DataNotFoundError(
        f"no local copy of {spec.name} found in [{where}]; {reason}; put the files "
        f"({spec.layout}) in {cache_dir() / spec.name} or pass --data-dir (or set {DATA_ENV})"
    )


def load_dataset(
    name: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    download: bool = True,
    max_samples_per_group: int | None = None,
) -> Data:
    """Load a dataset, finding a local copy or downloading it into the cache.

    Search order: ``data_dir`` (a missing or unreadable folder is a DataNotFoundError), each
    folder in ``$MOSAIC_DATA`` (``os.pathsep``-separated), system folders
    (``/usr/share/datasets/fashion-mnist``), then the cache (``$MOSAIC_CACHE`` or
    ``~/.cache/mosaic-fast``). With no copy and ``download=True`` the published files are fetched
    into ``<cache>/<name>`` by torchvision's download utilities and checked against their
    published checksums (md5 by torchvision; sha256 here for MovieLens and Shakespeare, whose
    publishers give no md5). Fashion-MNIST, CIFAR-10 and CIFAR-100 are parsed by
    ``torchvision.datasets``; a Fashion-MNIST copy outside torchvision's ``FashionMNIST/raw``
    layout (e.g. the Debian folder) is first unpacked into
    ``<cache>/fashion-mnist/FashionMNIST/raw``.

    Args:
        name: one of :func:`dataset_names`.
        seed: seeds the MovieLens 70/30 split and the Shakespeare per-role subsampling.
        max_samples_per_group: cap on train and test samples per Shakespeare role (None = all);
            ignored by datasets without natural groups.

    Returns:
        ClassificationData (fashion-mnist, cifar10, cifar100, shakespeare) or RatingsData
        (movielens), cached per process: the same call returns the same object.

    Raises:
        MosaicValueError: unknown name, bad seed or cap, or a corrupt file.
        DataNotFoundError: no local copy and the download is disabled or failed.
    """
    spec = _spec(name)
    _check_optional_count("seed", seed, 0)
    _check_optional_count("max_samples_per_group", max_samples_per_group, 1)
    folder, roots = _search(spec, data_dir)
    if folder is None:
        if not download:
            raise _not_found(spec, roots, "downloading is disabled")
        url = spec.download_url()
        try:
            spec.fetch_into(cache_dir() / spec.name)
        except DownloadError as exc:
            raise _not_found(spec, roots, f"download from {url} failed ({exc})") from None
        folder = spec.find(cache_dir())
        if folder is None:
            raise _not_found(spec, roots, f"the download from {url} did not contain {spec.layout}")
    return _load_cached(
        spec.name,
        str(folder.resolve()),
        int(seed) if spec.uses_seed else 0,
        int(max_samples_per_group)
        if spec.uses_groups and max_samples_per_group is not None
        else None,
    )
