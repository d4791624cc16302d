"""Messages of the event loop: queued per (sender, peer), delivered into inboxes, dropped.

Payloads are kept by transfer id (sender, kind, fragment, the sender's row snapshot); ``held``
counts how many queued messages hold each snapshot (the queue guard's count of models held).
The protocol draws every message's receiver and fragment and says whether receivers reply.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import MosaicValueError
from .event_state import REPLY, REQUEST

_QUEUE_LIMIT_BYTES = 4 * 2**30  # models waiting in send queues: beyond this, stop the run


class Messaging:
    """The message half of :class:`~.events.AsyncSimulation` (its attributes: ``network``,
    ``payloads``, ``held``, ``inbox``, ``latest``, the byte and parameter counts)."""

    cfg: Any
    network: Any
    protocol: Any
    # Set by AsyncSimulation (annotations only: the mixin defines none of them).
    X: torch.Tensor
    fragments: Any
    n_params: int
    v1: bool
    n_peers: int
    drops: bool
    replies: bool
    peer_rngs: list[np.random.Generator]
    message_bytes: np.ndarray
    fragment_params: np.ndarray
    payloads: dict[int, tuple[int, int, int, torch.Tensor]]
    inbox: list[dict[tuple[int, int], torch.Tensor]]
    held: dict[int, int]
    latest: list[torch.Tensor]
    sent_params: float
    delivered_bytes: float
    transmitted_bytes: float

    def _check_queues(self, at: float) -> None:
        """A one-line error when the messages waiting in send queues hold more than
        ``_QUEUE_LIMIT_BYTES`` of row snapshots (each iteration's snapshot is stored once);
        checked as messages are queued."""
        held = 4.0 * self.n_params * len(self.held)
        if held > _QUEUE_LIMIT_BYTES:
            raise MosaicValueError(
                f"algorithm={self.cfg.algorithm!r}: after {at:g} simulated seconds the send queues "
                f"hold {self.network.n_queued + self.network.n_active} messages "
                f"({held / 2**30:.1f} GiB of models): the links cannot carry an iteration's "
                "messages per iteration; use faster links, more local_steps, a longer step_time, "
                "a smaller degree, or divshare with drop_unsent"
            )

    def _queue(self, tid: int, payload: tuple[int, int, int, torch.Tensor]) -> None:
        self.payloads[tid] = payload
        key = id(payload[3])
        self.held[key] = self.held.get(key, 0) + 1

    def _unqueue(self, tid: int) -> tuple[int, int, int, torch.Tensor]:
        payload = self.payloads.pop(tid)
        key = id(payload[3])
        left = self.held[key] - 1
        if left:
            self.held[key] = left
        else:
            del self.held[key]
        return payload

    def _deliver(self, until: float) -> None:
        """Put every message delivered at or before ``until`` into its receiver's inbox."""
        if self.replies:
            self._deliver_and_reply(until)
            return
        done = self.network.run_until(until)
        for tid, dst in zip(done.id.tolist(), done.dst.tolist(), strict=True):
            src, _, fragment, snapshot = self._unqueue(tid)
            self.inbox[dst][(src, fragment)] = snapshot
            self.sent_params += float(self.fragment_params[fragment])
        total = float(done.bytes.sum()) if len(done.id) else 0.0
        self.delivered_bytes += total
        self.transmitted_bytes += total

    def _deliver_and_reply(self, until: float) -> None:
        """:meth:`_deliver` one message at a time, each request answered as it arrives with the
        receiver's latest model, queued then."""
        network = self.network
        while (delivery := network.next_delivery(until)) is not None:
            src, kind, fragment, snapshot = self._unqueue(delivery.id)
            dst = delivery.dst
            self.inbox[dst][(src, fragment)] = snapshot
            self.sent_params += float(self.fragment_params[fragment])
            self.delivered_bytes += delivery.bytes
            self.transmitted_bytes += delivery.bytes
            if kind == REQUEST:
                reply = self.X[dst].clone() if self.v1 else self.latest[dst]
                tid = network.submit(dst, src, float(self.message_bytes[0]), delivery.delivered)
                self._queue(tid, (dst, REPLY, 0, reply))
                self._check_queues(delivery.delivered)

    def _send(self, i: int, at: float, row: torch.Tensor) -> None:
        """Queue node ``i``'s messages of this iteration end (see the module docstring): the
        protocol draws their receivers and fragments."""
        network, n = self.network, self.cfg.nodes
        if self.drops:
            self._drop_unsent(i)
        snapshot = row.clone()
        if self.replies and not self.v1:
            self.latest[i] = snapshot  # what node i answers with until its next iteration end
        dst, fragments = self.protocol.destinations(
            self.peer_rngs[i], i, n, self.fragments.n_fragments, self.n_peers, self.v1
        )
        ids = network.submit_many(np.full(len(dst), i), dst, self.message_bytes[fragments], at)
        for tid, fragment in zip(ids.tolist(), fragments.tolist(), strict=True):
            self._queue(tid, (i, REQUEST, fragment, snapshot))
        self._check_queues(at)

    def _drop_unsent(self, i: int) -> None:
        """Drop node ``i``'s messages whose last byte has not left (v1: not started)."""
        if self.v1:
            for tid in self.network.cancel_queued(i).tolist():
                self._unqueue(tid)
            return
        ids, sent = self.network.cancel_unsent(i)
        for tid in ids.tolist():
            self._unqueue(tid)
        self.transmitted_bytes += float(sent.sum())
