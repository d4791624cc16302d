"""Network model benchmark: transfer events per second of the Rust transfer scheduler alone.

A synthetic run of 1,000 nodes (smoke mode: 100): every round each node sends one fragment message to
each of 8 random peers (``message_bytes`` of 1/8 of a 1M-parameter model), ready at the round's start
plus a per-node jitter (nodes finish training at different times), over heterogeneous links (uplinks
5-50 MB/s, downlinks 10-100 MB/s, per-node latency 5-50 ms). Rounds are 1 s apart: the slowest
uplink needs 0.8 s for a round's 4 MB, so with the jitter successive rounds' transfers overlap but
no backlog builds up. The whole batch is scheduled in one call (``network_sim.schedule``, GIL released),
concurrently, with FIFO per sender and with FIFO per (sender, peer), under min-share and max-min
link sharing.

Max-min refills, at every event, the transfers the event can move: those linked through full links
to the links it changed, less those bottlenecked elsewhere (events at equal times share one
refill). The measured figures, before and after each change, are in docs/benchmarks.md ("Network
scheduler").

A transfer makes two events, its start and its last byte (its delivery is computed with the last
byte); events per second = 2 * transfers / seconds. Target: at least 10^6 events per second.

    pytest benches/bench_network.py --benchmark-min-rounds=3
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mosaic_fast.network.scheduler import message_bytes, schedule

from .conftest import SUMMARY, min_seconds

DEGREE = 8
FRAGMENT_PARAMS = 1_000_000 // 8
TARGET_EVENTS_PER_SECOND = 1e6


def workload(full: bool) -> dict[str, Any]:
    """The synthetic run: 1,000 nodes x 8 peers x 125 rounds (1M transfers), or 100 x 8 x 5."""
    n_nodes, rounds = (1_000, 125) if full else (100, 5)
    rng = np.random.default_rng(0)
    m = n_nodes * DEGREE * rounds
    src = np.repeat(np.arange(n_nodes, dtype=np.int64), DEGREE)
    src = np.tile(src, rounds)
    # Peers: a random other node per message (repeats allowed, as with independent fragments).
    dst = (src + rng.integers(1, n_nodes, m)) % n_nodes
    jitter = rng.uniform(0.0, 0.5, n_nodes)
    ready = np.repeat(np.arange(rounds, dtype=np.float64), n_nodes * DEGREE) + np.tile(
        np.repeat(jitter, DEGREE), rounds
    )
    nbytes = np.full(m, float(message_bytes(FRAGMENT_PARAMS)))
    return {
        "uplink": rng.uniform(5e6, 5e7, n_nodes),
        "downlink": rng.uniform(1e7, 1e8, n_nodes),
        "latency": rng.uniform(0.005, 0.05, n_nodes),
        "src": src,
        "dst": dst,
        "bytes": nbytes,
        "ready_time": ready,
    }


@pytest.fixture(scope="module")
def transfers(full_size: bool) -> dict[str, Any]:
    return workload(full_size)


QUEUES = {
    "concurrent": {},
    "fifo": {"fifo_per_sender": True},
    "pair": {"fifo_per_pair": True},
}


@pytest.mark.parametrize("sharing", ["min-share", "max-min"])
@pytest.mark.parametrize("queue", list(QUEUES))
def test_scheduler_events_per_second(
    benchmark, transfers: dict[str, Any], queue: str, sharing: str
) -> None:
    benchmark.group = "network-scheduler"
    out = benchmark(schedule, **transfers, **QUEUES[queue], bandwidth_sharing=sharing)
    m = transfers["src"].shape[0]
    assert np.all(out.start >= transfers["ready_time"])
    assert np.all(out.delivered > out.last_byte)
    seconds = min_seconds(benchmark)
    if seconds is None:
        return
    events_per_second = 2 * m / seconds
    SUMMARY.append(
        {
            "bench": f"network-scheduler-{queue}-{sharing}",
            "nodes": transfers["uplink"].shape[0],
            "transfers": m,
            "seconds": f"{seconds:.3f}",
            "events_per_s": f"{events_per_second:.3g}",
            "transfers_per_s": f"{m / seconds:.3g}",
            "makespan_s": f"{out.delivered.max():.1f}",
        }
    )
