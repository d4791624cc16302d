"""Dataset lookup, download fallback (through torchvision) and the per-process cache behind
:func:`load_dataset`."""

from __future__ import annotations

import functools
import numbers
import os
from pathlib import Path
from typing import Any

from ..errors import DataNotFoundError, MosaicTypeError, MosaicValueError
from . import movielens
from .containers import ClassificationData, RatingsData
from .download import DownloadError
from .locations import DATA_ENV, cache_dir, search_roots
from .specs import DatasetSpec, dataset_names, dataset_spec

__all__ = ["clear_cache", "dataset_names", "load_dataset", "locate_dataset"]

Data = ClassificationData | RatingsData


def _spec(name: str) -> DatasetSpec:
    spec = dataset_spec(name)
    if spec is None:
        raise MosaicValueError(
            f"unknown dataset {name!r}; choose one of {', '.join(dataset_names())}"
        )
    return spec


def _search(
    spec: DatasetSpec, data_dir: str | os.PathLike[str] | None
) -> tuple[Path | None, list[Path]]:
    roots = search_roots(spec.name, data_dir)
    loader = spec.resolve_loader()
    for root in roots:
        found = loader.find(root)
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
    loader = _spec(name).resolve_loader()
    data: Data = loader.load(Path(folder), seed=seed, max_samples_per_group=max_samples_per_group)
    return data


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
        f"({spec.resolve_loader().LAYOUT}) in {cache_dir() / spec.name} or pass --data-dir (or set {DATA_ENV})"
    )


def _download(spec: DatasetSpec, roots: list[Path]) -> Path:
    """Fetch ``spec``'s files into the cache; the folder of the fetched copy."""
    loader: Any = spec.resolve_loader()
    if not hasattr(loader, "fetch_into"):
        raise _not_found(spec, roots, f"{spec.name} has no download")
    url = loader.download_url()
    try:
        loader.fetch_into(cache_dir() / spec.name)
    except DownloadError as exc:
        raise _not_found(spec, roots, f"download from {url} failed ({exc})") from None
    folder: Path | None = loader.find(cache_dir())
    if folder is None:
        raise _not_found(spec, roots, f"the download from {url} did not contain {loader.LAYOUT}")
    return folder


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
        folder = _download(spec, roots)
    return _load_cached(
        spec.name,
        str(folder.resolve()),
        int(seed) if spec.uses_seed else 0,
        int(max_samples_per_group)
        if spec.uses_groups and max_samples_per_group is not None
        else None,
    )
