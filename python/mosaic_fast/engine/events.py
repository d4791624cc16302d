"""The event loop: asynchronous decentralized learning in simulated time (DivShare, Swift, AD-PSGD).

What differs between the algorithms (peers per send, which peers and fragments, drops, replies)
is asked of the run's :class:`~.protocols.Protocol`; this module runs clocks, inboxes and queues.

Every node runs on its own clock (speeds from :func:`mosaic_fast.engine.parts.network_from_config`);
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
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from ..errors import MosaicValueError
from ..network.clock import scheduler_links
from ..network.scheduler import NetworkScheduler, message_bytes
from ..settings import ExperimentConfig
from ..topology import fragment_coordinates
from . import averaging, event_state, protocols
from .messages import Messaging
from .parts import BuildOptions, Parts, build_parts
from .protocols import Protocol
from .state import NetworkState
from .trainer import synchronize

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11

_PEER_STREAM = 0x9E37  # separates the peer draws from the seed's other streams


class AsyncSimulation(Messaging, NetworkState):
    """A run of an event-driven protocol (``divshare``, ``swift``, ``adpsgd``); the interface of
    :class:`~.rounds.Simulation` (``train_round``, ``metrics``, ``state_dict``), plus
    :meth:`advance_to` and :meth:`evaluation_times` for evaluations at fixed simulated times."""

    synchronous = False

    def __init__(
        self,
        cfg: ExperimentConfig,
        device: torch.device,
        *,
        one_at_a_time: bool = False,
        **options: Unpack[BuildOptions],
    ) -> None:
        protocol = protocols.get(cfg.algorithm)
        if protocol.synchronous:
            raise MosaicValueError(
                f"algorithm={cfg.algorithm!r} is not simulated by {type(self).__name__}; "
                "build the run's simulation with make_simulation"
            )
        parts = build_parts(cfg, device, **options)
        self._start(parts, protocol, one_at_a_time)

    @classmethod
    def from_parts(
        cls, parts: Parts, protocol: Protocol, placement: Any = None, *, one_at_a_time: bool = False
    ) -> AsyncSimulation:
        """The simulation of ``parts`` (one process: ``placement`` must be None)."""
        if placement is not None:
            raise MosaicValueError(
                f"algorithm={protocol.name!r} runs nodes on their own clocks in one process"
            )
        sim = cls.__new__(cls)
        sim._start(parts, protocol, one_at_a_time)
        return sim

    def _start(self, parts: Parts, protocol: Protocol, one_at_a_time: bool) -> None:
        self._attach(parts, protocol)
        cfg = self.cfg
        self.trainer.optimizer.require_row_steps()
        self.one_at_a_time = one_at_a_time
        self.v1 = cfg.async_semantics == "v1"
        # H steps per iteration (v1: one step per communication; local_steps only sets a round).
        self.H = 1 if self.v1 else cfg.local_steps
        self.step_time_s = np.asarray(parts.network.step_time_s, dtype=np.float64)
        self.fastest_s = float(self.step_time_s.min())
        self.max_iterations = cfg.rounds * cfg.local_steps // self.H
        _check_evaluation_interval(cfg, self.fastest_s)
        self.n_peers = protocol.peers_per_send(cfg)
        self.drops = protocol.drops(cfg)
        self.replies = protocol.replies
        self._fragments_setup()
        uplink, downlink, latency = scheduler_links(parts.network)
        self.network = NetworkScheduler(
            uplink,
            downlink,
            latency,
            fifo_per_sender=self.v1,
            fifo_per_pair=not self.v1,
            bandwidth_sharing=cfg.bandwidth_sharing,
        )
        self.peer_rngs = [
            np.random.default_rng([cfg.seed, _PEER_STREAM, i]) for i in range(cfg.nodes)
        ]
        self._events_setup()
        if one_at_a_time:
            for i in range(cfg.nodes):
                self._train(np.array([i]))

    def _fragments_setup(self) -> None:
        """Every fragment's coordinates, message bytes and parameter count."""
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

    def _events_setup(self) -> None:
        """The event state at time 0 (see the comments)."""
        n = self.cfg.nodes
        # When each node's iteration ends (inf: none running), iterations done, whose
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
        # Replies: each node's latest post-training, pre-averaging model (what it answers with).
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

    def _iteration_end(self, k: Any, nodes: Any = slice(None)) -> np.ndarray:
        """When iteration ``k`` (from 1) of ``nodes`` ends: ``k H`` steps of each node's step
        time (a product, not a sum: no drift; the fastest node's ends fall exactly on round
        ends)."""
        steps = np.asarray(k, dtype=np.int64) * self.H
        # numpy types indexing by ``nodes`` (Any) as Any
        return cast(np.ndarray, steps.astype(np.float64) * self.step_time_s[nodes])

    def _next_end(self, nodes: Any) -> np.ndarray:
        """When the next iteration (v1: step) of ``nodes`` ends."""
        if self.v1:
            return cast(np.ndarray, (self.steps_done[nodes] + 1) * self.step_time_s[nodes])
        return self._iteration_end(self.steps_done[nodes] + 1, nodes)

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
            self.step_end[i] = self._next_end(i)
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
        assert total is not None  # H >= 1 steps ran
        index = torch.as_tensor(nodes, device=self.step_loss.device)
        self.step_loss[index] = total
        self.untrained[nodes] = False

    def _aggregate_v1(self, i: int, row: torch.Tensor) -> None:
        """v1: the coordinate-wise average, one message at a time (as runs before summed it)."""
        entries = _take(self.inbox[i])
        if entries:
            averaging.one_at_a_time(row, entries, self.coords, self.whole)

    def _aggregate(self, i: int, row: torch.Tensor) -> None:
        """Coordinate-wise uniform average of the own row and the inbox's copies; inbox cleared."""
        entries = _take(self.inbox[i])
        if not entries:
            return
        if self.whole:
            averaging.whole_models(row, entries)
        else:
            averaging.fragments(row, entries, self.coords, self.coord_fragment)

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
        """:meth:`NetworkState.state_dict` plus the event state (:func:`.event_state.events_of`)."""
        state = super().state_dict()
        state["events"] = event_state.events_of(self)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; every entry is checked first (MosaicValueError naming it)."""
        restore = event_state.checked_events(self, state.get("events"))
        super().load_state_dict({k: v for k, v in state.items() if k != "events"})
        restore()
        # A run resumed with more rounds: nodes that had stopped at the old limit go on, their
        # next step beginning at their last step end as if they had never stopped.
        stopped = np.flatnonzero(
            ~np.isfinite(self.step_end) & (self.steps_done < self.max_iterations)
        )
        self.step_end[stopped] = self._next_end(stopped)
        self.untrained[stopped] = True
        if self.one_at_a_time:
            for i in stopped:
                self._train(np.array([i]))


def _take(inbox: dict[tuple[int, int], torch.Tensor]) -> list[tuple[tuple[int, int], torch.Tensor]]:
    """The inbox's entries by (sender, fragment), a fixed summation order; the inbox cleared."""
    entries = sorted(inbox.items())
    inbox.clear()
    return entries


def _check_evaluation_interval(cfg: Any, fastest_s: float) -> None:
    """Refuse ``eval_every_s`` shorter than the fastest node's step: evaluations would outnumber
    steps (1e-7 s ran for minutes and wrote megabytes of records; 1e-300 ran out of memory)."""
    every = cfg.eval_every_s
    if every is not None and every < fastest_s:
        raise MosaicValueError(
            f"eval_every_s={every:g} is shorter than a step of the fastest node ({fastest_s:g} s): "
            f"evaluations would outnumber steps; choose eval_every_s >= {fastest_s:g}"
        )
