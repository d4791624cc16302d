"""Checked reading of the engine's state dicts (checkpoints).

State dicts hold only torch tensors and plain Python values (dict, list, tuple, int, float, str,
bool, None), so ``torch.load(path, weights_only=True)`` reads them. Whatever was read is checked
here before it is used: a malformed entry is a one-line MosaicValueError naming it by its path
(e.g. ``sampler.perms[3]``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, overload

import numpy as np
import torch

from .errors import MosaicValueError


def bad(where: str, problem: str) -> MosaicValueError:
    return MosaicValueError(f"checkpoint entry {where!r} {problem}")


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:80]


def entries(state: Any, where: str, keys: Iterable[str]) -> dict[str, Any]:
    """``state`` itself, checked to be a dict with exactly ``keys``."""
    if not isinstance(state, dict):
        raise bad(where, f"must be a dict, got {_kind(state)}")
    expected = list(keys)
    missing = [k for k in expected if k not in state]
    if missing:
        raise bad(where, f"lacks {', '.join(map(repr, missing))}")
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        names = ", ".join(repr(k) for k in unexpected)
        raise bad(where, f"has unexpected {names} (written by another version of mosaic-fast?)")
    return state


def tensor(value: Any, where: str, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """``value``, checked to be a tensor of ``dtype`` and ``shape``."""
    if (
        not isinstance(value, torch.Tensor)
        or value.dtype != dtype
        or tuple(value.shape) != tuple(shape)
    ):
        want = f"a {str(dtype).removeprefix('torch.')} tensor of shape {tuple(shape)}"
        raise bad(where, f"must be {want}, got {_kind(value)}")
    return value


def sequence(value: Any, where: str, length: int) -> list[Any]:
    """``value`` (a list or tuple) as a list, checked to hold ``length`` items."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise bad(where, f"must be a list of {length} items, got {_kind(value)}")
    return list(value)


def integer(value: Any, where: str, low: int = 0, high: int | None = None) -> int:
    """``value``, checked to be an int in ``[low, high]`` (no upper bound when ``high`` is None)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        span = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise bad(where, f"must be an integer {span}, got {_kind(value)}")
    return value


@overload
def number(value: Any, where: str, *, optional: Literal[False] = False) -> float: ...
@overload
def number(value: Any, where: str, *, optional: bool) -> float | None: ...
def number(value: Any, where: str, *, optional: bool = False) -> float | None:
    """``value`` as a float (ints accepted); None too when ``optional``."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a number or None" if optional else "a number"
        raise bad(where, f"must be {what}, got {_kind(value)}")
    return float(value)


def generator(state: Any, where: str) -> np.random.Generator:
    """A PCG64 generator in ``state`` (a ``bit_generator.state`` dict), checked entry by entry."""
    state = entries(state, where, ["bit_generator", "state", "has_uint32", "uinteger"])
    if state["bit_generator"] != "PCG64":
        raise bad(f"{where}.bit_generator", f"must be 'PCG64', got {state['bit_generator']!r}")
    inner = entries(state["state"], f"{where}.state", ["state", "inc"])
    for key in ("state", "inc"):
        integer(inner[key], f"{where}.state.{key}", 0, 2**128 - 1)
    integer(state["has_uint32"], f"{where}.has_uint32", 0, 1)
    integer(state["uinteger"], f"{where}.uinteger", 0, 2**32 - 1)
    rng = np.random.Generator(np.random.PCG64(0))
    rng.bit_generator.state = state
    return rng
