"""Asynchronous decentralized learning in simulated time: DivShare, Swift and AD-PSGD.

Every node runs on its own clock (speeds from :func:`mosaic_fast.engine.run_network.network_from_config`);
messages go through the scheduler of :mod:`mosaic_fast.network.scheduler` (links shared by
``bandwidth_sharing``, max-min by default), with one queue per (sender, peer) as DivShare's one
socket per peer: messages to one peer go in order, messages to different peers at the same time.
Sending runs while the node computes.

Per node, one iteration after another (DESIGN §5, as ``sacs-epfl/divshare``'s code runs):

1. ``H = local_steps`` local SGD steps, ``H x step_time_s[i]`` seconds, from the model the node
   held when the iteration began (DivShare's ``rounds`` minibatches per iteration);
2. ``divshare`` with ``drop_unsent``: every message of the previous iteration whose last byte has
   not left is dropped, queued or in transfer (DivShare closes its sockets); the bytes of a
   dropped transfer sent so far count as transmitted, not delivered. A message fully sent and
   only paying its latency still arrives;
3. send: for every fragment, ``degree`` (J) distinct peers drawn uniformly, fresh per fragment and
   per iteration; the J x K messages are queued in a random order and carry the fragment's values
   **after training, before averaging**. ``swift``: the same with K = 1 and no dropping.
   ``adpsgd`` (``ADPSGD.py``): the whole model to max(1, J // 2) peers drawn with replacement (the
   code sends J // 2, none at J = 1: at least one here); a receiver answers each ping at once with
   its own latest post-training, pre-averaging model, queued behind its other messages to that
   peer;
4. average: every coordinate becomes the uniform average of the node's own value and every
   received copy of it (only the latest copy per (sender, fragment) is kept; the inbox is then
   cleared); nothing when the inbox is empty.

Without dropping, a node whose link cannot carry an iteration's messages in an iteration builds an
ever longer queue (as DivShare's own Swift and AD-PSGD baselines do); the run stops with a one-line
error once the queued models would take more than ``_QUEUE_LIMIT_BYTES`` (checked as messages are
queued).

``async_semantics="v1"`` (what configs stored before it read back as) keeps the rules of runs
before: one SGD step per communication (``local_steps`` only sets a round), one FIFO per sender,
aggregation before sending, ``drop_unsent`` dropping only messages not started, AD-PSGD pinging
max(1, J // 2) distinct peers and answering with its averaged model, losses summed on the host.

Ties: deliveries at or before an iteration end count for it; events at equal times go deliveries
first (by transfer id), then iteration ends by node id, one at a time, so with zero latency on
unlimited links a message sent at an iteration end by node j reaches the iteration ends of that
same instant of the nodes after j. All randomness comes from per-node streams of the seed (data
order, peers), so results do not depend on how iterations are grouped.

Rounds: a round is a slice of simulated time of ``local_steps`` steps of the fastest node (one
iteration); every node stops after ``rounds x local_steps`` steps (the fastest does exactly that
many).

Batching (exact): a node's iteration depends only on the model it held when it began, its
minibatches and its optimizer state, and its result becomes visible only at the iteration's end.
So iterations are not computed when they begin but when the first pending one must end: every
iteration begun by then is trained in one batched call per step (with equal speeds, all n nodes
at once). The state ``X`` always holds what each node held after its last iteration end (its
averaged model), which is what evaluations read. ``one_at_a_time=True`` trains every iteration
alone as it begins: the reference the batched engine is tested against. Losses stay on the device
(added up once per call of :meth:`advance_to`), and an aggregation is a few launches whatever the
number of messages.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from .. import state_dicts as checked
from ..device import add_rows_
from ..errors import MosaicValueError
from ..network.clock import scheduler_links
from ..network.scheduler import NetworkScheduler, message_bytes
from ..topology import fragment_coordinates
from .simulation import Simulation
from .trainer import synchronize

_QUEUE_LIMIT_BYTES = 4 * 2**30  # models waiting in send queues: beyond this, stop the run
_PEER_STREAM = 0x9E37  # separates the peer draws from the seed's other streams
_REQUEST, _REPLY = 0, 1  # AD-PSGD message kinds (DivShare and Swift send requests only)


class AsyncSimulation(Simulation):
    """A run of ``divshare``, ``swift`` or ``adpsgd``; the same interface as :class:`Simulation`
    (``train_round``, ``metrics``, ``state_dict``), plus :meth:`advance_to` and
    :meth:`evaluation_times` for evaluations at fixed simulated times."""

    ALGORITHMS = ("divshare", "swift", "adpsgd")

    def __init__(self, *args: Any, one_at_a_time: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        self.trainer.optimizer.require_row_steps()
        n, spec = cfg.nodes, self.clock.spec
        self.one_at_a_time = one_at_a_time
        self.v1 = cfg.async_semantics == "v1"
        # H steps per iteration (v1: one step per communication; local_steps only sets a round).
        self.H = 1 if self.v1 else cfg.local_steps
        self.step_time_s = np.asarray(spec.step_time_s, dtype=np.float64)
        self.fastest_s = float(self.step_time_s.min())
        self.max_iterations = cfg.rounds * cfg.local_steps // self.H
        _check_evaluation_interval(cfg, self.fastest_s)
        # AD-PSGD pings degree // 2 peers (v1: distinct; else drawn with replacement, as
        # ADPSGD.py), at least one: the code sends none at degree 1, which would be no
        # communication at all. Their replies make up the rest of its degree models.
        self.n_peers = max(1, cfg.degree // 2) if cfg.algorithm == "adpsgd" else cfg.degree
        self.drops = cfg.algorithm == "divshare" and cfg.drop_unsent
        self.replies = cfg.algorithm == "adpsgd"
        self.coords = fragment_coordinates(self.fragments, self.device)
        self.whole = self.fragments.n_fragments == 1
        sizes = np.asarray(self.fragments.fragment_sizes(), dtype=np.int64)
        self.message_bytes = np.asarray(message_bytes(sizes), dtype=np.float64)
        self.fragment_params = sizes.astype(np.float64)
        if not self.v1 and not self.whole:
            # Fragment id of every coordinate: the averaging masks of a whole inbox at once.
            owner = torch.empty(self.n_params, dtype=torch.int64, device=self.device)
            for k, coords in enumerate(self.coords):
                owner[coords] = k
            self.coord_fragment = owner
        uplink, downlink, latency = scheduler_links(spec)
        self.network = NetworkScheduler(
            uplink,
            downlink,
            latency,
            fifo_per_sender=self.v1,
            fifo_per_pair=not self.v1,
            bandwidth_sharing=cfg.bandwidth_sharing,
        )
        self.peer_rngs = [np.random.default_rng([cfg.seed, _PEER_STREAM, i]) for i in range(n)]
        # Event state: when each node's iteration ends (inf: none running), iterations done, whose
        # iteration is not trained yet, and the trained results (in the second buffer) with their
        # losses (summed over the iteration's steps).
        self.iteration_s = self.H * self.step_time_s
        self.step_end = self.step_time_s.copy() if self.v1 else self._iteration_end(1)
        self.steps_done = np.zeros(n, dtype=np.int64)  # iterations done (v1: steps)
        self.untrained = np.ones(n, dtype=bool)
        self.trained = self._spare
        loss_device = torch.device("cpu") if self.v1 else self.device
        self.step_loss = torch.zeros(n, dtype=torch.float64, device=loss_device)
        # Messages: payloads by transfer id (sender, kind, fragment, the sender's row snapshot),
        # every node's inbox, (sender, fragment) -> snapshot, and how many queued messages hold
        # each snapshot (the queue guard's count of models held).
        self.payloads: dict[int, tuple[int, int, int, torch.Tensor]] = {}
        self.inbox: list[dict[tuple[int, int], torch.Tensor]] = [{} for _ in range(n)]
        self.held: dict[int, int] = {}
        # AD-PSGD: each node's latest post-training, pre-averaging model (what it answers with).
        self.latest: list[torch.Tensor] = []
        if self.replies and not self.v1:
            self.latest = list(self.X.clone())
        # Bookkeeping for the records: parameters delivered; bytes delivered and bytes that left
        # their senders (a dropped transfer's bytes so far included); losses since the last
        # evaluation (v1: a host sum; else on the device, ``ended`` marking the nodes whose
        # iteration loss is still to be added).
        self.sent_params = 0.0
        self.delivered_bytes, self.transmitted_bytes = 0.0, 0.0
        self.loss_sum, self.loss_count = 0.0, 0
        self.loss_total = torch.zeros((), dtype=torch.float64, device=loss_device)
        self.ended = np.zeros(n, dtype=bool)
        if one_at_a_time:
            for i in range(n):
                self._train(np.array([i]))

    def _iteration_end(self, k: Any, nodes: Any = slice(None)) -> np.ndarray:
        """When iteration ``k`` (from 1) of ``nodes`` ends: ``k H`` steps of each node's step
        time (a product, not a sum: no drift; the fastest node's ends fall exactly on round
        ends)."""
        steps = np.asarray(k, dtype=np.int64) * self.H
        return steps.astype(np.float64) * self.step_time_s[nodes]

    # ------------------------------------------------------------------ driving

    def evaluation_times(self, t: int) -> tuple[list[float], bool]:
        """The multiples of ``eval_every_s`` inside round ``t`` (within the time budget), and
        whether the round's end is one: the driver evaluates at each after :meth:`advance_to` it,
        and after the round when it ends on one."""
        every = self.cfg.eval_every_s
        if every is None:
            return [], False
        end = self.round_end(t)
        times, k = [], int(np.floor(self.sim_time_s / every)) + 1
        while k * every <= end:
            times.append(k * every)
            k += 1
        at_end = bool(times) and times[-1] == end
        return (times[:-1] if at_end else times), at_end

    def round_end(self, t: int) -> float:
        """Simulated time at which round ``t`` ends: the fastest node's ``(t + 1) x local_steps``-th
        step end (computed as the node's own step ends are), or the time budget if sooner."""
        end = float((t + 1) * self.cfg.local_steps) * self.fastest_s
        budget = self.cfg.time_budget
        return end if budget is None else min(end, budget)

    def train_round(self, t: int) -> None:
        """Every event of round ``t``: simulated time moves to the round's end."""
        self.advance_to(self.round_end(t))
        self.rounds_done = t + 1

    def advance_to(self, until: float) -> None:
        """Handle every event at or before ``until`` (seconds); the clock then reads ``until``."""
        start = time.perf_counter()
        while True:
            i = int(np.argmin(self.step_end))
            at = float(self.step_end[i])
            if at > until:
                break
            self._deliver(at)
            self._end_step(i, at)
        self._deliver(until)
        self._check_queues(until)
        self.sim_time_s = max(self.sim_time_s, until)
        if self.v1:
            if self.loss_count:  # what the driver checks for divergence
                self.last_loss = self.loss_sum / self.loss_count
        elif self.loss_count:
            self._flush_losses()
            # One copy per call (a round or an evaluation time), not per event.
            self.last_loss = float(self.loss_total) / self.loss_count
        synchronize(self.device)
        self.train_seconds += time.perf_counter() - start

    # ------------------------------------------------------------------ events

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
        network = self.network
        if not self.replies:
            done = network.run_until(until)
            for tid, dst in zip(done.id.tolist(), done.dst.tolist(), strict=True):
                src, _, fragment, snapshot = self._unqueue(tid)
                self.inbox[dst][(src, fragment)] = snapshot
                self.sent_params += float(self.fragment_params[fragment])
            total = float(done.bytes.sum()) if len(done.id) else 0.0
            self.delivered_bytes += total
            self.transmitted_bytes += total
            return
        while (delivery := network.next_delivery(until)) is not None:
            src, kind, fragment, snapshot = self._unqueue(delivery.id)
            dst = delivery.dst
            self.inbox[dst][(src, fragment)] = snapshot
            self.sent_params += float(self.fragment_params[fragment])
            self.delivered_bytes += delivery.bytes
            self.transmitted_bytes += delivery.bytes
            if kind == _REQUEST:  # AD-PSGD: answer with the latest model, queued now
                reply = self.X[dst].clone() if self.v1 else self.latest[dst]
                tid = network.submit(dst, src, float(self.message_bytes[0]), delivery.delivered)
                self._queue(tid, (dst, _REPLY, 0, reply))
                self._check_queues(delivery.delivered)

    def _end_step(self, i: int, at: float) -> None:
        """Node ``i``'s iteration ends at ``at``: its result, its messages and aggregation (in
        the order of the semantics), its next iteration."""
        if self.untrained[i]:
            self._train(np.flatnonzero(self.untrained))
        row = self.X[i]
        row.copy_(self.trained[i])
        self.steps_done[i] += 1
        if self.v1:
            self.loss_sum += float(self.step_loss[i])
            self.loss_count += 1
            self._aggregate_v1(i, row)
            self._send(i, at, row)
        else:
            self.ended[i] = True
            self.loss_count += self.H
            self._send(i, at, row)  # post-training, pre-averaging values
            self._aggregate(i, row)
        if self.steps_done[i] < self.max_iterations:
            if self.v1:
                self.step_end[i] = (self.steps_done[i] + 1) * self.step_time_s[i]
            else:
                self.step_end[i] = self._iteration_end(self.steps_done[i] + 1, i)
            self.untrained[i] = True
            if self.one_at_a_time:
                self._train(np.array([i]))
        else:
            self.step_end[i] = np.inf

    def _flush_losses(self) -> None:
        """Add the losses of ended iterations not added yet to ``loss_total`` (one device op)."""
        if self.ended.any():
            ended = torch.as_tensor(np.flatnonzero(self.ended), device=self.step_loss.device)
            self.loss_total += self.step_loss[ended].sum()
            self.ended[:] = False

    def _train(self, nodes: np.ndarray) -> None:
        """One iteration (H local steps) of ``nodes`` (ascending ids) from their current models
        into ``trained``."""
        cfg = self.cfg
        if not self.v1 and self.ended[nodes].any():
            self._flush_losses()  # their stored losses are about to be replaced
        rows = None if len(nodes) == cfg.nodes else torch.as_tensor(nodes, device=self.device)
        if rows is None:
            self.trained.copy_(self.X)
        else:
            self.trained[rows] = self.X[rows]
        first = int(self.steps_done[nodes].min()) * self.H
        total: torch.Tensor | None = None
        for h in range(self.H):
            with self._seeded_randomness(first + h):
                if rows is None:
                    batch = self.node_data.batch(self.sampler.next(cfg.batch_size))
                    losses = self.trainer.step(self.trained, batch)
                else:
                    batch = self.node_data.batch(self.sampler.next(cfg.batch_size, nodes))
                    losses = self.trainer.step_rows(self.trained, rows, batch)
            losses = losses.detach().to(self.step_loss.device, torch.float64)
            total = losses if total is None else total + losses
        index = torch.as_tensor(nodes, device=self.step_loss.device)
        self.step_loss[index] = total
        self.untrained[nodes] = False

    def _aggregate_v1(self, i: int, row: torch.Tensor) -> None:
        """v1: the coordinate-wise average, one message at a time (as runs before summed it)."""
        inbox = self.inbox[i]
        if not inbox:
            return
        entries = sorted(inbox.items())  # by (sender, fragment): a fixed summation order
        inbox.clear()
        if self.whole:
            total = row.clone()
            for _, snapshot in entries:
                total += snapshot
            row.copy_(total.div_(1 + len(entries)))
            return
        total = row.clone()
        count = torch.ones_like(row)
        for (_, fragment), snapshot in entries:
            coords = self.coords[fragment]
            total.index_add_(0, coords, snapshot[coords])
            count.index_add_(0, coords, torch.ones_like(coords, dtype=row.dtype))
        row.copy_(total.div_(count))

    def _aggregate(self, i: int, row: torch.Tensor) -> None:
        """Coordinate-wise uniform average of the own row and the inbox's copies; inbox cleared.

        A few launches per aggregation: whole models are stacked and summed; fragments are
        gathered, concatenated and added in one ``add_rows_`` (in entry order on every device: no
        atomics), the counts from how many copies of each fragment arrived."""
        inbox = self.inbox[i]
        if not inbox:
            return
        entries = sorted(inbox.items())  # by (sender, fragment): a fixed summation order
        inbox.clear()
        if self.whole:
            stacked = torch.stack([snapshot for _, snapshot in entries])
            row.add_(stacked.sum(0)).div_(1 + len(entries))
            return
        coords = [self.coords[fragment] for (_, fragment), _ in entries]
        values = torch.cat([snap[c] for c, (_, snap) in zip(coords, entries, strict=True)])
        total = row.clone()
        add_rows_(total, torch.cat(coords), values)
        copies = np.bincount([f for (_, f), _ in entries], minlength=self.fragments.n_fragments)
        count = torch.as_tensor(copies + 1.0, dtype=row.dtype, device=self.device)
        row.copy_(total.div_(count[self.coord_fragment]))

    def _send(self, i: int, at: float, row: torch.Tensor) -> None:
        """Queue node ``i``'s messages of this iteration end (see the module docstring)."""
        network, n, J = self.network, self.cfg.nodes, self.n_peers
        if self.drops:
            if self.v1:
                for tid in network.cancel_queued(i).tolist():
                    self._unqueue(tid)
            else:
                ids, sent = network.cancel_unsent(i)
                for tid in ids.tolist():
                    self._unqueue(tid)
                self.transmitted_bytes += float(sent.sum())
        rng = self.peer_rngs[i]
        snapshot = row.clone()
        if self.replies and not self.v1:
            # ADPSGD.py: degree // 2 pings to peers drawn with replacement, the whole model.
            dst = rng.integers(0, n - 1, J)
            dst = dst + (dst >= i)
            fragments = np.zeros(J, dtype=np.int64)
            self.latest[i] = snapshot
        else:
            K = self.fragments.n_fragments
            keys = rng.random((K, n - 1))
            peers = np.argpartition(keys, J - 1, axis=1)[:, :J]
            peers = peers + (peers >= i)  # indices over the others -> node ids
            fragments = np.repeat(np.arange(K), J)
            order = rng.permutation(K * J)
            dst, fragments = peers.reshape(-1)[order], fragments[order]
        ids = network.submit_many(np.full(len(dst), i), dst, self.message_bytes[fragments], at)
        for tid, fragment in zip(ids.tolist(), fragments.tolist(), strict=True):
            self._queue(tid, (i, _REQUEST, fragment, snapshot))
        self._check_queues(at)

    # ------------------------------------------------------------------ records and state

    @torch.no_grad()
    def metrics(self) -> dict[str, Any]:
        """The synchronous record plus ``local_steps_per_node`` (mean steps done); the loss is the
        mean over the steps ended since the last evaluation; traffic counts the parameters of
        messages delivered so far (replies included; queued or dropped ones not), per node and per
        round of ``local_steps`` steps. Besides (not v1), per node and round, headers included:
        ``delivered_message_bytes_per_node`` (messages delivered) and
        ``transmitted_message_bytes_per_node`` (bytes that left their senders: also the part of a
        transfer dropped while sending; a delivered message counts when delivered)."""
        rec = super().metrics()
        steps = float(self.steps_done.mean()) * self.H
        rounds_equivalent = steps / self.cfg.local_steps
        per_round = self.cfg.nodes * rounds_equivalent
        sent = self.sent_params / per_round if steps else 0.0
        rec.update(
            sent_params_per_node=sent,
            sent_bytes_per_node=4.0 * sent,
            train_loss=self.last_loss if steps else None,
            local_steps_per_node=steps,
        )
        if not self.v1:
            rec.update(
                delivered_message_bytes_per_node=self.delivered_bytes / per_round if steps else 0.0,
                transmitted_message_bytes_per_node=(
                    self.transmitted_bytes / per_round if steps else 0.0
                ),
            )
            self._flush_losses()
            self.loss_total.zero_()
        self.loss_sum, self.loss_count = 0.0, 0
        return rec

    def state_dict(self) -> dict[str, Any]:
        """:meth:`Simulation.state_dict` plus the event state: step clocks, trained results not
        yet visible, peer streams, messages queued, sending and in flight (the scheduler's own
        state), inboxes. Row snapshots shared by several messages are stored once."""
        state = super().state_dict()
        snapshots: list[torch.Tensor] = []
        index: dict[int, int] = {}

        def ref(snapshot: torch.Tensor) -> int:
            key = id(snapshot)
            if key not in index:
                index[key] = len(snapshots)
                snapshots.append(snapshot.detach().to("cpu", copy=True))
            return index[key]

        payloads = [
            [tid, src, kind, fragment, ref(snap)]
            for tid, (src, kind, fragment, snap) in sorted(self.payloads.items())
        ]
        inboxes = [
            [[src, fragment, ref(snap)] for (src, fragment), snap in sorted(inbox.items())]
            for inbox in self.inbox
        ]
        waiting = np.flatnonzero(~self.untrained & np.isfinite(self.step_end))
        state["events"] = {
            "step_end": torch.from_numpy(self.step_end.copy()),
            "steps_done": torch.from_numpy(self.steps_done.copy()),
            "untrained": torch.from_numpy(self.untrained.copy()),
            "step_loss": self.step_loss.to("cpu", copy=True),
            "trained_nodes": torch.from_numpy(waiting),
            "trained_rows": self.trained[torch.from_numpy(waiting)].detach().to("cpu", copy=True),
            "peer_rng": [r.bit_generator.state for r in self.peer_rngs],
            "network": self.network.state_dict(),
            "snapshots": snapshots,
            "payloads": payloads,
            "inboxes": inboxes,
            "sent_params": self.sent_params,
            "loss_sum": self.loss_sum,
            "loss_count": self.loss_count,
        }
        if not self.v1:
            state["events"].update(
                ended=torch.from_numpy(self.ended.copy()),
                loss_total=float(self.loss_total),
                latest=[ref(s) for s in self.latest],
                delivered_bytes=self.delivered_bytes,
                transmitted_bytes=self.transmitted_bytes,
            )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; every entry is checked first (MosaicValueError naming it)."""
        n, d = self.cfg.nodes, self.n_params
        keys = _EVENT_KEYS if self.v1 else _EVENT_KEYS + _EVENT_KEYS_SINCE_V1
        events = checked.entries(state.get("events"), "simulation.events", keys)
        where = "simulation.events."
        step_end = checked.tensor(events["step_end"], where + "step_end", torch.float64, (n,))
        steps_done = checked.tensor(events["steps_done"], where + "steps_done", torch.int64, (n,))
        untrained = checked.tensor(events["untrained"], where + "untrained", torch.bool, (n,))
        step_loss = checked.tensor(events["step_loss"], where + "step_loss", torch.float64, (n,))
        nodes = events["trained_nodes"]
        if (
            not isinstance(nodes, torch.Tensor)
            or nodes.dtype != torch.int64
            or nodes.dim() != 1
            or (len(nodes) and (nodes.min() < 0 or nodes.max() >= n))
        ):
            raise checked.bad(
                where + "trained_nodes", f"must be an int64 vector of ids in 0..{n - 1}"
            )
        rows = checked.tensor(
            events["trained_rows"], where + "trained_rows", torch.float32, (len(nodes), d)
        )
        peer_rngs = [
            checked.generator(s, f"{where}peer_rng[{i}]")
            for i, s in enumerate(checked.sequence(events["peer_rng"], where + "peer_rng", n))
        ]
        listed = events["snapshots"], events["payloads"]
        if not all(isinstance(v, list) for v in listed):
            raise checked.bad(where + "snapshots", "and payloads must be lists")
        snapshots = [
            checked.tensor(s, f"{where}snapshots[{k}]", torch.float32, (d,))
            for k, s in enumerate(events["snapshots"])
        ]

        def snapshot(k: Any, at: str) -> torch.Tensor:
            k = checked.integer(k, at, 0, len(snapshots) - 1)
            return snapshots[k].to(self.device)

        payloads = {}
        for k, entry in enumerate(events["payloads"]):
            at = f"{where}payloads[{k}]"
            tid, src, kind, fragment, snap = checked.sequence(entry, at, 5)
            payloads[int(tid)] = (
                checked.integer(src, at + ".sender", 0, n - 1),
                checked.integer(kind, at + ".kind", _REQUEST, _REPLY),
                checked.integer(fragment, at + ".fragment", 0, self.fragments.n_fragments - 1),
                snapshot(snap, at + ".snapshot"),
            )
        inboxes = []
        for i, entries in enumerate(checked.sequence(events["inboxes"], where + "inboxes", n)):
            inbox = {}
            for k, entry in enumerate(entries):
                at = f"{where}inboxes[{i}][{k}]"
                src, fragment, snap = checked.sequence(entry, at, 3)
                key = (
                    checked.integer(src, at + ".sender", 0, n - 1),
                    checked.integer(fragment, at + ".fragment", 0, self.fragments.n_fragments - 1),
                )
                inbox[key] = snapshot(snap, at + ".snapshot")
            inboxes.append(inbox)
        network = NetworkScheduler.from_state_dict(events["network"])
        if network.n_nodes != n:
            raise checked.bad(where + "network", f"has {network.n_nodes} nodes, expected {n}")
        if not self.v1:
            ended = checked.tensor(events["ended"], where + "ended", torch.bool, (n,))
            loss_total = checked.number(events["loss_total"], where + "loss_total")
            latest = [
                snapshot(k, f"{where}latest[{i}]")
                for i, k in enumerate(
                    checked.sequence(events["latest"], where + "latest", len(self.latest))
                )
            ]
            delivered = checked.number(events["delivered_bytes"], where + "delivered_bytes")
            transmitted = checked.number(events["transmitted_bytes"], where + "transmitted_bytes")
        sent = checked.number(events["sent_params"], where + "sent_params")
        loss_sum = checked.number(events["loss_sum"], where + "loss_sum")
        loss_count = checked.integer(events["loss_count"], where + "loss_count")
        super().load_state_dict({k: v for k, v in state.items() if k != "events"})
        self.step_end, self.steps_done = step_end.numpy().copy(), steps_done.numpy().copy()
        self.untrained = untrained.numpy().copy()
        self.step_loss = step_loss.to(self.step_loss.device, copy=True)
        self.trained[nodes.to(self.device)] = rows.to(self.device)
        self.peer_rngs, self.network = peer_rngs, network
        self.payloads, self.inbox = payloads, inboxes
        self.held = {}
        for payload in payloads.values():
            self.held[id(payload[3])] = self.held.get(id(payload[3]), 0) + 1
        self.sent_params, self.loss_sum, self.loss_count = sent, loss_sum, loss_count
        if not self.v1:
            self.ended = ended.numpy().copy()
            self.loss_total.fill_(loss_total)
            self.latest = latest
            self.delivered_bytes, self.transmitted_bytes = delivered, transmitted
        # A run resumed with more rounds: nodes that had stopped at the old limit go on, their
        # next step beginning at their last step end as if they had never stopped.
        stopped = np.flatnonzero(
            ~np.isfinite(self.step_end) & (self.steps_done < self.max_iterations)
        )
        if self.v1:
            self.step_end[stopped] = (self.steps_done[stopped] + 1) * self.step_time_s[stopped]
        else:
            self.step_end[stopped] = self._iteration_end(self.steps_done[stopped] + 1, stopped)
        self.untrained[stopped] = True
        if self.one_at_a_time:
            for i in stopped:
                self._train(np.array([i]))


_EVENT_KEYS = (
    "step_end",
    "steps_done",
    "untrained",
    "step_loss",
    "trained_nodes",
    "trained_rows",
    "peer_rng",
    "network",
    "snapshots",
    "payloads",
    "inboxes",
    "sent_params",
    "loss_sum",
    "loss_count",
)
# Entries of runs with the divshare-code semantics (checkpoints of v1 runs have none of them).
_EVENT_KEYS_SINCE_V1 = ("ended", "loss_total", "latest", "delivered_bytes", "transmitted_bytes")


def _check_evaluation_interval(cfg: Any, fastest_s: float) -> None:
    """Refuse ``eval_every_s`` shorter than the fastest node's step: evaluations would outnumber
    steps (1e-7 s ran for minutes and wrote megabytes of records; 1e-300 ran out of memory)."""
    every = cfg.eval_every_s
    if every is not None and every < fastest_s:
        raise MosaicValueError(
            f"eval_every_s={every:g} is shorter than a step of the fastest node ({fastest_s:g} s): "
            f"evaluations would outnumber steps; choose eval_every_s >= {fastest_s:g}"
        )
