"""The memory a run needs, estimated before anything of size ``nodes x n_params`` is allocated, so
that a run that cannot fit is refused in one line (as ``empty_params`` refuses a buffer) instead
of ending in the allocator's traceback after it has taken all the machine has.

Counted, per node and parameter: the two gossip buffers, the gradient, the optimizer's per-node
state; the evaluation's float64 copies (the consensus distance: two (n, d) copies up to
``consensus.CONSENSUS_BLOCK_BYTES``, two blocks beyond); per node, one local step's minibatch. Forward activations depend on the model and come on top: the estimate is a lower
bound, so what it refuses would fail anyway.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import MosaicValueError
from ..settings import ExperimentConfig

_GIB = float(1 << 30)


def optimizer_floats(cfg: ExperimentConfig) -> int:
    """float32 values of optimizer state per node and parameter: SGD's momentum buffer, Adam's
    two moments; a user's optimizer class is counted as two."""
    if cfg.optimizer == "sgd":
        return 1 if cfg.momentum else 0
    return 2


def sample_bytes(data: Any) -> int:
    """Bytes of one training sample as a float32 batch holds it (8 for ratings: ids and value)."""
    inputs = getattr(data, "x_train", None)
    if isinstance(data, tuple) and data and isinstance(data[0], torch.Tensor):
        inputs = data[0]
    if isinstance(inputs, torch.Tensor) and inputs.dim() >= 1 and inputs.shape[0] > 0:
        return 4 * max(1, inputs[0].numel())
    return 8


def run_bytes(cfg: ExperimentConfig, n_params: int, per_sample: int) -> dict[str, int]:
    """What a run holds at its peak, by part (bytes)."""
    from .consensus import CONSENSUS_BLOCK_BYTES

    assert cfg.batch_size is not None  # the engine reads resolved configs: the default is filled
    n, d = int(cfg.nodes), int(n_params)
    return {
        "parameter buffers": 2 * 4 * n * d,
        "gradients": 4 * n * d,
        "optimizer state": 4 * n * d * optimizer_floats(cfg),
        "evaluation": 2 * 8 * n * d
        if 8 * n * d <= CONSENSUS_BLOCK_BYTES
        else 2 * CONSENSUS_BLOCK_BYTES,
        "minibatches": n * int(cfg.batch_size) * int(per_sample),
    }


def available_bytes(device: torch.device) -> int | None:
    """Memory that can still be allocated on ``device`` (None where unknown)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def require_memory(
    cfg: ExperimentConfig, n_params: int, device: torch.device, per_sample: int
) -> None:
    """MosaicValueError (one line) when the run's estimated memory exceeds what ``device`` has
    available now; nothing has been allocated for the nodes yet when it is raised."""
    parts = run_bytes(cfg, n_params, per_sample)
    need = sum(parts.values())
    have = available_bytes(device)
    if have is None or need <= have:
        return
    biggest = ", ".join(
        f"{name} {size / _GIB:.1f}" for name, size in sorted(parts.items(), key=lambda p: -p[1])[:3]
    )
    raise MosaicValueError(
        f"nodes={cfg.nodes} x n_params={n_params} needs at least {need / _GIB:.1f} GiB "
        f"({biggest} GiB) but {device.type} has {have / _GIB:.1f} GiB available; "
        "use fewer nodes or a smaller model"
    )
