"""Settings of how the training data is split over the nodes."""

from __future__ import annotations

from dataclasses import dataclass

from .choices import PARTITIONS
from .setting import setting


@dataclass(frozen=True)
class Partition:
    """The split of the training data over nodes (per-dataset defaults: mosaic_fast.data.specs)."""

    partition: str | None = setting(
        None,
        help="Split of the training data over nodes.",
        also=("object",),
        per_dataset=True,
        other_data="iid",
        choices=PARTITIONS,
    )
    alpha: float | None = setting(
        None,
        help="Dirichlet concentration for --partition dirichlet (smaller = more label skew).",
        per_dataset=True,
        other_data=0.1,
        per_dataset_when=("partition", "dirichlet"),
        above=0,
        axis=True,
    )
    shards_per_node: int = setting(
        2, help="Label-sorted shards per node for --partition shards.", at_least=1, axis=True
    )
