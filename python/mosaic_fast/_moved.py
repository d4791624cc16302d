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

MOVED = {
    "mosaic_fast.config": "mosaic_fast.settings",
    "mosaic_fast.kernel_torch": "mosaic_fast.kernel.torch_path",
    "mosaic_fast.kernel_triton": "mosaic_fast.kernel.triton_path",
    "mosaic_fast.reference": "mosaic_fast.kernel.reference",
    "mosaic_fast.references": "mosaic_fast.user_code",
    "mosaic_fast.network_sim": "mosaic_fast.network.scheduler",
    "mosaic_fast.engine.clock": "mosaic_fast.network.clock",
    "mosaic_fast.engine.simulation": "mosaic_fast.engine.rounds",
    "mosaic_fast.engine.async_sim": "mosaic_fast.engine.events",
    "mosaic_fast.engine.run_network": "mosaic_fast.engine.parts",
    "mosaic_fast.runfolder": "mosaic_fast.results.folder",
    "mosaic_fast.summary": "mosaic_fast.results.summary",
    "mosaic_fast.plotting": "mosaic_fast.results.plots",
    "mosaic_fast.stats": "mosaic_fast.results.stats",
}
"""Old module name -> its new home."""


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the new module is already executed


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of :data:`MOVED` and answers them with the new modules."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        warnings.warn(
            f"{fullname} moved to {new}; import it from there ({fullname} goes in a later release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
