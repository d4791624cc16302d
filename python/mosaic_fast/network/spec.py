"""The simulated network and compute speeds of a run's nodes: what a step and a message cost in time.

Node ``i`` needs ``step_time_s[i]`` seconds per local SGD step and has an uplink of
``uplink_Bps[i]`` and a downlink of ``downlink_Bps[i]`` bytes per second (``inf``: unlimited).
A message from ``i`` to ``j`` also pays the latency ``(latency_s[i] + latency_s[j]) / 2``: the
uniform ``--latency`` when every node has the same. :class:`NetworkSpec` holds these per-node
arrays; :func:`network_from_config` builds it from a run's settings.

Units (settings and CSV files):

- Bandwidth: SI bits per second, a number and a unit with no space: ``8bit``, ``500kbit``,
  ``60Mbit``, ``1Gbit``, ``1Tbit``, optionally ending in ``/s`` (``60Mbit/s``). Byte units and
  ``Mbps`` are refused with the bit spelling as a hint. Parsed to bytes per second (``/ 8``).
- Time: ``0s``, ``0.5s``, ``1ms``, ``200us`` (or ``µs``), ``50ns``, with no space. Parsed to seconds.

Stragglers: ``stragglers`` is a fraction of the nodes; ``fraction * n`` rounded half up nodes are
drawn by a seeded permutation on their own stream of the experiment seed, so the stragglers of a
smaller fraction are among those of a larger one. Their bandwidth (both directions) is divided by
``straggler_slowdown`` (``comm``), their step time multiplied by it (``compute``), or both.

Network files (``--network FILE``):

- ``*.csv``: header ``node,step_time_s,uplink_bps,downlink_bps,latency_s`` (columns in any
  order), one row per node ``0..n-1``, each exactly once; ``bps`` is bits per second. Step times and
  bandwidths must be positive and finite, latencies non-negative and finite. The file's latencies
  replace ``--latency``, which must then be left at ``0s``.
- Any other file is FedScale's device capacity pickle: a dict ``client_id -> {"computation": ms
  per sample, "communication": kbit/s}`` (client ids ints or strings; other keys are ignored).
  It is read with a restricted unpickler that resolves no global at all (no class, no function:
  nothing can run) and then accepts only dicts, strings, ints and floats. A client's step time is
  ``computation * batch_size / 1000`` seconds; its ``communication`` is both its uplink and its
  downlink. Clients sorted by id are permuted by a seeded stream and node ``i`` gets client
  ``perm[i % m]`` of the ``m`` clients: with fewer clients than nodes, clients are reused
  cyclically (node ``i`` and node ``i + m`` then share a device profile). ``--latency`` applies
  to every node.

Every problem is one MosaicValueError line naming the value, or the file and its row or client.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MosaicValueError
from .readers import (
    assign_clients,
    read_csv_values,
    read_fedscale_pickle,
)

__all__ = [
    "DEVICE_PROFILES",
    "STRAGGLER_KINDS",
    "NetworkSpec",
    "read_fedscale_network",
    "read_network_csv",
    "straggler_count",
    "straggler_nodes",
]

STRAGGLER_KINDS = ("comm", "compute", "both")
# Seconds per local step when no step_time is given: (FLOP/s, seconds of overhead per step) of a
# named device; a step costs overhead + (the model's FLOPs per step, counted by torch) / FLOP/s.
# ``measured`` times one step on this machine instead (the rule of runs before the profiles: it
# varies from run to run).
DEVICE_PROFILES: dict[str, tuple[float, float] | None] = {
    "cpu": (1e11, 1e-4),
    "gpu": (1e13, 2e-4),
    "measured": None,
}

# Separates the straggler draw from every other use of the seed.
_STRAGGLER_STREAM = 0x57A6


def straggler_count(n_nodes: int, fraction: float) -> int:
    """How many of ``n_nodes`` nodes a straggler ``fraction`` makes slow: ``fraction * n_nodes``
    rounded half up (rounded to 9 decimals first, so ``0.35 * 10`` gives 4, not 3)."""
    return int(math.floor(round(fraction * n_nodes, 9) + 0.5))


def straggler_nodes(n_nodes: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted int64 ids of the stragglers: the first :func:`straggler_count` nodes of a
    permutation drawn from the seed's straggler stream (nested as ``fraction`` grows)."""
    order = np.random.default_rng([seed, _STRAGGLER_STREAM]).permutation(n_nodes)
    return np.sort(order[: straggler_count(n_nodes, fraction)]).astype(np.int64)


