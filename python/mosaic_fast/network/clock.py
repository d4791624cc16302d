"""Simulated time of synchronous rounds (Mosaic, EL, D-PSGD) under the network and compute model.

A round lasts as long as its slowest node's ``H`` local steps plus the time for all of that round's
messages to arrive: every node sends fragment ``k`` to each of its out-neighbours in graph ``k`` once
the slowest node has finished training (the round's barrier); the messages share every node's uplink
and downlink fairly (:mod:`mosaic_fast.network.scheduler`) and each pays its latency. A message of a
fragment of ``m`` parameters has ``4 m`` bytes plus a header.

Node speeds come from :func:`mosaic_fast.engine.parts.network_from_config`: the ``step_time`` setting, a
``network`` file, or, when neither gives one, the ``device_profile``: :func:`profile_step_time`, from
the model's FLOPs per step (counted by torch, the same in every run) and the profile's FLOP/s and
per-step overhead; ``measured`` times one step on this machine (the rule before profiles; it
varies between runs). Either is recorded in ``config.json`` as ``measured_step_time_s`` and a
resumed run keeps it.

Links are shared by the config's ``bandwidth_sharing`` (max-min by default). A round's messages
all leave at its barrier, so when a compute straggler sets the pace every node's transfers start
together on equal links, and max-min and min-share give the same round time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .scheduler import DEFAULT_HEADER_BYTES, schedule
from .scheduler_args import BANDWIDTH_SHARING
from .spec import DEVICE_PROFILES, NetworkSpec


class RoundClock:
    """``round_seconds(graphs, fragments)``: the simulated length of one synchronous round."""

    def __init__(
        self,
        spec: NetworkSpec,
        local_steps: int,
        header_bytes: int = DEFAULT_HEADER_BYTES,
        bandwidth_sharing: str = BANDWIDTH_SHARING[0],
    ) -> None:
        self.spec, self.local_steps, self.header_bytes = spec, local_steps, header_bytes
        self.bandwidth_sharing = bandwidth_sharing
        self.compute_s = float(local_steps * np.max(spec.step_time_s))
        self._uplink, self._downlink, self._latency = scheduler_links(spec)

    def round_seconds(self, graphs: Any, fragments: Any) -> float:
        """The slowest node's local steps, then the last delivery of the round's messages."""
        sizes = np.asarray(fragments.fragment_sizes(), dtype=np.int64)
        src, dst, n_bytes = [], [], []
        for k in range(graphs.n_fragments):
            indptr, senders = graphs.in_csr(k)
            counts = np.diff(indptr)
            src.append(np.asarray(senders, dtype=np.int64))
            dst.append(np.repeat(np.arange(len(counts), dtype=np.int64), counts))
            n_bytes.append(np.full(len(senders), 4.0 * sizes[k] + self.header_bytes))
        if not src or sum(len(s) for s in src) == 0:
            return self.compute_s
        times = schedule(
            self._uplink,
            self._downlink,
            self._latency,
            np.concatenate(src),
            np.concatenate(dst),
            np.concatenate(n_bytes),
            bandwidth_sharing=self.bandwidth_sharing,
        )
        return self.compute_s + float(np.max(times.delivered))


def profile_step_time(step: Callable[[], Any], profile: str, n_nodes: int) -> float:
    """Seconds one node's local step takes on ``profile`` (:data:`mosaic_fast.network.spec.
    DEVICE_PROFILES`): its overhead plus the FLOPs torch counts in ``step()`` (one step of all
    ``n_nodes`` nodes) over ``n_nodes``, at the profile's FLOP/s. FLOPs depend on shapes only, so
    two runs of one command get the same step time. Operations torch does not count (gathers,
    element-wise updates: the sparse MF step counts none) cost only the overhead."""
    from torch.utils.flop_counter import FlopCounterMode

    rate, overhead = DEVICE_PROFILES[profile] or (math.inf, 0.0)
    with FlopCounterMode(display=False) as counter:
        step()
    seconds: float = overhead + counter.get_total_flops() / n_nodes / rate
    return seconds


def scheduler_links(spec: NetworkSpec) -> tuple[np.ndarray, np.ndarray, float | np.ndarray]:
    """``(uplink, downlink, latency)`` of ``spec`` as the scheduler takes them: rates (``inf``: an
    unlimited link), and one latency, or per ordered pair the mean of its two ends' (NetworkSpec's
    convention)."""
    lat = np.asarray(spec.latency_s, dtype=np.float64)
    if np.all(lat == lat[0]):
        latency: float | np.ndarray = float(lat[0])
    else:
        latency = (lat[:, None] + lat[None, :]) / 2.0
    return spec.uplink_Bps, spec.downlink_Bps, latency
