"""The network model: an event-driven scheduler of message transfers with fair bandwidth sharing
and latency, in Rust (``mosaic_fast._core``).

Semantics
---------
Node ``i`` has an uplink of ``uplink[i]`` and a downlink of ``downlink[i]`` bytes per second. Rates
are recomputed whenever a transfer starts, sends its last byte or is cancelled, by
``bandwidth_sharing``:

- ``"max-min"`` (the default): max-min fairness by progressive filling, the fluid model of TCP
  that Kollaps (DivShare's emulator) approximates: every sending transfer's rate rises together
  until a link is full; the transfers on it keep that rate and the others go on rising. A transfer
  held back by a slow receiver leaves the rest of its sender's uplink to the others.
- ``"min-share"`` (the rule of runs before max-min): a transfer gets the smaller of its two equal
  shares, ``uplink[src] / (transfers sending from src)`` and ``downlink[dst] / (transfers sending
  to dst)``; a share one end leaves unused is not handed to the other transfers.

A rate of ``inf`` is an unlimited link: the other end rules, and a transfer unlimited at both ends
sends its last byte as it starts.

Latency is added after transmission: a message is *delivered* ``latency(src, dst)`` seconds after its
last byte left, and holds no bandwidth meanwhile (a sender's next message may already be sending).
``latency`` is a number (every message), an array of shape ``(n_nodes,)`` (each node's access-link
delay; a message pays ``latency[src] + latency[dst]``) or ``(n_nodes, n_nodes)`` (per ordered pair,
row = sender).

A transfer starts at its ready time. With a FIFO, a queue's transfers instead go out one at a time in
submission order: the next one starts when the previous one's last byte left, or at its own ready
time if later; a head that is not ready yet holds back the ones behind it. ``fifo_per_sender=True``:
one queue per sender. ``fifo_per_pair=True``: one queue per (sender, receiver), as DivShare's one
socket per peer: messages to one peer go in order, messages to different peers at the same time
(sharing the uplink). Transfers of zero bytes take no bandwidth: their last byte leaves when they
start.

Determinism: transfer ids count submissions from 0 (a batch's ids are its rows); events at equal
times are handled together (every last byte, then every start, then one rate update); deliveries at
equal times come out by id. Nothing depends on hash order or threads: the same inputs give
bit-identical times.

Clock: ``NetworkScheduler.now`` is the time up to which every event has been handled. Submissions
must be ready at or after it; ``next_delivery`` and ``run_until`` move it forward, ``cancel_queued``
and ``cancel_unsent`` act at it (a transfer starting exactly at ``now`` has started and is not
cancelled by ``cancel_queued``; one whose last byte left exactly at ``now`` is in flight and is
not cancelled by ``cancel_unsent``).

Checkpoints: ``NetworkScheduler.state_dict()`` holds everything that determines the scheduler's
future (links, clock, next id and every queued, sending and in-flight transfer with its rate
bookkeeping) as plain values and int64/float64 tensors; ``NetworkScheduler.from_state_dict`` (or
``load_state_dict``) restores it, after which deliveries are bit-identical to those of the
scheduler it was taken from.

Messages: a fragment of ``n`` float32 parameters is ``message_bytes(n) = 4 * n + header_bytes``
bytes.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from .. import _core
from ..errors import MosaicValueError
from .scheduler_args import (
    BANDWIDTH_SHARING,
    FloatArray,
    IntArray,
    float_array,
    int_array,
    latency_arg,
    require_int,
    require_real,
    scheduler_options,
    transfer_arrays,
)
from .scheduler_state import checked_state, state_tensors

DEFAULT_HEADER_BYTES = 64
"""Bytes of a message's header (ids, round, fragment index), added to its payload."""


class Delivery(NamedTuple):
    """One delivered transfer; times in seconds."""

    id: int
    src: int
    dst: int
    bytes: float
    ready: float
    start: float
    """When its first byte left (its ready time unless its sender's queue held it back)."""
    last_byte: float
    """When its last byte left the sender."""
    delivered: float
    """``last_byte + latency(src, dst)``."""


class Deliveries(NamedTuple):
    """Deliveries as arrays (one entry per transfer), in (delivery time, id) order."""

    id: IntArray
    src: IntArray
    dst: IntArray
    bytes: FloatArray
    ready: FloatArray
    start: FloatArray
    last_byte: FloatArray
    delivered: FloatArray


class Schedule(NamedTuple):
    """A batch's times, by row of its input (= transfer id)."""

    start: FloatArray
    last_byte: FloatArray
    delivered: FloatArray


