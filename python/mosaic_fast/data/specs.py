"""What each dataset is: its loader, how to call it, and the settings' defaults for it.

A dataset is one loader plus one :class:`DatasetSpec`, registered with :func:`register_dataset`.
The specs import nothing heavy: the ``settings`` read their per-dataset defaults here before torch
loads, and a spec names its loader by module path, imported when the data is first needed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import MosaicValueError
from ..user_code import Builtin, decode


class Loader(Protocol):
    """A dataset's loader: a module or any object with these members.

    ``fetch_into(dest) -> folder`` and ``download_url() -> str`` are optional: a loader without
    them reads local copies only.
    """

    LAYOUT: str  # the files a user must provide, for error messages

    def find(self, root: Path) -> Path | None:
        """A usable copy at or under ``root``, or None."""
        ...

    def load(self, folder: Path, *, seed: int, max_samples_per_group: int | None) -> Any:
        """The data in ``folder``: a ``ClassificationData`` or ``RatingsData``."""
        ...


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its name, its loader, and the defaults of the settings that depend on it.

    ``loader`` is the loader itself or where it lives: ``"package.module"`` (the module is the
    loader) or ``"package.module:attribute"``, imported on first use. ``defaults`` maps a setting
    that takes a per-dataset default (``model``, ``lr``, ``batch_size``, ``local_steps``,
    ``partition``, ``alpha``) to its value for this dataset; settings left out keep their general
    default. ``uses_seed``: the loader's output depends on the run's seed (a seeded split);
    ``uses_groups``: it honours ``max_samples_per_group``.
    """

    name: str
    loader: str | Loader
    defaults: Mapping[str, Any] = field(default_factory=dict)
    uses_seed: bool = False
    uses_groups: bool = False

    def resolve_loader(self) -> Loader:
        """The loader, imported if the spec names it by module path."""
        if not isinstance(self.loader, str):
            return self.loader
        module, _, attribute = self.loader.partition(":")
        found: Any = importlib.import_module(module)
        loader: Loader = getattr(found, attribute) if attribute else found
        return loader


_IMAGES = {"model": "gn-lenet", "lr": 0.05, "batch_size": 32, "local_steps": 5}
_IMAGES |= {"partition": "dirichlet"}

SPECS: dict[str, DatasetSpec] = {}
"""Every registered dataset by name, in registration order."""


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Make ``spec`` a dataset of ``load_dataset`` and of the ``dataset`` setting; returns it.

    The name must be a plain name (not ``module:attribute``, ``<label>`` or a file form) and new
    unless ``replace``.
    """
    if not isinstance(spec.name, str) or not spec.name:
        raise MosaicValueError(f"dataset name {spec.name!r} must be a non-empty string")
    if not isinstance(decode("dataset", spec.name), Builtin):
        raise MosaicValueError(
            f"dataset name {spec.name!r} reads as user code; choose a plain name such as 'toy'"
        )
    if spec.name in SPECS and not replace:
        raise MosaicValueError(f"dataset {spec.name!r} is registered already")
    SPECS[spec.name] = spec
    return spec


def dataset_spec(name: str) -> DatasetSpec | None:
    """The spec of a registered dataset, or None (a user's own data has none)."""
    return SPECS.get(name) if isinstance(name, str) else None


def dataset_names() -> list[str]:
    """Names accepted by :func:`load_dataset`, in a fixed order."""
    return list(SPECS)


class _Names(Sequence[str]):
    """The registered datasets' names as they are when read (a dataset may be registered later)."""

    def __getitem__(self, index: Any) -> Any:
        return list(SPECS)[index]

    def __len__(self) -> int:
        return len(SPECS)

    def __repr__(self) -> str:
        return repr(tuple(SPECS))


DATASETS: Sequence[str] = _Names()
"""The registered datasets' names, read live: the ``dataset`` setting's choices."""


BUILTIN_SPECS = (
    DatasetSpec("fashion-mnist", f"{__package__}.fashion_mnist", _IMAGES),
    # MovieLens: SGD on a user's embedding is stable while lr * 2 * share * eig_max(mean q q^T)
    # < 2, share = the user's part of its node's ratings: 1 at n = 610, where 0.5 diverges.
    DatasetSpec(
        "movielens",
        f"{__package__}.movielens",
        {"model": "mf", "lr": 0.2, "batch_size": 64, "local_steps": 20, "partition": "natural"},
        uses_seed=True,
    ),
    DatasetSpec("cifar10", f"{__package__}.cifar:CIFAR10", _IMAGES),
    DatasetSpec("cifar100", f"{__package__}.cifar:CIFAR100", _IMAGES),
    DatasetSpec(
        "shakespeare",
        f"{__package__}.shakespeare",
        {"model": "lstm", "lr": 0.5, "batch_size": 16, "local_steps": 5, "partition": "natural"},
        uses_seed=True,
        uses_groups=True,
    ),
)
for _builtin in BUILTIN_SPECS:
    register_dataset(_builtin)
