"""End to end: a tiny real sweep through the engine (Fashion-MNIST, 2 K values x 2 seeds),
re-run without recomputation, then summarised and plotted."""

from __future__ import annotations

import math

import pytest

from mosaic_fast import sweep as sw
from mosaic_fast.errors import DataNotFoundError
from mosaic_fast.results.plots import plot_runs
from mosaic_fast.results.records import read_run
from mosaic_fast.results.summary import SUMMARY_METRICS
from mosaic_fast.settings import ExperimentConfig

TINY = ExperimentConfig(
    dataset="fashion-mnist",
    nodes=4,
    degree=2,
    rounds=2,
    eval_every=1,
    local_steps=1,
    batch_size=8,
    test_samples=64,
)


@pytest.mark.slow
def test_tiny_real_sweep_runs_resumes_summarises_and_plots(tmp_path, monkeypatch):
    grid = sw.SweepGrid(K=(1, 2), seeds=(0, 1))
    try:
        table = sw.run_sweep(grid, tmp_path / "sweep", base=TINY, quiet=True)
    except DataNotFoundError as exc:
        pytest.skip(f"no local Fashion-MNIST copy: {exc}")

    assert list(table["K"]) == [1, 2]
    assert list(table["n_seeds"]) == [2, 2]
    for key, _ in SUMMARY_METRICS:
        assert table[f"{key}_mean"].map(math.isfinite).all(), key
    assert ((table["final_node_mean_mean"] >= 0) & (table["final_node_mean_mean"] <= 1)).all()
    for cell in grid.cells(TINY):
        run = read_run(tmp_path / "sweep" / cell.name)
        assert run.summary is not None and run.config["K"] == cell.config.K
        assert [r["round"] for r in run.records] == [0, 1, 2]

    calls = []
    monkeypatch.setattr(sw, "run_experiment", lambda *a, **k: calls.append(a))
    sw.run_sweep(grid, tmp_path / "sweep", base=TINY, quiet=True)
    assert calls == []  # every cell is complete

    paths = plot_runs([tmp_path / "sweep"], tmp_path / "plots")
    assert sorted(p.name for p in paths) == sorted(
        f"rounds_{kind}.{fmt}" for kind in ("performance", "consensus") for fmt in ("png", "pdf")
    )
    assert all(p.stat().st_size > 1000 for p in paths)
