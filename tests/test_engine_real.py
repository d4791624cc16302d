"""Short runs on the real datasets (skipped where no local copy exists)."""

from __future__ import annotations

import os

import pytest
from data_helpers import SHARED_DATA

from mosaic_fast.data import locate_dataset
from mosaic_fast.engine import run_experiment
from mosaic_fast.settings import ExperimentConfig

DATA_DIR = os.environ.get("MOSAIC_TEST_DATA", str(SHARED_DATA) if SHARED_DATA.is_dir() else None)


def _need(name: str) -> str | None:
    if locate_dataset(name, DATA_DIR) is None:
        pytest.skip(f"no local copy of {name}")
    return DATA_DIR


def test_movielens_short_run_improves_rmse():
    cfg = ExperimentConfig(
        dataset="movielens",
        K=8,
        nodes=16,
        rounds=15,
        eval_every=15,
        lr=0.5,
        local_steps=10,
        batch_size=64,
        data_dir=_need("movielens"),
    )
    summary = run_experiment(cfg, None, quiet=True)
    assert summary["final"]["node_mean"] < 1.08
    assert summary["final"]["avg_model"] < 1.08


def test_fashion_mnist_short_run_beats_chance():
    cfg = ExperimentConfig(
        dataset="fashion-mnist",
        K=2,
        nodes=4,
        degree=2,
        rounds=5,
        local_steps=2,
        batch_size=16,
        partition="iid",
        eval_every=5,
        test_samples=200,
        data_dir=_need("fashion-mnist"),
    )
    summary = run_experiment(cfg, None, quiet=True)
    assert summary["final"]["avg_model"] > 0.4  # 10 classes
    assert summary["final"]["node_mean"] > 0.3


@pytest.mark.slow
@pytest.mark.parametrize("K", [1, 8])
def test_movielens_defaults_reach_rmse_below_one(K):
    cfg = ExperimentConfig(dataset="movielens", K=K, nodes=16, data_dir=_need("movielens"))
    summary = run_experiment(cfg, None, quiet=True)
    assert summary["best_node_mean"] < 1.0
    assert summary["final"]["node_mean"] < 1.0


@pytest.mark.slow
@pytest.mark.parametrize("K", [1, 8])
@pytest.mark.parametrize("nodes", [64, 256, 610])
def test_movielens_defaults_do_not_diverge_at_any_natural_node_count(nodes, K):
    # 610 users: at n = 610 every node holds one user, the hardest case for the default lr
    cfg = ExperimentConfig(dataset="movielens", K=K, nodes=nodes, data_dir=_need("movielens"))
    summary = run_experiment(cfg, None, quiet=True)
    assert summary["status"] == "complete" and summary["final"]["node_mean"] < 1.2
