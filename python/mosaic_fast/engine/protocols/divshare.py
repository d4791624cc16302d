"""DivShare: fragments to uniformly drawn peers on the nodes' own clocks, stale messages dropped."""

from __future__ import annotations

from typing import Any

from .base import Protocol


class DivShare(Protocol):
    """Every fragment to ``degree`` distinct peers per iteration; with ``drop_unsent`` an
    iteration end drops the messages of the previous one whose last byte has not left."""

    name = "divshare"

    def drops(self, cfg: Any) -> bool:
        return bool(cfg.drop_unsent)
