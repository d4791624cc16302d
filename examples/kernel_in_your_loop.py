"""The Rust aggregation kernel inside your own simulator: plain torch models and optimizers per node.

mosaic-fast does only the gossip here: every round, each node's parameters are flattened into row i
of a float32 (n, d) tensor, ``mf.sample_graphs`` draws one graph per fragment and ``mf.aggregate``
averages every fragment over its graph, in place of a dense (n, n) mixing product. Everything else
(models, optimizers, data, evaluation) is ordinary PyTorch you can change at will.

The data is synthetic and label-skewed: 10 Gaussian classes in 32 dimensions, each node holding
samples of only 2 classes, so no node can learn the task alone.

    python examples/kernel_in_your_loop.py          # 32 nodes, 40 rounds: about 10 s on 2 cores
    python examples/kernel_in_your_loop.py --tiny   # 8 nodes, 3 rounds: seconds
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn

import mosaic_fast as mf

CLASSES, FEATURES = 10, 32


def make_data(n_nodes: int, per_node: int, seed: int):
    """Per-node training sets of two classes each, and a balanced test set."""
    g = torch.Generator().manual_seed(seed)
    centers = 0.4 * torch.randn(CLASSES, FEATURES, generator=g)

    def draw(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return centers[labels] + torch.randn(len(labels), FEATURES, generator=g), labels

    nodes = [
        draw(torch.tensor([i % CLASSES, (i + 1) % CLASSES]).repeat(per_node // 2))
        for i in range(n_nodes)
    ]
    return nodes, draw(torch.arange(CLASSES).repeat(200))


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, CLASSES))


@torch.no_grad()
def write_back(model: nn.Module, row: torch.Tensor) -> None:
    """Copy a flat parameter row into the model (copies: the model never aliases the gossip buffers)."""
    offset = 0
    for p in model.parameters():
        p.copy_(row[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def simulate(K: int, n_nodes: int, rounds: int, local_steps: int, degree: int, seed: int = 0):
    """Mosaic Learning with K fragments; returns the final (node-mean accuracy, consensus distance)."""
    torch.manual_seed(seed)
    train, (x_test, y_test) = make_data(n_nodes, per_node=200, seed=seed)
    first = make_model()  # every node starts from the same model
    models = [make_model() for _ in range(n_nodes)]
    for model in models:
        model.load_state_dict(first.state_dict())
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in models]
    d = sum(p.numel() for p in first.parameters())
    fragments = mf.FragmentMap.contiguous(d, K)
    X, mixed = mf.empty_params(n_nodes, d), mf.empty_params(n_nodes, d)
    for t in range(rounds):
        for i, (model, opt) in enumerate(zip(models, optimizers, strict=True)):
            x, y = train[i]
            for _ in range(local_steps):
                batch = torch.randint(len(y), (32,))
                opt.zero_grad()
                F.cross_entropy(model(x[batch]), y[batch]).backward()
                opt.step()
            with torch.no_grad():
                X[i] = nn.utils.parameters_to_vector(model.parameters())
        graphs = mf.sample_graphs(n_nodes, K, degree, seed=seed, round=t, mode="el-oracle")
        mf.aggregate(X, graphs, fragments, out=mixed)  # Rust kernel, zero copy, GIL released
        for model, row in zip(models, mixed, strict=True):
            write_back(model, row)
    with torch.no_grad():
        accuracy = [(m(x_test).argmax(1) == y_test).float().mean().item() for m in models]
        consensus = (mixed - mixed.mean(0)).norm(dim=1).mean().item()
    return sum(accuracy) / n_nodes, consensus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a seconds-long run (also MOSAIC_EXAMPLES_TINY=1)"
    )
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("MOSAIC_EXAMPLES_TINY") == "1"
    size = (
        dict(n_nodes=8, rounds=3, local_steps=2, degree=2)
        if tiny
        else dict(n_nodes=32, rounds=40, local_steps=5, degree=4)
    )
    print(f"{'K':>3} {'node-mean accuracy':>19} {'consensus distance':>19}")
    for K in (1, 8):
        accuracy, consensus = simulate(K, **size)
        print(f"{K:>3} {accuracy:>19.4f} {consensus:>19.4f}")


if __name__ == "__main__":
    main()