def message_bytes(n_params: Any, header_bytes: int = DEFAULT_HEADER_BYTES) -> Any:
    """Bytes of a message carrying ``n_params`` float32 values: ``4 * n_params + header_bytes``.

    ``n_params`` is an integer or an integer array (then an int64 array is returned)."""
    require_int("header_bytes", header_bytes)
    if header_bytes < 0:
        raise MosaicValueError(f"header_bytes={header_bytes} must be non-negative")
    if isinstance(n_params, (numbers.Integral, np.integer)) and not isinstance(n_params, bool):
        if n_params < 0:
            raise MosaicValueError(f"n_params={n_params} must be non-negative")
        return 4 * int(n_params) + int(header_bytes)
    counts = int_array("n_params", n_params)
    if counts.size and counts.min() < 0:
        raise MosaicValueError(f"n_params has a negative count {int(counts.min())}")
    return 4 * counts + int(header_bytes)


class NetworkScheduler:
    """Incremental transfer scheduler for an event loop (semantics in the module docstring).

    ``uplink``, ``downlink``: bytes/s per node, positive (``inf``: unlimited), shape ``(n_nodes,)``.
    ``latency``: seconds, a number or an array of shape ``(n_nodes,)`` or ``(n_nodes, n_nodes)``.
    ``fifo_per_sender`` / ``fifo_per_pair`` (at most one): one queue per sender / per (sender,
    receiver). ``bandwidth_sharing``: ``"max-min"`` or ``"min-share"``.

    Typical loop: ``submit`` what nodes send at the current time, then ``next_delivery(until=t)``
    hands out deliveries one by one in time order up to your next own event at ``t`` (so that what a
    delivery triggers can be submitted before later events are handled), or ``run_until(t)`` takes
    them all at once when nothing reacts to them before ``t``.
    """

    def __init__(
        self,
        uplink: Any,
        downlink: Any,
        latency: Any = 0.0,
        *,
        fifo_per_sender: bool = False,
        fifo_per_pair: bool = False,
        bandwidth_sharing: str = BANDWIDTH_SHARING[0],
    ) -> None:
        self._inner = _core.NetworkScheduler(
            float_array("uplink", uplink),
            float_array("downlink", downlink),
            latency_arg(latency),
            **scheduler_options(fifo_per_sender, fifo_per_pair, bandwidth_sharing),
        )

    def submit(self, src: int, dst: int, bytes: float, ready_time: float | None = None) -> int:
        """Queue a transfer of ``bytes`` from ``src`` to ``dst`` startable at ``ready_time`` (default:
        ``now``; never before it). Returns its id."""
        require_int("src", src)
        require_int("dst", dst)
        size = require_real("bytes", bytes)
        ready = None if ready_time is None else require_real("ready_time", ready_time)
        return self._inner.submit(int(src), int(dst), size, ready)

    def submit_many(self, src: Any, dst: Any, bytes: Any, ready_time: Any = None) -> IntArray:
        """Queue many transfers in row order (all checked first: on an error none is queued).
        ``bytes`` and ``ready_time`` may be numbers (the same for all; default ready time: ``now``).
        Returns their ids (consecutive)."""
        arrays = transfer_arrays(src, dst, bytes, ready_time, self._inner.now)
        return self._inner.submit_many(*arrays)

    def next_delivery(self, until: float | None = None) -> Delivery | None:
        """The next delivery at or before ``until`` (default: no limit), moving ``now`` to its time;
        None when there is none, ``now`` then moving to ``until`` (if given)."""
        limit = None if until is None else require_real("until", until)
        found = self._inner.next_delivery(limit)
        return None if found is None else Delivery(*found)

    def run_until(self, until: float) -> Deliveries:
        """Every delivery at or before ``until``, in (delivery time, id) order; ``now`` moves to
        ``until``."""
        return Deliveries(*self._inner.run_until(require_real("until", until)))

    def run(self) -> Deliveries:
        """Every remaining delivery, in (delivery time, id) order; ``now`` moves to the last one."""
        return Deliveries(*self._inner.run())

    def cancel_queued(self, src: int) -> IntArray:
        """Cancel every transfer of ``src`` not started yet (DivShare's drop_unsent); transfers
        sending or in flight go on. Returns the cancelled ids, ascending."""
        require_int("src", src)
        return self._inner.cancel_queued(int(src))

    def cancel_unsent(self, src: int) -> tuple[IntArray, FloatArray]:
        """Cancel every transfer of ``src`` whose last byte has not left, queued or sending (DivShare
        closing its sockets: drop_unsent); transfers in flight go on and the freed links are shared
        anew. Returns the cancelled ids, ascending, and the bytes each had sent (0 if queued)."""
        require_int("src", src)
        return self._inner.cancel_unsent(int(src))

    def state_dict(self) -> dict[str, Any]:
        """Everything that determines this scheduler's future, for a checkpoint: the keys of
        ``STATE_KEYS``, as plain values (``fifo_per_sender``, ``fifo_per_pair``,
        ``bandwidth_sharing``, ``now``, ``next_id``) and int64/float64
        tensors that ``torch.load(path, weights_only=True)`` reads back.

        The links (``uplink``, ``downlink``; ``latency`` in the shape it was given: ``()``,
        ``(n_nodes,)`` or ``(n_nodes, n_nodes)``), then one row per transfer not delivered or
        cancelled, in id order, in three groups: ``queued_*`` (``queued_start``: when its start is
        due, NaN while it waits behind its sender's FIFO), ``active_*`` (sending: ``active_remaining``
        bytes left at time ``active_updated``, sent at ``active_rate`` since) and ``in_flight_*``
        (``in_flight_last_byte``, ``in_flight_delivered``). Each group has ``id``, ``src``, ``dst``,
        ``bytes``, ``ready`` and ``start``."""
        return state_tensors(self._inner.export_state())

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> NetworkScheduler:
        """The scheduler a :meth:`state_dict` was taken from, as it was then: its future deliveries
        are bit-identical to the original's. Every entry is checked first (against the others and
        the invariants the scheduler keeps): a malformed one is a MosaicValueError naming it. A
        state without ``fifo_per_pair`` or ``bandwidth_sharing`` (written before them) is read as
        the behaviour it ran with: no queue per pair, ``"min-share"``."""
        scheduler = cls.__new__(cls)
        scheduler._inner = _core.NetworkScheduler.from_state(checked_state(state))
        return scheduler

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Become the scheduler of a :meth:`state_dict` (links included), as
        :meth:`from_state_dict`; checked first, nothing changes on error."""
        self._inner = _core.NetworkScheduler.from_state(checked_state(state))

    def queued_from(self, src: int) -> int:
        """Number of transfers of ``src`` not started yet."""
        require_int("src", src)
        return self._inner.queued_from(int(src))

    @property
    def now(self) -> float:
        """The clock (seconds): every event at or before it has been handled."""
        return self._inner.now

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return self._inner.n_nodes

    @property
    def fifo_per_sender(self) -> bool:
        """Whether a sender's transfers go out one at a time in submission order."""
        return self._inner.fifo_per_sender

    @property
    def fifo_per_pair(self) -> bool:
        """Whether each (sender, receiver) pair's transfers go out one at a time in order."""
        return self._inner.fifo_per_pair

    @property
    def bandwidth_sharing(self) -> str:
        """``"max-min"`` or ``"min-share"``."""
        return self._inner.bandwidth_sharing

    @property
    def n_queued(self) -> int:
        """Transfers submitted and not started."""
        return self._inner.n_queued

    @property
    def n_active(self) -> int:
        """Transfers sending bytes."""
        return self._inner.n_active

    @property
    def n_in_flight(self) -> int:
        """Transfers whose last byte left and whose delivery was not handed out yet."""
        return self._inner.n_in_flight

    @property
    def next_id(self) -> int:
        """The id the next submission gets."""
        return self._inner.next_id

    def __repr__(self) -> str:
        return repr(self._inner)


