"""Where :func:`network_from_config` was defined before; its home is :mod:`.parts`."""

from __future__ import annotations

from .parts import network_from_config

__all__ = ["network_from_config"]
