"""End-to-end check at scale: a 10,000-node Mosaic run of logistic regression on Fashion-MNIST
through the public API, 20 rounds; prints the round time, the peak memory and the kernel's share.

    python benches/scale_check.py                 # 10,000 nodes, 20 rounds, K=8, degree 8
    python benches/scale_check.py --nodes 1000    # smaller
    python benches/scale_check.py --topology el-oracle-pairing   # the O(n s) graph sampler
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from torch import nn

import mosaic_fast as mf


class LogisticRegression(nn.Module):
    """Softmax regression on 28x28 images: 7,850 parameters per node."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--K", type=int, default=8)
    parser.add_argument("--degree", type=int, default=8)
    parser.add_argument("--topology", default="el-oracle", choices=mf.GRAPH_MODES)
    args = parser.parse_args()

    kernel_seconds = []
    aggregate = mf.aggregate

    def timed_aggregate(*call_args, **kwargs):
        start = time.perf_counter()
        result = aggregate(*call_args, **kwargs)
        kernel_seconds.append(time.perf_counter() - start)
        return result

    # The engine looks mosaic_fast.aggregate up at every round, so this wrapper times each call.
    mf.aggregate = timed_aggregate
    experiment = mf.Experiment(
        model=LogisticRegression,
        train="fashion-mnist",
        nodes=args.nodes,
        K=args.K,
        degree=args.degree,
        topology=args.topology,
        rounds=args.rounds,
        local_steps=1,
        eval_every=args.rounds,
        test_samples=1000,
        step_time=0.01,
    )
    start = time.perf_counter()
    result = experiment.run(quiet=True)
    wall = time.perf_counter() - start
    mf.aggregate = aggregate

    rounds = len(kernel_seconds)
    train_s = (
        float(result.summary.get("train_seconds", wall)) if hasattr(result, "summary") else wall
    )
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kernel_s = sum(kernel_seconds)
    print(
        f"nodes={args.nodes} K={args.K} degree={args.degree} topology={args.topology} "
        f"rounds={rounds} threads={mf.num_threads()}"
    )
    print(f"run wall time {wall:.1f} s (setup, data, evaluation included)")
    print(
        f"rounds: {train_s / rounds * 1e3:.0f} ms each on average (local steps, sampling, kernel)"
    )
    print(
        f"kernel: {kernel_s / rounds * 1e3:.0f} ms a round on average, first {kernel_seconds[0] * 1e3:.0f} ms, "
        f"best {min(kernel_seconds) * 1e3:.0f} ms; {kernel_s / train_s:.0%} of the rounds' time"
    )
    print(f"peak memory {peak_gib:.2f} GiB")
    print(f"final node-mean accuracy {result.summary['final']['node_mean']:.4f}")


if __name__ == "__main__":
    main()
