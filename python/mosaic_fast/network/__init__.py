"""The network model: node speeds and links (spec), the transfer scheduler, the round clock."""

from __future__ import annotations

from .._moved import moved_name


def __getattr__(name: str) -> object:
    # mosaic_fast.network was one module before 0.1's reorganisation: its names still resolve.
    return moved_name(__name__, name)
