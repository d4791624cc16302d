"""The algorithms a run can use: one :class:`Protocol` class per algorithm, and their registry.

Adding an algorithm is one file (a :class:`Protocol` subclass) and one :func:`register` call.
Registering also declares the name to the settings (:func:`mosaic_fast.settings.declare_algorithm`,
with the facts their checks need), which sit below the engine and cannot import it.
"""

from __future__ import annotations

from ...settings import AlgorithmFacts, declare_algorithm, forget_algorithm
from .adpsgd import ADPSGD
from .base import Protocol
from .divshare import DivShare
from .mosaic import Mosaic
from .swift import Swift

_REGISTRY: dict[str, Protocol] = {}


def register(protocol: type[Protocol] | Protocol) -> Protocol:
    """Make ``protocol`` (a class or an instance) the algorithm of its ``name``; returns the
    instance. A name registered before is replaced (a test's variant of a built-in)."""
    instance = protocol() if isinstance(protocol, type) else protocol
    _REGISTRY[instance.name] = instance
    declare_algorithm(
        instance.name,
        AlgorithmFacts(
            synchronous=instance.synchronous,
            whole_model=instance.whole_model,
            peer_sampling=instance.peer_sampling,
        ),
    )
    return instance


def unregister(name: str) -> None:
    """Forget the algorithm ``name`` (tests that registered their own)."""
    _REGISTRY.pop(name, None)
    forget_algorithm(name)


def get(name: str) -> Protocol:
    """The protocol of algorithm ``name``; KeyError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; registered: {', '.join(names())}") from None


def names() -> tuple[str, ...]:
    """Every registered algorithm, in registration order (the built-ins first)."""
    return tuple(_REGISTRY)


for _builtin in (Mosaic, DivShare, Swift, ADPSGD):
    register(_builtin)

__all__ = ["ADPSGD", "DivShare", "Mosaic", "Protocol", "Swift", "get", "names", "register"]
