"""The cost of the faithful default: one round with random fragments (drawn within each layer)
against contiguous ones, K = 16, per model.

A coordinate-level map sends the kernel down its gathered path, which costs 2-3x the contiguous
one's streaming path (``bench_kernel.py``); what that means for a whole round depends on the share
of averaging in it: small for GN-LeNet and the LSTM (training dominates), large for matrix
factorisation (averaging dominates).

    PYTHONPATH=python python -m pytest benches/bench_fragmenter.py -s                 # measure
    PYTHONPATH=python python -m pytest benches/bench_fragmenter.py --benchmark-disable  # smoke test

Inputs are random tensors with the real datasets' shapes, as in ``bench_training.py``. The
summary rows give the round time for each fragmenter and the random/contiguous ratio.
"""

from __future__ import annotations

import pytest
import torch

from mosaic_fast.data import ClassificationData, RatingsData
from mosaic_fast.engine import Simulation
from mosaic_fast.settings import ExperimentConfig

from .conftest import SUMMARY, min_seconds, time_rounds

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
# case -> (dataset, nodes, degree, local steps, batch); the sizes of the reproduction's cells.
CASES = {
    "gn-lenet n=64": ("fashion-mnist", 64, 2, 2, 16),
    "mf n=64": ("movielens", 64, 8, 20, 64),
    "mf n=610": ("movielens", 610, 8, 20, 64),
    "lstm n=16": ("shakespeare", 16, 4, 2, 16),
}
_ROUNDS: dict[tuple[str, str], float] = {}


def _data(dataset: str, smoke: bool):
    g = torch.Generator().manual_seed(0)
    if dataset == "movielens":
        m = 5_000 if smoke else 100_000  # ml-latest-small's 100,836 ratings
        users = torch.arange(m) % 610
        items = torch.randint(0, 9724, (m,), generator=g)
        r = 5 * torch.rand(m, generator=g)
        return RatingsData(
            "movielens", 610, 9724, users, items, r, users[:500], items[:500], r[:500], 3.5
        )
    if dataset == "shakespeare":
        n = 400 if smoke else 4_000
        x = torch.randint(0, 80, (n, 80), generator=g)
        y = torch.randint(0, 80, (n, 80), generator=g)
        groups = (torch.arange(n) % 64).numpy()
        return ClassificationData(
            "shakespeare", x, y, x[:100], y[:100], 82, groups, groups[:100], True
        )
    n = 2_000 if smoke else 20_000
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return ClassificationData("fashion-mnist", x, y, x[:200], y[:200], 10, None, None)


@pytest.mark.parametrize("fragmenter", ["contiguous", "random"])
@pytest.mark.parametrize("case", list(CASES))
def test_round_time_by_fragmenter(benchmark, case, fragmenter):
    smoke = benchmark.disabled
    dataset, nodes, degree, local_steps, batch = CASES[case]
    if smoke:
        nodes, degree, local_steps, batch = min(nodes, 8), 2, 1, 4
    cfg = ExperimentConfig(
        dataset=dataset,
        K=16,
        nodes=nodes,
        degree=degree,
        local_steps=local_steps,
        batch_size=batch,
        lr=0.01,
        fragmenter=fragmenter,
        partition="iid" if dataset == "fashion-mnist" else "natural",
        device=DEVICE.type,
        test_samples=100,
    ).resolved()
    sim = Simulation(cfg, DEVICE, data=_data(dataset, smoke))
    benchmark.group = f"round by fragmenter {case} K=16 {DEVICE.type}"
    benchmark.extra_info.update(fragmenter=fragmenter, n_params=sim.n_params)
    time_rounds(benchmark, sim)
    seconds = min_seconds(benchmark)
    if seconds is None:
        return
    _ROUNDS[(case, fragmenter)] = seconds
    if fragmenter == "random" and (case, "contiguous") in _ROUNDS:
        contiguous = _ROUNDS[(case, "contiguous")]
        SUMMARY.append(
            {
                "bench": "round by fragmenter",
                "case": case,
                "contiguous_ms": f"{1e3 * contiguous:.1f}",
                "random_ms": f"{1e3 * seconds:.1f}",
                "random/contiguous": f"{seconds / contiguous:.2f}",
            }
        )
