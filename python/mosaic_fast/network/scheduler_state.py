"""The scheduler's checkpoint: the entries of ``NetworkScheduler.state_dict()`` (plain values and
int64/float64 tensors) and their checks before the Rust core restores them. Semantics in
:mod:`mosaic_fast.network.scheduler`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MosaicValueError
from .scheduler_args import BANDWIDTH_SHARING


def _state_array_dtypes() -> dict[str, str]:
    """A state dict's array entries and their dtypes: the links, then each kind of transfer's
    columns (the shared ones, then its own)."""
    dtypes = {"uplink": "float64", "downlink": "float64", "latency": "float64"}
    shared = {"id": "int64", "src": "int64", "dst": "int64"}
    shared |= {"bytes": "float64", "ready": "float64", "start": "float64"}
    for kind, own in (
        ("queued", ()),
        ("active", ("remaining", "rate", "updated")),
        ("in_flight", ("last_byte", "delivered")),
    ):
        dtypes |= {f"{kind}_{column}": dtype for column, dtype in shared.items()}
        dtypes |= {f"{kind}_{column}": "float64" for column in own}
    return dtypes


STATE_ARRAYS = _state_array_dtypes()
_STATE_SCALARS = ("fifo_per_sender", "fifo_per_pair", "bandwidth_sharing", "now", "next_id")
STATE_KEYS = (*_STATE_SCALARS, *STATE_ARRAYS)
"""The entries of ``NetworkScheduler.state_dict()``."""
# Entries added since the first checkpoints, with the behaviour those ran with.
_LEGACY_STATE = {"fifo_per_pair": False, "bandwidth_sharing": "min-share"}


def _bad_state(key: str, problem: str) -> MosaicValueError:
    return MosaicValueError(f"network state {key!r} {problem}")


def _describe(value: Any) -> str:
    import torch

    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}"[:80]


def checked_state(state: Any) -> dict[str, Any]:
    """A state dict's entries checked for their types and converted to what the core reads
    (contiguous numpy arrays, Python scalars); the core checks their values. A state written
    before ``fifo_per_pair`` or ``bandwidth_sharing`` existed gets the behaviour it ran with."""
    if not isinstance(state, dict):
        raise MosaicValueError(f"network state must be a dict, got {_describe(state)}")
    state = _LEGACY_STATE | state
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise MosaicValueError(f"network state lacks {', '.join(map(repr, missing))}")
    unexpected = [k for k in state if k not in STATE_KEYS]
    if unexpected:
        raise MosaicValueError(f"network state has unexpected {', '.join(map(repr, unexpected))}")
    return _state_arrays(state) | _state_scalars(state)


def _state_arrays(state: dict[str, Any]) -> dict[str, np.ndarray]:
    """The array entries as C-contiguous numpy arrays, each a tensor of its dtype and rank."""
    import torch

    out: dict[str, Any] = {}
    for key, dtype in STATE_ARRAYS.items():
        value = state[key]
        ndims = (0, 1, 2) if key == "latency" else (1,)
        if (
            not isinstance(value, torch.Tensor)
            or value.dtype != getattr(torch, dtype)
            or value.dim() not in ndims
        ):
            shape = "" if key == "latency" else "1-D "
            raise _bad_state(key, f"must be a {shape}{dtype} tensor, got {_describe(value)}")
        # Not np.ascontiguousarray: it would make a scalar latency one-dimensional.
        out[key] = np.asarray(value.detach().cpu().numpy(), order="C")
    n_nodes = out["uplink"].shape[0]
    if out["latency"].shape not in ((), (n_nodes,), (n_nodes, n_nodes)):
        raise _bad_state(
            "latency",
            f"has shape {tuple(out['latency'].shape)}, expected (), ({n_nodes},) or "
            f"({n_nodes}, {n_nodes}) for the {n_nodes} nodes of 'uplink'",
        )
    return out


def _state_scalars(state: dict[str, Any]) -> dict[str, Any]:
    """The plain entries, checked: the queue kinds, the sharing rule, the clock, the next id."""
    now, next_id = state["now"], state["next_id"]
    for key in ("fifo_per_sender", "fifo_per_pair"):
        if not isinstance(state[key], bool):
            raise _bad_state(key, f"must be a bool, got {_describe(state[key])}")
    sharing = state["bandwidth_sharing"]
    if sharing not in BANDWIDTH_SHARING:
        raise _bad_state(
            "bandwidth_sharing", f"must be one of {BANDWIDTH_SHARING}, got {_describe(sharing)}"
        )
    if isinstance(now, bool) or not isinstance(now, (int, float)):
        raise _bad_state("now", f"must be a number, got {_describe(now)}")
    if isinstance(next_id, bool) or not isinstance(next_id, int) or not 0 <= next_id < 2**63:
        raise _bad_state("next_id", f"must be an integer in [0, 2^63), got {_describe(next_id)}")
    return {
        "fifo_per_sender": state["fifo_per_sender"],
        "fifo_per_pair": state["fifo_per_pair"],
        "bandwidth_sharing": sharing,
        "now": float(now),
        "next_id": next_id,
    }


def state_tensors(exported: dict[str, Any]) -> dict[str, Any]:
    """The core's exported state as a state dict: its arrays as tensors, in :data:`STATE_KEYS`
    order."""
    import torch

    def tensor(array: np.ndarray) -> torch.Tensor:
        # Empty arrays from the core share one dangling data pointer, which torch.save
        # refuses across dtypes: they get tensors of their own.
        if array.size == 0:
            return torch.empty(array.shape, dtype=getattr(torch, str(array.dtype)))
        return torch.from_numpy(array)

    return {
        key: tensor(exported[key]) if key in STATE_ARRAYS else exported[key] for key in STATE_KEYS
    }
