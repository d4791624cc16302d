"""Settings read from TOML files: at the top level or under ``[run]``, checked as they are read."""

from __future__ import annotations

import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..errors import MosaicValueError
from ..files import read_bytes
from .config import SETTINGS, coerce_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_toml(path: str | Path, *, lists: Collection[str] = ()) -> dict[str, Any]:
    """Settings from a TOML file: at its top level or under ``[run]``; keys may use dashes or
    underscores (``local-steps`` or ``local_steps``). Types and single-setting bounds are checked.

    Every problem (unreadable file, invalid TOML, unknown key, wrong type, bad value) is one
    MosaicValueError line naming the file and the key. ``lists`` as in :func:`coerce_settings`.
    """
    where = f"config file {str(path)!r}"
    content = read_bytes(path, where)
    try:
        raw = tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise MosaicValueError(f"{where} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise MosaicValueError(f"{where} is not valid TOML: {exc}") from None
    section = raw
    if isinstance(raw.get("run"), dict):
        section = raw["run"]
        others = sorted(k for k in raw if k != "run")
        if others:
            raise MosaicValueError(
                f"{where}: {others[0]!r} is outside the [run] table; put every setting in it"
            )
    try:
        values = coerce_settings(section, lists=lists)
        for name, value in values.items():
            for v in value if isinstance(value, tuple) else (value,):
                SETTINGS[name].check(v)
    except MosaicValueError as exc:
        raise MosaicValueError(f"{where}: {exc}") from None
    return values
