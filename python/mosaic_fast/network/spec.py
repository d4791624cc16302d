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

import csv
import io
import math
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MosaicValueError
from ..files import read_bytes

if TYPE_CHECKING:
    pass

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
CSV_COLUMNS = ("node", "step_time_s", "uplink_bps", "downlink_bps", "latency_s")

# Separate the straggler draw and the trace assignment from every other use of the seed.
_STRAGGLER_STREAM = 0x57A6
_TRACE_STREAM = 0x7ACE

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?"
_BIT_PREFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_BANDWIDTH = re.compile(rf"(?P<number>{_NUMBER})(?P<prefix>[kMGT]?)bit(?:/s)?")
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(rf"(?P<number>{_NUMBER})(?P<unit>s|ms|us|µs|ns)")
# Near misses, for hints: a number, an optional prefix letter, a unit word.
_LOOSE = re.compile(rf"(?P<number>{_NUMBER})(?P<prefix>[kKmMgGtT]?)(?P<unit>[A-Za-z/]*)")
_BIT_WORDS = ("b", "bit", "bits", "bps", "b/s", "bit/s", "bits/s", "bit/sec", "bits/sec")
_BYTE_WORDS = ("B", "Bps", "B/s", "byte", "bytes", "byte/s", "bytes/s", "Byte", "Bytes")
_BANDWIDTH_FORMS = "a number and a unit with no space, such as 60Mbit, 500kbit or 1Gbit"
_TIME_FORMS = "a number and a unit with no space, such as 1ms, 200us or 0.5s"


def parse_bandwidth(text: str, *, name: str = "bandwidth") -> float:
    """Bytes per second of a bandwidth in SI bits per second (``60Mbit`` -> 7.5e6).

    ``name`` is the setting the error names: ``bandwidth='60Mbps' is not a bandwidth: did you mean
    60Mbit?``. Zero and negative bandwidths are refused.
    """
    if not isinstance(text, str):
        raise MosaicValueError(f"{name}={text!r} must be a string such as 60Mbit")
    match = _BANDWIDTH.fullmatch(text)
    if match is not None:
        bits = float(match["number"]) * _BIT_PREFIXES[match["prefix"]]
        if bits <= 0 or not math.isfinite(bits):
            raise MosaicValueError(f"{name}={text!r} must be positive and finite")
        return bits / 8
    raise MosaicValueError(f"{name}={text!r} is not a bandwidth: {_bandwidth_hint(text)}")


def _bandwidth_hint(text: str) -> str:
    compact = "".join(text.split())
    if compact != text.strip() and _BANDWIDTH.fullmatch(compact):
        return f"write it with no space: {compact}"
    if compact.startswith("-") and _BANDWIDTH.fullmatch(compact[1:]):
        return "it must be positive"
    loose = _LOOSE.fullmatch(compact)
    if loose is None:
        return f"write {_BANDWIDTH_FORMS} (bits per second)"
    number, prefix, unit = loose["number"], loose["prefix"], loose["unit"]
    si = {"k": "k", "K": "k", "m": "M", "M": "M", "g": "G", "G": "G", "t": "T", "T": "T", "": ""}
    if not unit:
        return f"it needs a unit, such as {number}{si[prefix] or 'M'}bit (bits per second)"
    if unit in _BYTE_WORDS:
        bits = float(number) * 8
        return f"bandwidths are in bits, did you mean {bits:g}{si[prefix]}bit?"
    if unit.lower() in _BIT_WORDS:
        return f"did you mean {number}{si[prefix]}bit?"
    return f"write {_BANDWIDTH_FORMS} (bits per second)"


