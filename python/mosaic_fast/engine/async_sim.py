"""Asynchronous decentralized learning in simulated time: DivShare, Swift and AD-PSGD.

Every node runs on its own clock (speeds from :func:`mosaic_fast.network.network_from_config`);
messages go through the fair-sharing scheduler of :mod:`mosaic_fast.network_sim`, one at a time per
sender (each node drains a FIFO send queue through its uplink while it computes).

Per node, repeated (DESIGN §5):

1. one local SGD step, ``step_time_s[i]`` seconds, on the model the node held when it began;
2. at the step's end, aggregate: every coordinate becomes the uniform average of the node's own
   value and every received copy of it (only the latest copy per (sender, fragment) is kept; the
   inbox is then cleared);
3. send. ``divshare``: for every fragment, ``degree`` (J) distinct peers drawn uniformly, fresh per
   fragment and per step; the J x K messages enter the send queue in a random order and carry the
   fragment's values at that moment. With ``drop_unsent`` the messages of the previous step still
   queued are dropped first. ``swift``: the same with K = 1 and no dropping. ``adpsgd``: the whole
   model to max(1, J // 2) random peers; each receiver answers at once with its own latest model
   (the reply joins the end of its send queue), and both average the other's copy at their next
   step end. Without dropping, a node whose link cannot carry a step's messages in a step's time
   builds an ever longer queue (as DivShare's own Swift and AD-PSGD baselines do); the run stops
   with a one-line error once the queued models would take more than ``_QUEUE_LIMIT_BYTES``.

Ties: deliveries at or before a step end count for it; events at equal times go deliveries first
(by transfer id), then step ends by node id, one at a time, so with zero latency on unlimited
links a message sent at a step end by node j reaches the step ends of that same instant of the
nodes after j. All randomness comes from per-node streams of the
seed (data order, peers), so results do not depend on how steps are grouped.

Rounds: a round is a slice of simulated time of ``local_steps`` steps of the fastest node; every
node stops after ``rounds x local_steps`` steps (the fastest does exactly that many).

Batching (exact): a node's step depends only on the model it held when the step began, its
minibatch and its optimizer state, and its result becomes visible only at the step's end. So
steps are not computed when they begin but when the first pending one must end: every step
begun by then is trained in one batched call (with equal speeds, all n nodes at once). The
state ``X`` always holds what each node held at its last step end, which is what evaluations,
replies and messages read. ``one_at_a_time=True`` trains every step alone as it begins: the
reference the batched engine is tested against.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..errors import MosaicValueError
from ..network_sim import NetworkScheduler, message_bytes
from ..topology import fragment_coordinates
from . import state as checked
from .clock import scheduler_links
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
        self.step_time_s = np.asarray(spec.step_time_s, dtype=np.float64)
        self.fastest_s = float(self.step_time_s.min())
        self.max_steps = cfg.rounds * cfg.local_steps
        # AD-PSGD asks degree // 2 peers, whose replies make up the rest of its degree models
        # per step (as DivShare's baseline does): every algorithm sends about degree models.
        self.n_peers = max(1, cfg.degree // 2) if cfg.algorithm == "adpsgd" else cfg.degree
        self.drops = cfg.algorithm == "divshare" and cfg.drop_unsent
        self.replies = cfg.algorithm == "adpsgd"
        self.coords = fragment_coordinates(self.fragments, self.device)
        self.whole = self.fragments.n_fragments == 1
        sizes = np.asarray(self.fragments.fragment_sizes(), dtype=np.int64)
        self.message_bytes = np.asarray(message_bytes(sizes), dtype=np.float64)
        self.fragment_params = sizes.astype(np.float64)
        uplink, downlink, latency = scheduler_links(spec)
        self.network = NetworkScheduler(uplink, downlink, latency, fifo_per_sender=True)
        self.peer_rngs = [np.random.default_rng([cfg.seed, _PEER_STREAM, i]) for i in range(n)]
        # Event state: when each node's step ends (inf: no step running), steps done, whose step
        # is not trained yet, and the trained results (in the second buffer) with their losses.
        self.step_end = self.step_time_s.copy()
        self.steps_done = np.zeros(n, dtype=np.int64)
        self.untrained = np.ones(n, dtype=bool)
        self.trained = self._spare
        self.step_loss = torch.zeros(n, dtype=torch.float64)
        # Messages: payloads by transfer id (sender, kind, fragment, the sender's row snapshot),
        # and every node's inbox, (sender, fragment) -> snapshot.
        self.payloads: dict[int, tuple[int, int, int, torch.Tensor]] = {}
        self.inbox: list[dict[tuple[int, int], torch.Tensor]] = [{} for _ in range(n)]
        # Bookkeeping for the records: parameters delivered, losses since the last evaluation.
        self.sent_params = 0.0
        self.loss_sum, self.loss_count = 0.0, 0
        if one_at_a_time:
            for i in range(n):
                self._train(np.array([i]))

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
        if self.loss_count:  # what the driver checks for divergence
            self.last_loss = self.loss_sum / self.loss_count
        synchronize(self.device)
        self.train_seconds += time.perf_counter() - start

    # ------------------------------------------------------------------ events

    def _check_queues(self, at: float) -> None:
        """A one-line error when the messages waiting in send queues hold more than
        ``_QUEUE_LIMIT_BYTES`` of row snapshots (each step's snapshot is stored once)."""
        snapshots = {id(payload[3]) for payload in self.payloads.values()}
        held = 4.0 * self.n_params * len(snapshots)
        if held > _QUEUE_LIMIT_BYTES:
            raise MosaicValueError(
                f"algorithm={self.cfg.algorithm!r}: after {at:g} simulated seconds the send queues "
                f"hold {self.network.n_queued} messages ({held / 2**30:.1f} GiB of models): the "
                "links cannot carry a step's messages per step; use faster links, a longer "
                "step_time, a smaller degree, or divshare with drop_unsent"
            )

    def _deliver(self, until: float) -> None:
        """Put every message delivered at or before ``until`` into its receiver's inbox."""
        network = self.network
        if not self.replies:
            done = network.run_until(until)
            for tid, dst in zip(done.id.tolist(), done.dst.tolist(), strict=True):
                src, _, fragment, snapshot = self.payloads.pop(tid)
                self.inbox[dst][(src, fragment)] = snapshot
                self.sent_params += float(self.fragment_params[fragment])
            return
        while (delivery := network.next_delivery(until)) is not None:
            src, kind, fragment, snapshot = self.payloads.pop(delivery.id)
            dst = delivery.dst
            self.inbox[dst][(src, fragment)] = snapshot
            self.sent_params += float(self.fragment_params[fragment])
            if kind == _REQUEST:  # AD-PSGD: answer with the latest model, now
                reply = self.X[dst].clone()
                tid = network.submit(dst, src, float(self.message_bytes[0]), delivery.delivered)
                self.payloads[tid] = (dst, _REPLY, 0, reply)

    def _end_step(self, i: int, at: float) -> None:
        """Node ``i``'s step ends at ``at``: its result, aggregation, its messages, its next step."""
        if self.untrained[i]:
            self._train(np.flatnonzero(self.untrained))
        row = self.X[i]
        row.copy_(self.trained[i])
        self.steps_done[i] += 1
        self.loss_sum += float(self.step_loss[i])
        self.loss_count += 1
        self._aggregate(i, row)
        self._send(i, at, row)
        if self.steps_done[i] < self.max_steps:
            # Nodes never wait: step k ends at k x step time (no drift from summing, and the
            # fastest node's ends fall exactly on round ends).
            self.step_end[i] = (self.steps_done[i] + 1) * self.step_time_s[i]
            self.untrained[i] = True
            if self.one_at_a_time:
                self._train(np.array([i]))
        else:
            self.step_end[i] = np.inf

    def _train(self, nodes: np.ndarray) -> None:
        """One local step of ``nodes`` (ascending ids) from their current models into ``trained``."""
        cfg = self.cfg
        with self._seeded_randomness(int(self.steps_done[nodes].min())):
            if len(nodes) == cfg.nodes:
                batch = self.node_data.batch(self.sampler.next(cfg.batch_size))
                self.trained.copy_(self.X)
                losses = self.trainer.step(self.trained, batch)
            else:
                batch = self.node_data.batch(self.sampler.next(cfg.batch_size, nodes))
                rows = torch.as_tensor(nodes, device=self.device)
                self.trained[rows] = self.X[rows]
                losses = self.trainer.step_rows(self.trained, rows, batch)
        self.step_loss[torch.as_tensor(nodes)] = losses.detach().to("cpu", torch.float64)
        self.untrained[nodes] = False

    def _aggregate(self, i: int, row: torch.Tensor) -> None:
        """Coordinate-wise uniform average of the own row and the inbox's copies; inbox cleared."""
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

    def _send(self, i: int, at: float, row: torch.Tensor) -> None:
        """Queue node ``i``'s messages of this step end (see the module docstring)."""
        network, n, J = self.network, self.cfg.nodes, self.n_peers
        if self.drops:
            for tid in network.cancel_queued(i).tolist():
                del self.payloads[tid]
        rng, K = self.peer_rngs[i], self.fragments.n_fragments
        keys = rng.random((K, n - 1))
        peers = np.argpartition(keys, J - 1, axis=1)[:, :J]
        peers = peers + (peers >= i)  # indices over the others -> node ids
        fragments = np.repeat(np.arange(K), J)
        order = rng.permutation(K * J)
        dst, fragments = peers.reshape(-1)[order], fragments[order]
        ids = network.submit_many(np.full(K * J, i), dst, self.message_bytes[fragments], at)
        snapshot = row.clone()
        for tid, fragment in zip(ids.tolist(), fragments.tolist(), strict=True):
            self.payloads[tid] = (i, _REQUEST, fragment, snapshot)

    # ------------------------------------------------------------------ records and state

    @torch.no_grad()
    def metrics(self) -> dict[str, Any]:
        """The synchronous record plus ``local_steps_per_node`` (mean steps done); the loss is the
        mean over the steps ended since the last evaluation; traffic counts the parameters of
        messages delivered so far (replies included; queued or dropped ones not), per node and per
        round of ``local_steps`` steps."""
        rec = super().metrics()
        steps = float(self.steps_done.mean())
        rounds_equivalent = steps / self.cfg.local_steps
        sent = self.sent_params / self.cfg.nodes / rounds_equivalent if steps else 0.0
        rec.update(
            sent_params_per_node=sent,
            sent_bytes_per_node=4.0 * sent,
            train_loss=self.last_loss if steps else None,
            local_steps_per_node=steps,
        )
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
            "step_loss": self.step_loss.clone(),
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
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; every entry is checked first (MosaicValueError naming it)."""
        n, d = self.cfg.nodes, self.n_params
        events = checked.entries(state.get("events"), "simulation.events", _EVENT_KEYS)
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
        sent = checked.number(events["sent_params"], where + "sent_params")
        loss_sum = checked.number(events["loss_sum"], where + "loss_sum")
        loss_count = checked.integer(events["loss_count"], where + "loss_count")
        super().load_state_dict({k: v for k, v in state.items() if k != "events"})
        self.step_end, self.steps_done = step_end.numpy().copy(), steps_done.numpy().copy()
        self.untrained, self.step_loss = untrained.numpy().copy(), step_loss.clone()
        self.trained[nodes.to(self.device)] = rows.to(self.device)
        self.peer_rngs, self.network = peer_rngs, network
        self.payloads, self.inbox = payloads, inboxes
        self.sent_params, self.loss_sum, self.loss_count = sent, loss_sum, loss_count
        # A run resumed with more rounds: nodes that had stopped at the old limit go on, their
        # next step beginning at their last step end as if they had never stopped.
        stopped = np.flatnonzero(~np.isfinite(self.step_end) & (self.steps_done < self.max_steps))
        self.step_end[stopped] = (self.steps_done[stopped] + 1) * self.step_time_s[stopped]
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
