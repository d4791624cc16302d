"""Mosaic Learning (Epidemic Learning at K=1): synchronous rounds, one graph per fragment."""

from __future__ import annotations

from .base import Protocol


class Mosaic(Protocol):
    """Every node trains ``local_steps`` steps, then averages each fragment with what the
    fragment's graph of the round (the ``topology`` setting) brings it."""

    name = "mosaic"
    synchronous = True
    peer_sampling = False
