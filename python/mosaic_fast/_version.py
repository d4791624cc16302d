"""The installed version, in a module of its own so the engine can record it without
importing the package's top level."""

from __future__ import annotations


def _installed_version() -> str:
    """The version the package was installed with: Cargo.toml's workspace version, which maturin
    writes into the package metadata (pyproject.toml declares it dynamic), so it has one home."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mosaic-fast")
    except PackageNotFoundError:  # the source tree on sys.path without an install
        return "0+unknown"


__version__ = _installed_version()
