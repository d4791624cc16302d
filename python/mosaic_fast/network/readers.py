"""The network files of ``--network FILE`` read into plain values: a per-node CSV table, or a
FedScale device capacity pickle read with a restricted unpickler (see
:mod:`mosaic_fast.network.spec` for both formats). :mod:`~mosaic_fast.network.spec` turns them
into a :class:`~mosaic_fast.network.spec.NetworkSpec`.

Every problem is one MosaicValueError line naming the file and its row or client.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MosaicValueError
from ..files import read_bytes

CSV_COLUMNS = ("node", "step_time_s", "uplink_bps", "downlink_bps", "latency_s")

# Separates the trace assignment from every other use of the seed.
_TRACE_STREAM = 0x7ACE
# What a FedScale client's entry must hold: (key, unit).
_CAPACITY_KEYS = (("computation", "ms per sample"), ("communication", "kbit/s"))


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    return read_bytes(path, f"network file {str(path)!r}")


def is_csv(path: str | os.PathLike[str]) -> bool:
    """Whether ``--network`` reads this file as CSV (a ``.csv`` name) rather than as a pickle."""
    return Path(path).suffix.lower() == ".csv"


# ----------------------------------------------------------------------------- FedScale pickle


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


def _load_plain_pickle(path: str | os.PathLike[str], where: str) -> Any:
    """The object of a pickle made of dicts, strings, ints and floats only; no global is ever
    resolved, and a corrupt or trailing stream is refused."""
    stream = io.BytesIO(_read_bytes(path))
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
    return loaded


def _client_capacity(client: int | str, entry: Any, where: str) -> tuple[float, float]:
    """``(computation, communication)`` of one client's entry, each a positive number."""
    if type(entry) is not dict:
        raise MosaicValueError(f"{where}, client {client!r}: {entry!r} is not a dict")
    values = []
    for key, unit in _CAPACITY_KEYS:
        if key not in entry:
            raise MosaicValueError(f"{where}, client {client!r}: no {key!r} ({unit})")
        value = entry[key]
        if type(value) not in (int, float) or not (math.isfinite(value) and value > 0):
            raise MosaicValueError(
                f"{where}, client {client!r}: {key}={value!r} must be a positive number ({unit})"
            )
        values.append(float(value))
    return values[0], values[1]


def read_fedscale_pickle(path: str | os.PathLike[str]) -> dict[int | str, tuple[float, float]]:
    """``client_id -> (computation ms per sample, communication kbit/s)`` of a FedScale device
    capacity pickle, read with a restricted unpickler (see the module docstring)."""
    where = f"network file {str(path)!r}"
    loaded = _load_plain_pickle(path, where)
    if type(loaded) is not dict or not loaded:
        raise MosaicValueError(
            f"{where} must hold a non-empty dict client_id -> "
            '{"computation": ms per sample, "communication": kbit/s}'
        )
    return {client: _client_capacity(client, entry, where) for client, entry in loaded.items()}


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


# ----------------------------------------------------------------------------- per-node CSV


def read_csv_values(path: str | os.PathLike[str], n_nodes: int) -> np.ndarray:
    """The float64 ``(n_nodes, 4)`` table of a per-node CSV file, columns ``step_time_s``,
    ``uplink_bps``, ``downlink_bps``, ``latency_s`` (as written: bits per second), row ``i`` for
    node ``i``; a bad header, row or value is one MosaicValueError naming the file and the row
    (its line number)."""
    where = f"network file {str(path)!r}"
    try:
        text = _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MosaicValueError(f"{where} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    columns = _csv_columns([name.strip() for name in next(reader, [])], where)
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
    return values


def _csv_columns(header: list[str], where: str) -> dict[str, int]:
    """Each of :data:`CSV_COLUMNS`' position in ``header``, which must hold each exactly once."""
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
    return {name: header.index(name) for name in CSV_COLUMNS}


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
