"""The NetworkSpec of a run's settings: speeds, links and stragglers as the settings give them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import MosaicValueError
from ..network.spec import (
    NetworkSpec,
    is_csv,
    parse_bandwidth,
    parse_duration,
    read_fedscale_network,
    read_network_csv,
    straggler_nodes,
)

if TYPE_CHECKING:
    from ..settings import ExperimentConfig


def network_from_config(
    cfg: ExperimentConfig, *, measured_step_time_s: float | None = None
) -> NetworkSpec:
    """The NetworkSpec of a resolved config's ``network``, ``step_time``, ``bandwidth``,
    ``uplink``, ``downlink``, ``latency`` and straggler settings.

    ``measured_step_time_s`` is the step time to use when ``step_time`` is None and no network
    file gives it (the engine measures it from the model's batch cost); it is ignored otherwise.
    Missing bandwidths are unlimited (``inf``).
    """
    latency_s = parse_duration(cfg.latency, name="latency")
    if cfg.network is not None:
        if is_csv(cfg.network):
            if latency_s != 0:
                raise MosaicValueError(
                    f"latency={cfg.latency!r} conflicts with network file {cfg.network!r}, "
                    "whose latency_s column sets every node's latency; leave latency at 0s"
                )
            spec = read_network_csv(cfg.network, cfg.nodes)
        else:
            if cfg.batch_size is None:
                raise MosaicValueError(
                    "batch_size is None: resolve the config before reading a FedScale pickle"
                )
            spec = read_fedscale_network(
                cfg.network,
                cfg.nodes,
                seed=cfg.seed,
                batch_size=cfg.batch_size,
                latency_s=latency_s,
            )
    else:
        step_time_s = cfg.step_time if cfg.step_time is not None else measured_step_time_s
        if step_time_s is None:
            raise MosaicValueError(
                "step_time is None and no measured_step_time_s was given (seconds per local step)"
            )
        spec = NetworkSpec.uniform(
            cfg.nodes,
            step_time_s=step_time_s,
            uplink_Bps=_direction_Bps(cfg, "uplink"),
            downlink_Bps=_direction_Bps(cfg, "downlink"),
            latency_s=latency_s,
        )
    if cfg.stragglers > 0:
        nodes = straggler_nodes(cfg.nodes, cfg.stragglers, cfg.seed)
        spec = spec.with_stragglers(nodes, cfg.straggler_slowdown, cfg.straggler_kind)
    return spec


def _direction_Bps(cfg: ExperimentConfig, direction: str) -> float:
    """Bytes per second of ``uplink``/``downlink``, else ``bandwidth``, else unlimited."""
    for name in (direction, "bandwidth"):
        text = getattr(cfg, name)
        if text is not None:
            return parse_bandwidth(text, name=name)
    return math.inf
