"""Modules that moved in 0.1's reorganisation, still importable under their old names with a
DeprecationWarning, so user code and pickles keep working for a release."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

MOVED: dict[str, tuple[str, ...]] = {
    "mosaic_fast.config": ("mosaic_fast.settings",),
    "mosaic_fast.kernel_torch": ("mosaic_fast.kernel.torch_path",),
    "mosaic_fast.kernel_triton": ("mosaic_fast.kernel.triton_path",),
    "mosaic_fast.reference": ("mosaic_fast.kernel.reference",),
    "mosaic_fast.references": ("mosaic_fast.user_code",),
    "mosaic_fast.network_sim": (
        "mosaic_fast.network.scheduler",
        "mosaic_fast.network.scheduler_args",
        "mosaic_fast.network.scheduler_state",
    ),
    "mosaic_fast.engine.clock": ("mosaic_fast.network.clock",),
    "mosaic_fast.engine.simulation": ("mosaic_fast.engine.rounds",),
    "mosaic_fast.engine.async_sim": ("mosaic_fast.engine.events",),
    "mosaic_fast.engine.run_network": ("mosaic_fast.engine.parts",),
    "mosaic_fast.runfolder": (
        "mosaic_fast.results.folder",
        "mosaic_fast.results.layout",
        "mosaic_fast.results.records",
    ),
    "mosaic_fast.summary": ("mosaic_fast.results.summary",),
    "mosaic_fast.plotting": ("mosaic_fast.results.plots",),
    "mosaic_fast.stats": ("mosaic_fast.results.stats",),
}
"""Old module name -> the modules that hold its names now (one: the old name is that module)."""

MOVED_INTO_PACKAGE: dict[str, tuple[str, ...]] = {
    "mosaic_fast.network": (
        "mosaic_fast.network.spec",
        "mosaic_fast.network.units",
        "mosaic_fast.network.readers",
    ),
}
"""A module that became a package of the same name -> the modules that hold its old names
(the package's ``__getattr__`` calls :func:`moved_name`)."""


def _find(name: str, homes: tuple[str, ...], old: str) -> tuple[str, object]:
    """(the home holding ``name``, its value)."""
    for home in homes:
        module = importlib.import_module(home)
        if hasattr(module, name):
            return home, getattr(module, name)
    raise AttributeError(f"module {old!r} has no attribute {name!r}")


def moved_name(package: str, name: str) -> object:
    """``package.name`` of a module that became ``package``, with a DeprecationWarning."""
    if name.startswith("__"):
        raise AttributeError(name)
    home, found = _find(name, MOVED_INTO_PACKAGE[package], package)
    warnings.warn(
        f"{package}.{name} moved to {home}; import it from there (the old path goes in a later "
        "release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return found


class _Alias(importlib.abc.Loader):
    def __init__(self, homes: tuple[str, ...]) -> None:
        self.homes = homes

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        if len(self.homes) == 1:
            return importlib.import_module(self.homes[0])
        # Split in several: a module that finds each name in its new home (pickles included).
        module = ModuleType(spec.name, f"Moved to {', '.join(self.homes)}.")
        homes, old = self.homes, spec.name
        module.__dict__["__getattr__"] = lambda name: _find(name, homes, old)[1]
        return module

    def exec_module(self, module: ModuleType) -> None:
        pass  # the new modules are already executed


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of :data:`MOVED` and answers them with the new modules."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        homes = MOVED.get(fullname)
        if homes is None:
            return None
        warnings.warn(
            f"{fullname} moved to {' and '.join(homes)}; import it from there ({fullname} goes "
            "in a later release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.util.spec_from_loader(fullname, _Alias(homes))


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