def schedule(
    uplink: Any,
    downlink: Any,
    latency: Any,
    src: Any,
    dst: Any,
    bytes: Any,
    ready_time: Any = None,
    *,
    fifo_per_sender: bool = False,
    fifo_per_pair: bool = False,
    bandwidth_sharing: str = BANDWIDTH_SHARING[0],
) -> Schedule:
    """Schedule a whole batch at once (GIL released): transfer ``i`` goes from ``src[i]`` to
    ``dst[i]`` with ``bytes[i]`` bytes, startable at ``ready_time[i]`` (default 0, never negative);
    with a FIFO a queue's transfers go out in row order. Returns start, last-byte and delivery times
    by row. Inputs that are already contiguous int64/float64 arrays are read without a copy."""
    arrays = transfer_arrays(src, dst, bytes, ready_time, 0.0)
    start, last_byte, delivered = _core.schedule_transfers(
        float_array("uplink", uplink),
        float_array("downlink", downlink),
        latency_arg(latency),
        *arrays,
        **scheduler_options(fifo_per_sender, fifo_per_pair, bandwidth_sharing),
    )
    return Schedule(start, last_byte, delivered)


__all__ = [
    "DEFAULT_HEADER_BYTES",
    "Deliveries",
    "Delivery",
    "NetworkScheduler",
    "Schedule",
    "message_bytes",
    "schedule",
]
