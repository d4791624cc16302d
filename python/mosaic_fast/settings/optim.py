"""Settings of local training: steps, batches and the per-node optimizer."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import OPTIMIZERS
from .setting import setting


@dataclass(frozen=True)
class LocalTraining:
    """Local SGD between communications and the optimizer it uses (per-dataset defaults: mosaic_fast.data.specs)."""

    local_steps: int | None = setting(
        None,
        help="Local SGD steps H per round (asynchronous algorithms: per iteration, between two "
        "communications, as DivShare's 'rounds').",
        per_dataset=True,
        other_data=5,
        at_least=1,
        axis=True,
    )
    batch_size: int | None = setting(
        None,
        help="Minibatch size per node and step.",
        per_dataset=True,
        other_data=32,
        at_least=1,
        axis=True,
    )
    lr: float | None = setting(
        None,
        help="Learning rate.",
        per_dataset=True,
        other_data=0.05,
        above=0,
        axis=True,
    )
    optimizer: str = setting(
        "sgd",
        help="Local optimizer (per-node state, never gossiped), or module:Class of an elementwise torch.optim optimizer.",
        choices=OPTIMIZERS,
        also=("reference", "object"),
        axis=True,
    )
    momentum: float = setting(
        0.0, help="SGD momentum (per-node buffers, never gossiped).", at_least=0, below=1, axis=True
    )
    nesterov: bool = setting(
        False,
        help="Nesterov momentum, as torch.optim.SGD(nesterov=True); no effect without --momentum.",
    )
    weight_decay: float = setting(
        0.0, help="Weight decay (decoupled for adamw).", at_least=0, axis=True
    )
    beta1: float = setting(
        0.9, help="Adam/AdamW first-moment decay.", at_least=0, below=1, axis=True
    )
    beta2: float = setting(
        0.999, help="Adam/AdamW second-moment decay.", at_least=0, below=1, axis=True
    )
    eps: float = setting(1e-8, help="Adam/AdamW denominator term.", above=0)
