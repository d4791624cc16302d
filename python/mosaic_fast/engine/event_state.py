"""The event loop's checkpoint entries (``state["events"]``): written, checked, restored.

Step clocks, trained results not yet visible, peer streams, messages queued, sending and in
flight (the scheduler's own state), inboxes. Row snapshots shared by several messages are stored
once. The keys are those checkpoints have always held (``_EVENT_KEYS``; runs with the
divshare-code semantics add ``_EVENT_KEYS_SINCE_V1``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .. import state_dicts as checked
from ..network.scheduler import NetworkScheduler

REQUEST, REPLY = 0, 1  # message kinds (replies: protocols whose receivers answer)

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
_WHERE = "simulation.events."


def events_of(sim: Any) -> dict[str, Any]:
    """The event state of ``sim`` (an :class:`~.events.AsyncSimulation`), on the CPU."""
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
        for tid, (src, kind, fragment, snap) in sorted(sim.payloads.items())
    ]
    inboxes = [
        [[src, fragment, ref(snap)] for (src, fragment), snap in sorted(inbox.items())]
        for inbox in sim.inbox
    ]
    waiting = np.flatnonzero(~sim.untrained & np.isfinite(sim.step_end))
    events = {
        "step_end": torch.from_numpy(sim.step_end.copy()),
        "steps_done": torch.from_numpy(sim.steps_done.copy()),
        "untrained": torch.from_numpy(sim.untrained.copy()),
        "step_loss": sim.step_loss.to("cpu", copy=True),
        "trained_nodes": torch.from_numpy(waiting),
        "trained_rows": sim.trained[torch.from_numpy(waiting)].detach().to("cpu", copy=True),
        "peer_rng": [r.bit_generator.state for r in sim.peer_rngs],
        "network": sim.network.state_dict(),
        "snapshots": snapshots,
        "payloads": payloads,
        "inboxes": inboxes,
        "sent_params": sim.sent_params,
        "loss_sum": sim.loss_sum,
        "loss_count": sim.loss_count,
    }
    if not sim.v1:
        events.update(
            ended=torch.from_numpy(sim.ended.copy()),
            loss_total=float(sim.loss_total),
            latest=[ref(s) for s in sim.latest],
            delivered_bytes=sim.delivered_bytes,
            transmitted_bytes=sim.transmitted_bytes,
        )
    return events


def checked_events(sim: Any, events: Any) -> Callable[[], None]:
    """Check every entry of ``events`` against ``sim`` (MosaicValueError naming the first bad
    one, and then nothing has changed); returns what writes them into ``sim``."""
    n = sim.cfg.nodes
    keys = _EVENT_KEYS if sim.v1 else _EVENT_KEYS + _EVENT_KEYS_SINCE_V1
    events = checked.entries(events, "simulation.events", keys)
    clocks = _clocks(sim, events)
    snapshots = _snapshots(sim, events)
    payloads = _payloads(sim, events["payloads"], snapshots)
    inboxes = _inboxes(sim, events["inboxes"], snapshots)
    peer_rngs = [
        checked.generator(s, f"{_WHERE}peer_rng[{i}]")
        for i, s in enumerate(checked.sequence(events["peer_rng"], _WHERE + "peer_rng", n))
    ]
    network = NetworkScheduler.from_state_dict(events["network"])
    if network.n_nodes != n:
        raise checked.bad(_WHERE + "network", f"has {network.n_nodes} nodes, expected {n}")
    since_v1 = None if sim.v1 else _since_v1(sim, events, snapshots)
    counts = (
        checked.number(events["sent_params"], _WHERE + "sent_params"),
        checked.number(events["loss_sum"], _WHERE + "loss_sum"),
        checked.integer(events["loss_count"], _WHERE + "loss_count"),
    )

    def restore() -> None:
        step_end, steps_done, untrained, step_loss, nodes, rows = clocks
        sim.step_end, sim.steps_done = step_end.numpy().copy(), steps_done.numpy().copy()
        sim.untrained = untrained.numpy().copy()
        sim.step_loss = step_loss.to(sim.step_loss.device, copy=True)
        sim.trained[nodes.to(sim.device)] = rows.to(sim.device)
        sim.peer_rngs, sim.network = peer_rngs, network
        sim.payloads, sim.inbox = payloads, inboxes
        sim.held = {}
        for payload in payloads.values():
            sim.held[id(payload[3])] = sim.held.get(id(payload[3]), 0) + 1
        sim.sent_params, sim.loss_sum, sim.loss_count = counts
        if since_v1 is not None:
            ended, loss_total, latest, delivered, transmitted = since_v1
            sim.ended = ended.numpy().copy()
            sim.loss_total.fill_(loss_total)
            sim.latest = latest
            sim.delivered_bytes, sim.transmitted_bytes = delivered, transmitted

    return restore


def _clocks(
    sim: Any, events: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """step_end, steps_done, untrained, step_loss, trained_nodes, trained_rows, checked."""
    n, d, at = sim.cfg.nodes, sim.n_params, _WHERE
    step_end = checked.tensor(events["step_end"], at + "step_end", torch.float64, (n,))
    steps_done = checked.tensor(events["steps_done"], at + "steps_done", torch.int64, (n,))
    untrained = checked.tensor(events["untrained"], at + "untrained", torch.bool, (n,))
    step_loss = checked.tensor(events["step_loss"], at + "step_loss", torch.float64, (n,))
    nodes = events["trained_nodes"]
    if (
        not isinstance(nodes, torch.Tensor)
        or nodes.dtype != torch.int64
        or nodes.dim() != 1
        or (len(nodes) and (nodes.min() < 0 or nodes.max() >= n))
    ):
        raise checked.bad(at + "trained_nodes", f"must be an int64 vector of ids in 0..{n - 1}")
    rows = checked.tensor(
        events["trained_rows"], at + "trained_rows", torch.float32, (len(nodes), d)
    )
    return step_end, steps_done, untrained, step_loss, nodes, rows


def _snapshots(sim: Any, events: dict[str, Any]) -> Callable[[Any, str], torch.Tensor]:
    """A lookup of the stored row snapshots by index (each checked)."""
    listed = events["snapshots"], events["payloads"]
    if not all(isinstance(v, list) for v in listed):
        raise checked.bad(_WHERE + "snapshots", "and payloads must be lists")
    snapshots = [
        checked.tensor(s, f"{_WHERE}snapshots[{k}]", torch.float32, (sim.n_params,))
        for k, s in enumerate(events["snapshots"])
    ]

    def snapshot(k: object, at: str) -> torch.Tensor:
        k = checked.integer(k, at, 0, len(snapshots) - 1)
        return snapshots[k].to(sim.device)

    return snapshot


def _payloads(
    sim: Any, entries: list[Any], snapshot: Callable[[Any, str], torch.Tensor]
) -> dict[int, tuple[int, int, int, torch.Tensor]]:
    n, K = sim.cfg.nodes, sim.fragments.n_fragments
    payloads = {}
    for k, entry in enumerate(entries):
        at = f"{_WHERE}payloads[{k}]"
        tid, src, kind, fragment, snap = checked.sequence(entry, at, 5)
        payloads[int(tid)] = (
            checked.integer(src, at + ".sender", 0, n - 1),
            checked.integer(kind, at + ".kind", REQUEST, REPLY),
            checked.integer(fragment, at + ".fragment", 0, K - 1),
            snapshot(snap, at + ".snapshot"),
        )
    return payloads


def _inboxes(
    sim: Any, listed: Any, snapshot: Callable[[Any, str], torch.Tensor]
) -> list[dict[tuple[int, int], torch.Tensor]]:
    n, K = sim.cfg.nodes, sim.fragments.n_fragments
    inboxes = []
    for i, entries in enumerate(checked.sequence(listed, _WHERE + "inboxes", n)):
        inbox = {}
        for k, entry in enumerate(entries):
            at = f"{_WHERE}inboxes[{i}][{k}]"
            src, fragment, snap = checked.sequence(entry, at, 3)
            key = (
                checked.integer(src, at + ".sender", 0, n - 1),
                checked.integer(fragment, at + ".fragment", 0, K - 1),
            )
            inbox[key] = snapshot(snap, at + ".snapshot")
        inboxes.append(inbox)
    return inboxes


def _since_v1(
    sim: Any, events: dict[str, Any], snapshot: Callable[[Any, str], torch.Tensor]
) -> tuple[torch.Tensor, float, list[torch.Tensor], float, float]:
    n, at = sim.cfg.nodes, _WHERE
    ended = checked.tensor(events["ended"], at + "ended", torch.bool, (n,))
    loss_total = checked.number(events["loss_total"], at + "loss_total")
    latest = [
        snapshot(k, f"{at}latest[{i}]")
        for i, k in enumerate(checked.sequence(events["latest"], at + "latest", len(sim.latest)))
    ]
    delivered = checked.number(events["delivered_bytes"], at + "delivered_bytes")
    transmitted = checked.number(events["transmitted_bytes"], at + "transmitted_bytes")
    return ended, loss_total, latest, delivered, transmitted
