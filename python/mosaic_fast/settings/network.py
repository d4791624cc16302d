"""Settings of simulated time and the network: algorithm, step times, links, stragglers."""

from __future__ import annotations

from dataclasses import dataclass

from ..network.scheduler_args import BANDWIDTH_SHARING
from ..network.spec import DEVICE_PROFILES, STRAGGLER_KINDS
from .choices import ALGORITHMS, ASYNC_SEMANTICS
from .setting import setting


@dataclass(frozen=True)
class TimeAndNetwork:
    """The algorithm and the simulated clock and network it runs on (mosaic_fast.network.spec holds the units, files and straggler draw)."""

    algorithm: str = setting(
        "mosaic",
        help="Algorithm: mosaic (synchronous rounds) or, in simulated time, divshare, swift or adpsgd.",
        choices=ALGORITHMS,
        axis=True,
    )
    step_time: float | None = setting(
        None,
        help="Simulated seconds per local SGD step (default: from the model's FLOPs per step and "
        "--device-profile).",
        above=0,
        below=1e9,
        axis=True,
    )
    device_profile: str = setting(
        "cpu",
        help="Device whose speed sets the default step time: cpu (1e11 FLOP/s, 0.1 ms a step), "
        "gpu (1e13 FLOP/s, 0.2 ms a step), or measured (one step timed on this machine; differs "
        "between runs). Recorded step time: config.json's measured_step_time_s.",
        choices=tuple(DEVICE_PROFILES),
        axis=True,
    )
    bandwidth: str | None = setting(
        None,
        help="Every node's uplink and downlink in bits per second: 60Mbit, 500kbit, 1Gbit (default: unlimited).",
        axis=True,
    )
    uplink: str | None = setting(
        None, help="Every node's uplink, in place of --bandwidth's: 10Mbit.", axis=True
    )
    downlink: str | None = setting(
        None, help="Every node's downlink, in place of --bandwidth's: 10Mbit.", axis=True
    )
    latency: str = setting("0s", help="Latency every message pays: 1ms, 200us, 0.5s.", axis=True)
    stragglers: float = setting(
        0.0,
        help="Fraction of nodes that are stragglers (fraction x nodes, rounded half up; drawn from the seed).",
        at_least=0,
        below=1,
        axis=True,
    )
    straggler_slowdown: float = setting(
        6.0,
        help="Stragglers' bandwidth is divided and/or step time multiplied (--straggler-kind) by this.",
        at_least=1,
        axis=True,
    )
    straggler_kind: str = setting(
        "comm",
        help="What stragglers are slow at: comm (bandwidth), compute (step time) or both.",
        choices=STRAGGLER_KINDS,
        axis=True,
    )
    network: str | None = setting(
        None,
        help="Per-node speeds FILE: a FedScale device capacity pickle (read with a restricted "
        "unpickler: dicts, strings, numbers only) or a .csv with columns "
        "node,step_time_s,uplink_bps,downlink_bps,latency_s.",
    )
    eval_every_s: float | None = setting(
        None, help="Evaluate every this many simulated seconds (instead of --eval-every).", above=0
    )
    time_budget: float | None = setting(
        None,
        help="Stop when the simulated time reaches this many seconds (--rounds still applies).",
        above=0,
    )
    drop_unsent: bool | None = setting(
        None,
        help="DivShare: drop every message of the previous iteration whose last byte has not left "
        "(queued or in transfer) when a node queues its next iteration's (default: on; Swift and "
        "AD-PSGD never drop: refused for them).",
    )
    bandwidth_sharing: str = setting(
        "max-min",
        help="How transfers share links: max-min (progressive filling, as TCP under Kollaps) or "
        "min-share (the smaller of a transfer's two equal shares, never handed on; runs before).",
        choices=BANDWIDTH_SHARING,
        axis=True,
    )
    async_semantics: str = setting(
        "divshare-code",
        help="Asynchronous rules: divshare-code (H local steps per iteration, a queue per peer, "
        "messages sent before averaging, drops in transfer, AD-PSGD J//2 peers with replacement) "
        "or v1 (runs before: one step per communication, one queue per sender, sent after "
        "averaging).",
        choices=ASYNC_SEMANTICS,
        axis=True,
    )
    target: float | None = setting(
        None,
        help="Node-mean metric value for time-to-target: the first simulated time reaching it.",
    )
