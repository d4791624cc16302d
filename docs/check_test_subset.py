"""How far the fixed test subset moves the network-scale numbers of docs/REPRODUCTION.md.

    python docs/check_test_subset.py docs/results/scale/fmnist-n64-degree2-8 --seeds 0 --limit 1

For each pair of finished runs (K = 1 and K > 1 of one setting and seed) that kept its final
``checkpoint.pt``, every node's final model is scored once on the whole test set. The runs were
evaluated on a fixed subset of it (``tasks.classification.test_subset``), so the subset's scores
are read off the same per-sample results. Printed per pair: node-average accuracy on the subset
and on the whole set for both runs, the paired difference on both, and the subset's standard
errors (the ratio estimator over test samples): of one run's node average (``node_mean_se`` in the
records) and of the paired difference, where the shared subset cancels much of the noise.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from mosaic_fast.engine import Simulation
from mosaic_fast.results.folder import RunFolder
from mosaic_fast.results.layout import config_of
from mosaic_fast.results.records import find_runs, group_key
from mosaic_fast.results.summary import baseline_key
from mosaic_fast.tasks.classification import mean_standard_error, test_subset


def per_sample_accuracy(folder: Path) -> tuple[np.ndarray, int]:
    """Fraction of the nodes right on each test sample of the whole test set, float64 (N,), and
    the run's test_samples."""
    config = config_of(folder)
    state = RunFolder(folder).load_checkpoint()
    if state is None:
        raise SystemExit(f"{folder}: no checkpoint.pt (run with --checkpoint-every)")
    whole = dataclasses.replace(config, test_samples=None)
    sim = Simulation(whole, torch.device("cpu"))
    sim.load_state_dict(state["simulation"])
    if sim.rounds_done != config.rounds:
        raise SystemExit(f"{folder}: the checkpoint is at round {sim.rounds_done}, not the last")
    _, hits, counts = sim.node_data.sample_hits(sim.X)
    assert np.all(counts == 1), "one target per image"
    return hits / sim.X.shape[0], config.test_samples


def line(name: str, subset: float, whole: float, se: float) -> str:
    return f"  {name:<14} subset {subset:.4f} ± {1.96 * se:.4f} (95%)   whole test set {whole:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--seeds", default=None, help="comma list of seeds to check (default all)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many pairs")
    args = parser.parse_args()
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    runs = [r for r in find_runs(args.paths) if r.summary is not None]
    by_key = {(group_key(r.config), r.config["seed"]): r for r in runs}
    pairs = [
        (by_key[(baseline_key(r.config), r.config["seed"])], r)
        for r in runs
        if r.config["K"] != 1
        and (baseline_key(r.config), r.config["seed"]) in by_key
        and (seeds is None or r.config["seed"] in seeds)
    ]
    for base, other in pairs[: args.limit]:
        a1, n_subset = per_sample_accuracy(base.path)
        ak, _ = per_sample_accuracy(other.path)
        rows = test_subset(len(a1), n_subset)
        ones = np.ones(len(rows))
        print(f"{other.path.parent.name}/{other.path.name} against K=1")
        for name, a in (("K=1", a1), (f"K={other.config['K']}", ak)):
            print(line(name, a[rows].mean(), a.mean(), mean_standard_error(a[rows], ones)))
        diff = ak - a1
        se = mean_standard_error(diff[rows], ones)
        print(line("paired Δ", diff[rows].mean(), diff.mean(), se))
        bound = math.hypot(mean_standard_error(a1[rows], ones), mean_standard_error(ak[rows], ones))
        print(f"  (the paired standard error {se:.4f} against {bound:.4f} for independent subsets)")


if __name__ == "__main__":
    main()