def _per_node(name: str, values: Any, n_nodes: int | None) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    if array.ndim != 1 or (n_nodes is not None and array.shape[0] != n_nodes):
        want = "one value per node" if n_nodes is None else f"{n_nodes} values, one per node"
        raise MosaicValueError(f"{name} has shape {array.shape}; expected {want}")
    array.setflags(write=False)
    return array


def _first_bad(name: str, array: np.ndarray, ok: np.ndarray, why: str) -> None:
    if not ok.all():
        node = int(np.flatnonzero(~ok)[0])
        raise MosaicValueError(f"{name}[{node}]={float(array[node])!r} must be {why}")


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """Per-node compute and network speeds: float64 arrays of length ``n_nodes``, read-only.

    ``step_time_s``: seconds per local SGD step (positive, finite). ``uplink_Bps`` and
    ``downlink_Bps``: bytes per second (positive; ``inf`` = unlimited). ``latency_s``: each node's
    share of a message's latency, seconds (non-negative, finite); see :meth:`message_latency_s`.
    ``stragglers``: sorted ids of the nodes slowed down (int64). ``clients``: the trace client id
    of every node when the speeds come from a FedScale pickle, else None.
    """

    step_time_s: np.ndarray
    uplink_Bps: np.ndarray
    downlink_Bps: np.ndarray
    latency_s: np.ndarray
    stragglers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    clients: tuple[int | str, ...] | None = None

    def __post_init__(self) -> None:
        n = len(np.asarray(self.step_time_s))
        for name in ("step_time_s", "uplink_Bps", "downlink_Bps", "latency_s"):
            object.__setattr__(self, name, _per_node(name, getattr(self, name), n))
        _first_bad("step_time_s", self.step_time_s, self.step_time_s > 0, "positive")
        _first_bad("step_time_s", self.step_time_s, np.isfinite(self.step_time_s), "finite")
        for name in ("uplink_Bps", "downlink_Bps"):
            array = getattr(self, name)
            _first_bad(name, array, array > 0, "positive")
        _first_bad("latency_s", self.latency_s, self.latency_s >= 0, "non-negative")
        _first_bad("latency_s", self.latency_s, np.isfinite(self.latency_s), "finite")
        stragglers = np.array(self.stragglers, dtype=np.int64).reshape(-1)
        if stragglers.size and (
            stragglers.min() < 0 or stragglers.max() >= n or np.any(np.diff(stragglers) <= 0)
        ):
            raise MosaicValueError(
                f"stragglers={stragglers.tolist()} must be distinct sorted node ids in 0..{n - 1}"
            )
        stragglers.setflags(write=False)
        object.__setattr__(self, "stragglers", stragglers)
        if self.clients is not None and len(self.clients) != n:
            raise MosaicValueError(f"clients has {len(self.clients)} entries for {n} nodes")

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.step_time_s.shape[0])

    @classmethod
    def uniform(
        cls,
        n_nodes: int,
        *,
        step_time_s: float,
        uplink_Bps: float = math.inf,
        downlink_Bps: float = math.inf,
        latency_s: float = 0.0,
    ) -> NetworkSpec:
        """Every one of ``n_nodes`` nodes with the same speeds (bytes per second, seconds)."""
        if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 1:
            raise MosaicValueError(f"n_nodes={n_nodes!r} must be a positive integer")
        return cls(
            step_time_s=np.full(n_nodes, step_time_s, dtype=np.float64),
            uplink_Bps=np.full(n_nodes, uplink_Bps, dtype=np.float64),
            downlink_Bps=np.full(n_nodes, downlink_Bps, dtype=np.float64),
            latency_s=np.full(n_nodes, latency_s, dtype=np.float64),
        )

    def with_stragglers(self, nodes: Any, slowdown: float, kind: str) -> NetworkSpec:
        """A copy with ``nodes`` slowed by ``slowdown`` (>= 1): their bandwidth divided
        (``kind="comm"``), their step time multiplied (``"compute"``), or both (``"both"``).
        ``stragglers`` of the copy is the union with this spec's."""
        if kind not in STRAGGLER_KINDS:
            raise MosaicValueError(
                f"straggler_kind={kind!r} is not one of {', '.join(STRAGGLER_KINDS)}"
            )
        if not (isinstance(slowdown, (int, float)) and math.isfinite(slowdown) and slowdown >= 1):
            raise MosaicValueError(f"straggler_slowdown={slowdown!r} must be at least 1")
        slow = np.zeros(self.n_nodes, dtype=bool)
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        if nodes.size and (nodes.min() < 0 or nodes.max() >= self.n_nodes):
            raise MosaicValueError(
                f"straggler nodes {nodes.tolist()} must be in 0..{self.n_nodes - 1}"
            )
        slow[nodes] = True
        comm = kind in ("comm", "both")
        compute = kind in ("compute", "both")
        factor = np.where(slow, float(slowdown), 1.0)
        return NetworkSpec(
            step_time_s=self.step_time_s * factor if compute else self.step_time_s,
            uplink_Bps=self.uplink_Bps / factor if comm else self.uplink_Bps,
            downlink_Bps=self.downlink_Bps / factor if comm else self.downlink_Bps,
            latency_s=self.latency_s,
            stragglers=np.union1d(self.stragglers, nodes),
            clients=self.clients,
        )

    def message_latency_s(self, src: Any, dst: Any) -> np.ndarray:
        """Latency of a message from ``src`` to ``dst`` (node ids or arrays of them), seconds:
        the mean of the two nodes' ``latency_s``."""
        latency: np.ndarray = (
            self.latency_s[np.asarray(src)] + self.latency_s[np.asarray(dst)]
        ) / 2
        return latency

    def transfer_time_s(self, n_bytes: Any, src: Any, dst: Any) -> np.ndarray:
        """Seconds for ``n_bytes`` from ``src`` to ``dst`` with no other transfer at either end:
        latency plus bytes over the smaller of the sender's uplink and the receiver's downlink."""
        rate = np.minimum(self.uplink_Bps[np.asarray(src)], self.downlink_Bps[np.asarray(dst)])
        seconds: np.ndarray = (
            self.message_latency_s(src, dst) + np.asarray(n_bytes, dtype=np.float64) / rate
        )
        return seconds