def parse_duration(text: str, *, name: str = "latency") -> float:
    """Seconds of a duration with a unit (``1ms`` -> 0.001); negative durations are refused."""
    if not isinstance(text, str):
        raise MosaicValueError(f"{name}={text!r} must be a string such as 1ms")
    match = _DURATION.fullmatch(text)
    if match is not None:
        seconds = float(match["number"]) * _TIME_UNITS[match["unit"]]
        if not math.isfinite(seconds):
            raise MosaicValueError(f"{name}={text!r} must be finite")
        return seconds
    compact = "".join(text.split())
    if compact != text.strip() and _DURATION.fullmatch(compact):
        hint = f"write it with no space: {compact}"
    elif compact.startswith("-") and _DURATION.fullmatch(compact[1:]):
        hint = "it must not be negative"
    elif re.fullmatch(_NUMBER, compact):
        hint = f"it needs a unit, such as {compact}s or {compact}ms"
    else:
        hint = f"write {_TIME_FORMS}"
    raise MosaicValueError(f"{name}={text!r} is not a duration: {hint}")


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
        return (self.latency_s[np.asarray(src)] + self.latency_s[np.asarray(dst)]) / 2

    def transfer_time_s(self, n_bytes: Any, src: Any, dst: Any) -> np.ndarray:
        """Seconds for ``n_bytes`` from ``src`` to ``dst`` with no other transfer at either end:
        latency plus bytes over the smaller of the sender's uplink and the receiver's downlink."""
        rate = np.minimum(self.uplink_Bps[np.asarray(src)], self.downlink_Bps[np.asarray(dst)])
        return self.message_latency_s(src, dst) + np.asarray(n_bytes, dtype=np.float64) / rate


# ----------------------------------------------------------------------------- files


class _GlobalRefused(pickle.UnpicklingError):
    """A pickle named a global (a class or function): refused before it could be used."""


class _PlainDataUnpickler(pickle.Unpickler):
    """Resolves no global: a pickle naming any class or function (``os.system``) fails here,
    before anything is built or called. Dicts, strings and numbers need no global."""

    def find_class(self, module: str, name: str) -> Any:
        raise _GlobalRefused(f"it names the global {module}.{name}")


_PLAIN_TYPES = (dict, str, int, float)


