"""Where datasets are looked for: explicit folder, $MOSAIC_DATA, system folders, the cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import DataNotFoundError

DATA_ENV = "MOSAIC_DATA"
CACHE_ENV = "MOSAIC_CACHE"

# Folders that OS packages install datasets into (Debian's dataset-fashion-mnist).
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}


def cache_dir() -> Path:
    """The download cache: ``$MOSAIC_CACHE`` or ``~/.cache/mosaic-fast`` (may not exist yet)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mosaic-fast"


def check_data_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Return ``data_dir`` as a Path, or raise DataNotFoundError if it is not a readable directory."""
    path = Path(data_dir).expanduser()
    if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
        raise DataNotFoundError(
            f"data_dir {str(path)!r} does not exist or is not a readable directory"
        )
    return path


def search_roots(name: str, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Folders to search for ``name``, in order: data_dir, $MOSAIC_DATA entries, system dirs, cache."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(check_data_dir(data_dir))
    env = os.environ.get(DATA_ENV, "")
    roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    roots.extend(SYSTEM_DIRS.get(name, ()))
    roots.append(cache_dir())
    return roots


def first_existing(
    root: Path, subdirs: tuple[str, ...], is_copy: Callable[[Path], bool]
) -> Path | None:
    """The first ``root / sub`` (``""`` = root itself) that is a directory passing ``is_copy``."""
    for sub in subdirs:
        candidate = root / sub if sub else root
        try:
            if candidate.is_dir() and is_copy(candidate):
                return candidate
        except OSError:  # unreadable folder: not a usable copy
            continue
    return None
