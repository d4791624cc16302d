"""The consensus distance: how far the nodes' models are from their average."""

from __future__ import annotations

import torch

# float64 bytes of one block of the consensus distance (see consensus_distance).
CONSENSUS_BLOCK_BYTES = 256 << 20


def consensus_distance(X: torch.Tensor, block_bytes: int = CONSENSUS_BLOCK_BYTES) -> torch.Tensor:
    """Mean over nodes of ``||x_i - mean_j x_j||`` in float64, a 0-d tensor on X's device.

    Up to ``block_bytes`` of float64 it is computed on one float64 copy of X. Beyond, the mean by
    blocks of columns and the norms by blocks of rows, so that at most two blocks of float64 exist
    besides X instead of two (n, d) copies (13 GB at 10,000 nodes of 80,000 parameters); each
    column's mean and each row's norm is the same reduction either way (same bits on CPU, tested).
    """
    n, d = X.shape
    if 8 * n * d <= block_bytes:
        Xd = X.double()
        distance: torch.Tensor = torch.linalg.vector_norm(
            Xd - Xd.mean(0, keepdim=True), dim=1
        ).mean()
        return distance
    cols = max(1, block_bytes // (8 * n))
    mean = torch.cat(
        [X[:, a : a + cols].double().mean(0, keepdim=True) for a in range(0, d, cols)], dim=1
    )
    rows = max(1, block_bytes // (8 * d))
    norms = [
        torch.linalg.vector_norm(X[a : a + rows].double() - mean, dim=1) for a in range(0, n, rows)
    ]
    return torch.cat(norms).mean()