# ----------------------------------------------------------------------------- files


def read_network_csv(path: str | os.PathLike[str], n_nodes: int) -> NetworkSpec:
    """The spec of a per-node CSV file (see the module docstring); a bad header, row or value is
    one MosaicValueError naming the file and the row (its line number)."""
    values = read_csv_values(path, n_nodes)
    return NetworkSpec(
        step_time_s=values[:, 0],
        uplink_Bps=values[:, 1] / 8,
        downlink_Bps=values[:, 2] / 8,
        latency_s=values[:, 3],
    )


def read_fedscale_network(
    path: str | os.PathLike[str],
    n_nodes: int,
    *,
    seed: int,
    batch_size: int,
    latency_s: float = 0.0,
) -> NetworkSpec:
    """The spec of a FedScale device capacity pickle: clients assigned by :func:`assign_clients`,
    step time ``computation * batch_size / 1000`` s, ``communication`` kbit/s both directions."""
    capacities = read_fedscale_pickle(path)
    clients = assign_clients(capacities, n_nodes, seed)
    compute_ms, comm_kbit = np.array([capacities[c] for c in clients], dtype=np.float64).T
    return NetworkSpec(
        step_time_s=compute_ms * batch_size / 1000,
        uplink_Bps=comm_kbit * 1000 / 8,
        downlink_Bps=comm_kbit * 1000 / 8,
        latency_s=np.full(n_nodes, latency_s),
        clients=tuple(clients),
    )
