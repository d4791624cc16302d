"""Your own gossip topology: a ring of cliques, given as a callable ``(round, fragment) -> edges``.

Nodes sit in cliques of 4; every clique member receives from the other three, and neighbouring
cliques on a ring are joined by one bridge in each direction. Which member of a clique holds the
bridge rotates with the round and the fragment, so different fragments leave a clique through
different nodes. The run is compared with the built-in ``el-oracle`` graphs (every node sends to
and receives from ``degree`` random others, fresh for every round and fragment), both on
Fashion-MNIST with the built-in GN-LeNet model.

Edge rows are ``(src, dst)``: ``dst`` receives ``src``'s fragment and averages it with its own.

    python examples/own_topology.py          # 16 nodes, 30 rounds: 1-2 minutes on 2 cores
    python examples/own_topology.py --tiny   # 12 nodes, 2 rounds: seconds
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import mosaic_fast as mf

CLIQUE = 4


class RingOfCliques:
    """``n_cliques`` cliques of 4 nodes on a ring; called as ``(round, fragment) -> (n_edges, 2) edges``."""

    def __init__(self, n_cliques: int) -> None:
        self.n_cliques = n_cliques

    def __call__(self, round: int, fragment: int) -> np.ndarray:
        edges = set()
        for c in range(self.n_cliques):
            members = range(c * CLIQUE, (c + 1) * CLIQUE)
            edges.update((src, dst) for src in members for dst in members if src != dst)
            bridge = (round + fragment) % CLIQUE  # rotates over the clique's members
            here = c * CLIQUE + bridge
            there = (c + 1) % self.n_cliques * CLIQUE + bridge
            edges.update({(here, there), (there, here)})  # a set: with 2 cliques both coincide
        return np.array(sorted(edges), dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tiny", action="store_true", help="a seconds-long run (also MOSAIC_EXAMPLES_TINY=1)"
    )
    args = parser.parse_args()
    tiny = args.tiny or os.environ.get("MOSAIC_EXAMPLES_TINY") == "1"
    n_cliques = 3 if tiny else 4
    size = (
        dict(rounds=2, local_steps=1, batch_size=8, eval_every=1, test_samples=100)
        if tiny
        else dict(rounds=30, eval_every=10, test_samples=1000)
    )
    # Same nodes, fragments and per-node in-degree (3 clique mates; el-oracle: degree 3) for both.
    settings = dict(nodes=n_cliques * CLIQUE, K=4, degree=3, alpha=0.1, **size)
    runs = {
        "ring of cliques": mf.Experiment(
            train="fashion-mnist", topology=RingOfCliques(n_cliques), **settings
        ),
        "el-oracle": mf.Experiment(train="fashion-mnist", topology="el-oracle", **settings),
    }
    print(f"{n_cliques * CLIQUE} nodes, K=4 fragments, GN-LeNet on Fashion-MNIST (alpha=0.1)\n")
    print(
        f"{'topology':<16} {'node-mean accuracy':>19} {'average-model accuracy':>23}"
        f" {'consensus distance':>19} {'sent params/node':>17}"
    )
    for name, run in runs.items():
        final = run.run(quiet=tiny).summary["final"]
        print(
            f"{name:<16} {final['node_mean']:>19.4f} {final['avg_model']:>23.4f}"
            f" {final['consensus_distance']:>19.4f} {final['sent_params_per_node']:>17.0f}"
        )


if __name__ == "__main__":
    main()
