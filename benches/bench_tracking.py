"""What experiment trackers cost: the same 20-round run untracked and tracked, interleaved.

    python -m pytest benches/bench_tracking.py -s                        # measure (a few minutes)
    python -m pytest benches/bench_tracking.py --benchmark-disable       # smoke test (seconds)

A 16-node GN-LeNet run on random Fashion-MNIST-shaped data (1 local step of batch 16, an
evaluation every 2 rounds: 11 records per run, five times the demo's rate, on rounds half as
long: harsher than the demo), written to a run folder. The trackers' imports are done before the
timing (``python -X importtime`` shows them: about 1-2 s each for MLflow and W&B).
Each tracked run is timed against an untracked one just before it (``MOSAIC_BENCH_REPS`` pairs,
default 3, on a warm process); the figure is the median of the pairs' ratios of wall time, from
``Experiment.run`` until it returns (the trackers' start and every record included). The figures
and the trackers' final writes go on in the background after it returns; ``flushed_ratio`` times
until they are done too (``tracking.wait()``), as a script that exits at once would wait.
Target: under 5% more wall time until ``run`` returns (ratio < 1.05). W&B runs offline.
The ratio of the process's CPU time is reported beside it: on a machine shared with other work,
wall time swings by more than the trackers cost, CPU time much less (W&B's own service process is
not counted in it). ``MOSAIC_BENCH_TRACKERS=tensorboard,all`` picks the tracker sets to time.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import pytest
import torch

import mosaic_fast as mf
from mosaic_fast.tracking import build_trackers, wait

from .conftest import SUMMARY

TARGET = 1.05
_WARM: list[bool] = []
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
        else dict(nodes=16, rounds=20, eval_every=2, local_steps=1)
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


def _timed(exp: mf.Experiment, out: Path) -> tuple[float, float, float]:
    """(wall seconds until run returns, CPU seconds of this process, wall seconds until the
    trackers have finished too) of one run."""
    start, cpu = time.perf_counter(), time.process_time()
    exp.run(out, quiet=True)
    returned = time.perf_counter() - start
    wait()
    return returned, time.process_time() - cpu, time.perf_counter() - start


@pytest.mark.parametrize("name", list(TRACKERS))
def test_tracking_overhead(name, full_size, tmp_path, monkeypatch):
    smoke = not full_size
    if smoke and name != "all three":
        pytest.skip("the smoke test runs every tracker at once")
    wanted = os.environ.get("MOSAIC_BENCH_TRACKERS")
    if not smoke and wanted and name.split()[0] not in wanted.split(","):
        pytest.skip(f"MOSAIC_BENCH_TRACKERS={wanted}")
    for module in TRACKERS[name]:
        pytest.importorskip("torch.utils.tensorboard" if module == "tensorboard" else module)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    plain, tracked = _experiment(smoke, ()), _experiment(smoke, TRACKERS[name])
    reps = 1 if smoke else int(os.environ.get("MOSAIC_BENCH_REPS", "3"))
    if not smoke:
        if not _WARM:  # torch's and the model's first use, once per process
            _timed(plain, tmp_path / "warm")
            _WARM.append(True)
        build_trackers(TRACKERS[name], config=tracked.config)  # imports, timed separately below
    times = []
    for i in range(reps):
        base = _timed(plain, tmp_path / f"plain-{i}")
        with_trackers = _timed(tracked, tmp_path / f"tracked-{i}")
        times.append((base, with_trackers))
    ratio = statistics.median(b[0] / a[0] for a, b in times)
    cpu_ratio = statistics.median(b[1] / a[1] for a, b in times)
    flushed_ratio = statistics.median(b[2] / a[2] for a, b in times)
    row = {
        "bench": "tracking",
        "trackers": name.replace(" ", "-"),
        "untracked_s": f"{statistics.median(a[0] for a, _ in times):.2f}",
        "tracked_s": f"{statistics.median(b[0] for _, b in times):.2f}",
        "ratio": f"{ratio:.3f}",
        "cpu_ratio": f"{cpu_ratio:.3f}",
        "flushed_ratio": f"{flushed_ratio:.3f}",
        "pairs_wall": ";".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in times),
        "pairs_cpu": ";".join(f"{a[1]:.2f}/{b[1]:.2f}" for a, b in times),
        "target": f"<{TARGET}",
    }
    SUMMARY.append(row)
    print(row)
    runs = tmp_path / "tracked-0"
    assert (runs / "tracking").is_dir()
    if not smoke:
        assert ratio < TARGET, row
