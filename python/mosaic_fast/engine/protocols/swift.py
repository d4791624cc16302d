"""Swift: DivShare's sending with the whole model (K=1), never dropping."""

from __future__ import annotations

from .base import Protocol


class Swift(Protocol):
    """The whole model to ``degree`` distinct peers per iteration."""

    name = "swift"
    whole_model = True
