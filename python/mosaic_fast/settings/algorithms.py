"""The algorithms the ``algorithm`` setting accepts, with the facts its checks need.

The engine's protocol registry (:mod:`mosaic_fast.engine.protocols`) declares each algorithm here
when it registers it: the settings sit below the engine and never import it, yet they must know
the names and which rules apply (K = 1 for whole-model algorithms, el-oracle for those that draw
their own peers, ranks only for synchronous rounds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload


@dataclass(frozen=True)
class AlgorithmFacts:
    """What the settings check about an algorithm."""

    synchronous: bool
    """Runs in synchronous rounds (else each node on its own clock, in simulated time)."""
    whole_model: bool
    """Sends whole models: the run needs K = 1."""
    peer_sampling: bool
    """Draws its own peers: the run's topology must be el-oracle."""


_DECLARED: dict[str, AlgorithmFacts] = {
    "mosaic": AlgorithmFacts(synchronous=True, whole_model=False, peer_sampling=False),
    "divshare": AlgorithmFacts(synchronous=False, whole_model=False, peer_sampling=True),
    "swift": AlgorithmFacts(synchronous=False, whole_model=True, peer_sampling=True),
    "adpsgd": AlgorithmFacts(synchronous=False, whole_model=True, peer_sampling=True),
}


def declare_algorithm(name: str, facts: AlgorithmFacts) -> None:
    """Make ``name`` a choice of the ``algorithm`` setting (the protocol registry calls this)."""
    _DECLARED[name] = facts


def forget_algorithm(name: str) -> None:
    """Withdraw ``name`` (a test's own protocol); the built-ins stay."""
    if name not in _BUILT_IN:
        _DECLARED.pop(name, None)


def algorithm_facts(name: str) -> AlgorithmFacts:
    """The facts of algorithm ``name`` (KeyError when it was never declared)."""
    return _DECLARED[name]


class _DeclaredNames(Sequence[str]):
    """The declared algorithm names, read at each use (so a protocol registered after the
    settings were imported is a valid choice)."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return tuple(_DECLARED)[index]

    def __len__(self) -> int:
        return len(_DECLARED)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_DECLARED))

    def __contains__(self, name: object) -> bool:
        return name in _DECLARED

    def __repr__(self) -> str:
        return repr(tuple(_DECLARED))


ALGORITHMS: Sequence[str] = _DeclaredNames()
"""Every declared algorithm name, built-ins first: the ``algorithm`` setting's choices."""

_BUILT_IN = frozenset(_DECLARED)
