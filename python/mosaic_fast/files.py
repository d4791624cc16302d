"""Reading a file the user named (a config, a network trace, an edge list): one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MosaicValueError


def read_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of ``path``; ``what`` (``"config file 'a.toml'"``) starts every error line."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise MosaicValueError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise MosaicValueError(f"{what} is a directory") from None
    except PermissionError:
        raise MosaicValueError(f"{what} cannot be read: permission denied") from None
    except OSError as exc:
        raise MosaicValueError(f"{what} cannot be read: {exc.strerror or exc}") from None
