"""Settings of what is learned: the dataset, the model and the built-in models' details."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import DATASETS, MODELS
from .setting import setting


@dataclass(frozen=True)
class Task:
    """The data and the model (per-dataset defaults: mosaic_fast.data.specs)."""

    dataset: str = setting(
        "fashion-mnist",
        help="Dataset, or module:loader (user code returning train and test data).",
        choices=DATASETS,
        also=("reference", "object"),
    )
    model: str | None = setting(
        None,
        help="Model, or module:factory (user code returning a torch.nn.Module).",
        per_dataset=True,
        choices=MODELS,
        also=("reference", "object"),
    )


@dataclass(frozen=True)
class ModelDetails:
    """The built-in models' shapes, and whether model buffers are gossiped."""

    embedding_dim: int = setting(
        20, help="Matrix factorisation embedding size.", at_least=1, axis=True
    )
    mf_biases: bool = setting(
        False, help="Matrix factorisation with user/item biases and the global mean."
    )
    gossip_buffers: bool = setting(
        False,
        help="Average model buffers (e.g. BatchNorm running statistics) too; off: they stay per node.",
    )
