"""Where :class:`AsyncSimulation` was defined before the engine was split up; its home is
:mod:`.events` (the algorithms' decisions: :mod:`.protocols`)."""

from __future__ import annotations

from .events import AsyncSimulation

__all__ = ["AsyncSimulation"]
