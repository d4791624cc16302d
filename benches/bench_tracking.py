"""What experiment trackers cost: the same 20-round run untracked and tracked, interleaved.

    python -m pytest benches/bench_tracking.py -s                        # measure (a few minutes)
    python -m pytest benches/bench_tracking.py --benchmark-disable       # smoke test (seconds)

A 16-node GN-LeNet run on random Fashion-MNIST-shaped data (2 local steps of batch 16, an
evaluation every 2 rounds: 11 records per run, twice the demo's rate), written to a run folder.
Each tracked run is timed against an untracked one just before it (``MOSAIC_BENCH_REPS`` pairs,
default 3, on a warm process); the figure is the median of the pairs' ratios of wall time, from
``Experiment.run`` until it returns (the trackers' start, every record, the figures drawn at the
end and their flush included). Target: under 5% more wall time (ratio < 1.05). W&B runs offline.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest
import torch

import mosaic_fast as mf

from .conftest import SUMMARY

TARGET = 1.05
TRACKERS = {
    "tensorboard": ("tensorboard",),
    "mlflow": ("mlflow",),
    "wandb": ("wandb",),
    "all three": ("tensorboard", "mlflow", "wandb"),
}


def _data(n_train: int):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_train, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n_train,), generator=g)
    return (x, y), (x[:500], y[:500])


def _experiment(smoke: bool, trackers: tuple[str, ...]) -> mf.Experiment:
    train, test = _data(2000 if smoke else 16_000)
    size = (
        dict(nodes=4, rounds=2, eval_every=1, local_steps=1)
        if smoke
        else dict(nodes=16, rounds=20, eval_every=2, local_steps=2)
    )
    return mf.Experiment(
        model="gn-lenet",
        train=train,
        test=test,
        K=8,
        degree=2,
        batch_size=16,
        test_samples=500,
        trackers=list(trackers) or None,
        **size,
    )


def _timed(exp: mf.Experiment, out: Path) -> float:
    start = time.perf_counter()
    exp.run(out, quiet=True)
    return time.perf_counter() - start


@pytest.mark.parametrize("name", list(TRACKERS))
def test_tracking_overhead(name, full_size, tmp_path, monkeypatch):
    smoke = not full_size
    if smoke and name != "all three":
        pytest.skip("the smoke test runs every tracker at once")
    for module in TRACKERS[name]:
        pytest.importorskip("torch.utils.tensorboard" if module == "tensorboard" else module)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    plain, tracked = _experiment(smoke, ()), _experiment(smoke, TRACKERS[name])
    reps = 1 if smoke else int(os.environ.get("MOSAIC_BENCH_REPS", "3"))
    if not smoke:
        _timed(plain, tmp_path / "warm")  # imports, the first allocation, the trainer's choice
        _timed(tracked, tmp_path / "warm-tracked")  # the trackers' imports
    ratios, times = [], []
    for i in range(reps):
        base = _timed(plain, tmp_path / f"plain-{i}")
        with_trackers = _timed(tracked, tmp_path / f"tracked-{i}")
        ratios.append(with_trackers / base)
        times.append((base, with_trackers))
    ratio = statistics.median(ratios)
    row = {
        "bench": "tracking",
        "trackers": name.replace(" ", "-"),
        "untracked_s": f"{statistics.median(t[0] for t in times):.2f}",
        "tracked_s": f"{statistics.median(t[1] for t in times):.2f}",
        "ratio": f"{ratio:.3f}",
        "pairs": ";".join(f"{a:.2f}/{b:.2f}" for a, b in times),
        "target": f"<{TARGET}",
    }
    SUMMARY.append(row)
    print(row)
    runs = tmp_path / "tracked-0"
    assert (runs / "tracking").is_dir()
    if not smoke:
        assert ratio < TARGET, row
