"""Your own PyTorch model in Mosaic Learning: a small ResNet with BatchNorm on Fashion-MNIST, K=1 vs K=8.

Every node trains its own copy of the model on its own label-skewed share of the data (Dirichlet
alpha = 0.1); after each round's local steps the nodes average their parameters fragment by
fragment (K=1 is Epidemic Learning: the whole model over one graph). BatchNorm's running statistics
stay per node: they are buffers, not parameters (pass ``gossip_buffers=True`` to average them too).
Under such strong label skew, each node's statistics describe its own few classes, which limits
BatchNorm models (the built-in GN-LeNet uses GroupNorm for that reason); the average model, scored
with the nodes' mean statistics, does better than the typical node.

    python examples/own_model.py          # 16 nodes, 100 rounds: 1-2 minutes on 2 cores
    python examples/own_model.py --tiny   # 4 nodes, 2 rounds: seconds (what the tests run)
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

import mosaic_fast as mf


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, plus the input (through a 1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """28x28 grey images -> 10 logits: a strided stem, two residual blocks, global average pooling."""

    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.blocks = nn.Sequential(
            ResidualBlock(width, width), ResidualBlock(width, 2 * width, stride=2)
        )
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a seconds-long run (also MOSAIC_EXAMPLES_TINY=1)"
    )
    parser.add_argument("--out", help="write one run folder per K under this folder")
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("MOSAIC_EXAMPLES_TINY") == "1"

    size = (
        dict(nodes=4, degree=2, rounds=2, local_steps=2, eval_every=1, test_samples=200)
        if tiny
        else dict(nodes=16, degree=4, rounds=100, eval_every=20, test_samples=1000)
    )
    experiment = mf.Experiment(model=SmallResNet, train="fashion-mnist", alpha=0.1, **size)
    n_params = sum(p.numel() for p in SmallResNet().parameters())
    print(f"SmallResNet: {n_params} trained parameters per node, {size['nodes']} nodes")

    results = {}
    for K in (1, 8):
        out = os.path.join(args.out, f"K{K}") if args.out else None
        results[K] = experiment.replace(K=K).run(out, quiet=tiny)

    print()
    print(
        f"{'K':>3} {'node-mean accuracy':>19} {'average-model accuracy':>23} {'consensus distance':>19}"
    )
    for K, result in results.items():
        final = result.summary["final"]
        print(
            f"{K:>3} {final['node_mean']:>19.4f} {final['avg_model']:>23.4f}"
            f" {final['consensus_distance']:>19.4f}"
        )

    print("\nK=8, result.metrics (a pandas DataFrame, one row per evaluation):")
    columns = ["round", "node_mean", "node_std", "avg_model", "consensus_distance", "train_loss"]
    print(results[8].metrics[columns].to_string(index=False))

    # Each node's final model is an ordinary nn.Module, with its own BatchNorm statistics.
    node0, node1 = results[8].node_model(0), results[8].node_model(1)
    print(f"\nresult.node_model(0): a {type(node0).__name__} in eval mode")
    mean0, mean1 = node0.stem[1].running_mean, node1.stem[1].running_mean
    print(f"stem BatchNorm running mean, node 0: {mean0[:4].numpy().round(3)}")
    print(f"stem BatchNorm running mean, node 1: {mean1[:4].numpy().round(3)}")


if __name__ == "__main__":
    main()
