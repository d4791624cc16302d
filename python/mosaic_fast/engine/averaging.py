"""A node's average of its own row and the copies in its inbox (the event loop's aggregation).

``entries`` are ((sender, fragment), snapshot) pairs sorted by (sender, fragment): a fixed
summation order. Every coordinate becomes the uniform average of the own value and every copy of
it that arrived.
"""

from __future__ import annotations

import numpy as np
import torch

from ..device import add_rows_


def one_at_a_time(
    row: torch.Tensor,
    entries: list[tuple[tuple[int, int], torch.Tensor]],
    coords: list[torch.Tensor],
    whole: bool,
) -> None:
    """v1: one message at a time (as runs before summed it)."""
    total = row.clone()
    if whole:
        for _, snapshot in entries:
            total += snapshot
        row.copy_(total.div_(1 + len(entries)))
        return
    count = torch.ones_like(row)
    for (_, fragment), snapshot in entries:
        columns = coords[fragment]
        total.index_add_(0, columns, snapshot[columns])
        count.index_add_(0, columns, torch.ones_like(columns, dtype=row.dtype))
    row.copy_(total.div_(count))


def whole_models(row: torch.Tensor, entries: list[tuple[tuple[int, int], torch.Tensor]]) -> None:
    """Whole models: stacked and summed in one launch."""
    stacked = torch.stack([snapshot for _, snapshot in entries])
    row.add_(stacked.sum(0)).div_(1 + len(entries))


def fragments(
    row: torch.Tensor,
    entries: list[tuple[tuple[int, int], torch.Tensor]],
    coords: list[torch.Tensor],
    coord_fragment: torch.Tensor,
) -> None:
    """Fragments: gathered, concatenated and added in one ``add_rows_`` (in entry order on every
    device: no atomics), the counts from how many copies of each fragment arrived
    (``coord_fragment``: every coordinate's fragment id)."""
    columns = [coords[fragment] for (_, fragment), _ in entries]
    values = torch.cat([snap[c] for c, (_, snap) in zip(columns, entries, strict=True)])
    total = row.clone()
    add_rows_(total, torch.cat(columns), values)
    copies = np.bincount([f for (_, f), _ in entries], minlength=len(coords))
    count = torch.as_tensor(copies + 1.0, dtype=row.dtype, device=row.device)
    row.copy_(total.div_(count[coord_fragment]))