def _plain_data_problem(value: Any) -> str | None:
    """Why ``value`` is not made of dicts, strings, ints and floats only, or None."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if type(item) not in _PLAIN_TYPES:
            return f"it holds a {type(item).__name__}"
        if type(item) is dict and id(item) not in seen:  # the memo can make a dict hold itself
            seen.add(id(item))
            stack.extend(item.keys())
            stack.extend(item.values())
    return None


def read_fedscale_pickle(path: str | os.PathLike[str]) -> dict[int | str, tuple[float, float]]:
    """``client_id -> (computation ms per sample, communication kbit/s)`` of a FedScale device
    capacity pickle, read with a restricted unpickler (see the module docstring)."""
    where = f"network file {str(path)!r}"
    data = _read_bytes(path)
    stream = io.BytesIO(data)
    try:
        loaded = _PlainDataUnpickler(stream).load()
    except _GlobalRefused as exc:
        raise MosaicValueError(f"{where} is not a plain-data pickle: {exc}") from None
    except Exception as exc:  # a corrupt stream fails in many ways (EOFError, KeyError, ...)
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise MosaicValueError(f"{where} is not a valid pickle ({why})") from None
    if stream.read(1):
        raise MosaicValueError(f"{where} is not a valid pickle (data after the pickle's end)")
    problem = _plain_data_problem(loaded)
    if problem is not None:
        raise MosaicValueError(
            f"{where} is not a plain-data pickle: {problem}; only dicts, strings, ints and "
            "floats are allowed"
        )
    if type(loaded) is not dict or not loaded:
        raise MosaicValueError(
            f"{where} must hold a non-empty dict client_id -> "
            '{"computation": ms per sample, "communication": kbit/s}'
        )
    clients = {}
    for client, entry in loaded.items():
        if type(entry) is not dict:
            raise MosaicValueError(f"{where}, client {client!r}: {entry!r} is not a dict")
        values = []
        for key, unit in (("computation", "ms per sample"), ("communication", "kbit/s")):
            if key not in entry:
                raise MosaicValueError(f"{where}, client {client!r}: no {key!r} ({unit})")
            value = entry[key]
            if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
                raise MosaicValueError(
                    f"{where}, client {client!r}: {key}={value!r} must be a positive number ({unit})"
                )
            values.append(float(value))
        clients[client] = (values[0], values[1])
    return clients


def _client_order(client: int | str) -> tuple[int, Any]:
    return (0, client) if type(client) is int else (1, client)


def assign_clients(
    clients: Mapping[int | str, Any] | Any, n_nodes: int, seed: int
) -> list[int | str]:
    """The trace client id of each of ``n_nodes`` nodes: client ids sorted (ints before
    strings), permuted by the seed's trace stream, reused cyclically when there are fewer than
    ``n_nodes``."""
    ids = sorted(clients, key=_client_order)
    order = np.random.default_rng([seed, _TRACE_STREAM]).permutation(len(ids))
    return [ids[int(order[node % len(ids)])] for node in range(n_nodes)]


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    return read_bytes(path, f"network file {str(path)!r}")


def is_csv(path: str | os.PathLike[str]) -> bool:
    """Whether ``--network`` reads this file as CSV (a ``.csv`` name) rather than as a pickle."""
    return Path(path).suffix.lower() == ".csv"


def read_network_csv(path: str | os.PathLike[str], n_nodes: int) -> NetworkSpec:
    """The spec of a per-node CSV file (see the module docstring); a bad header, row or value is
    one MosaicValueError naming the file and the row (its line number)."""
    where = f"network file {str(path)!r}"
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MosaicValueError(f"{where} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    header = [name.strip() for name in next(reader, [])]
    missing = [c for c in CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown or len(header) != len(CSV_COLUMNS):
        if missing:
            what = f"lacks column {missing[0]!r}"
        elif unknown:
            what = f"has column {unknown[0]!r}"
        else:
            what = "repeats a column"
        raise MosaicValueError(f"{where} {what}; its header must be {','.join(CSV_COLUMNS)}")
    columns = {name: header.index(name) for name in CSV_COLUMNS}
    values = np.full((n_nodes, 4), np.nan)
    seen: dict[int, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        at = f"{where}, row {line}"
        if len(row) != len(CSV_COLUMNS):
            raise MosaicValueError(f"{at}: {len(row)} fields; expected {len(CSV_COLUMNS)}")
        node = _csv_node(row[columns["node"]].strip(), n_nodes, at)
        if node in seen:
            raise MosaicValueError(f"{at}: node {node} already given on row {seen[node]}")
        seen[node] = line
        for j, name in enumerate(CSV_COLUMNS[1:]):
            values[node, j] = _csv_value(name, row[columns[name]].strip(), at)
    if len(seen) < n_nodes:
        absent = next(i for i in range(n_nodes) if i not in seen)
        raise MosaicValueError(
            f"{where} has no row for node {absent}; it needs one row per node 0..{n_nodes - 1}"
        )
    return NetworkSpec(
        step_time_s=values[:, 0],
        uplink_Bps=values[:, 1] / 8,
        downlink_Bps=values[:, 2] / 8,
        latency_s=values[:, 3],
    )


def _csv_node(text: str, n_nodes: int, at: str) -> int:
    try:
        node = int(text)
    except ValueError:
        raise MosaicValueError(f"{at}: node={text!r} is not an integer") from None
    if not 0 <= node < n_nodes:
        raise MosaicValueError(f"{at}: node={node} is outside 0..{n_nodes - 1} ({n_nodes} nodes)")
    return node


def _csv_value(name: str, text: str, at: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MosaicValueError(f"{at}: {name}={text!r} is not a number") from None
    if name == "latency_s":
        ok, why = value >= 0 and math.isfinite(value), "non-negative and finite"
    else:
        ok, why = value > 0 and math.isfinite(value), "positive and finite"
    if not ok:
        raise MosaicValueError(f"{at}: {name}={text} must be {why}")
    return value


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
