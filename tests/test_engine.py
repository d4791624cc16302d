"""The experiment engine end to end on tiny synthetic data: run folder, determinism, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import synthetic_images, synthetic_ratings

from mosaic_fast.engine import Simulation, run_experiment
from mosaic_fast.engine import parts as parts_module
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.results.layout import CLOCK_FIELDS
from mosaic_fast.settings import ExperimentConfig


@pytest.fixture
def fake_data(monkeypatch):
    """Replace dataset loading by the synthetic sets (by dataset name)."""
    sets = {"fashion-mnist": synthetic_images(), "movielens": synthetic_ratings()}
    monkeypatch.setattr(parts_module, "load_data", lambda cfg: sets[cfg.dataset])
    return sets


def tiny(**kw) -> ExperimentConfig:
    base = dict(
        dataset="fashion-mnist",
        K=4,
        nodes=6,
        degree=2,
        rounds=4,
        local_steps=2,
        batch_size=8,
        lr=0.05,
        partition="dirichlet",
        alpha=0.5,
        eval_every=2,
        test_samples=40,
        step_time=0.01,  # a declared clock: sim_time_s is then part of what must reproduce
    )
    base.update(kw)
    return ExperimentConfig(**base)


def strip_time(records):
    return [{k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in records]


def read_metrics(folder: Path):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_contract(fake_data, tmp_path):
    summary = run_experiment(tiny(), tmp_path / "r", quiet=True)
    folder = tmp_path / "r"
    meta = json.loads((folder / "config.json").read_text())
    assert meta["config"]["K"] == 4 and meta["config"]["partition"] == "dirichlet"
    assert set(meta["versions"]) == {
        "mosaic_fast",
        "torch",
        "numpy",
        "python",
        "torch_cpu_capability",
        "torch_num_threads",
    }
    assert (
        meta["metric"] == "accuracy" and meta["lower_is_better"] is False and meta["n_params"] > 0
    )
    recs = read_metrics(folder)
    assert [r["round"] for r in recs] == [0, 2, 4]
    keys = {
        "round",
        "metric",
        "node_mean",
        "node_std",
        "avg_model",
        "consensus_distance",
        "sent_params_per_node",
        "train_loss",
        "wall_time_s",
        "eval_time_s",
        "node_mean_se",
    }
    assert all(keys <= set(r) for r in recs)
    assert recs[0]["sent_params_per_node"] == 0 and recs[0]["consensus_distance"] == 0.0
    assert recs[-1]["sent_params_per_node"] == 2 * meta["n_params"]  # degree * d, whatever K
    assert recs[-1]["consensus_distance"] > 0 and recs[-1]["train_loss"] > 0
    assert 0 <= recs[-1]["node_mean"] <= 1 and recs[-1]["node_std"] >= 0
    on_disk = json.loads((folder / "summary.json").read_text())
    assert on_disk == summary and summary["final"] == recs[-1]
    assert summary["status"] == "complete" and summary["complete"] is True
    assert summary["best_node_mean"] == max(r["node_mean"] for r in recs)
    assert summary["rounds"] == 4


def test_training_learns_the_synthetic_task(fake_data):
    summary = run_experiment(
        tiny(rounds=10, eval_every=10, partition="iid", lr=0.1), None, quiet=True
    )
    assert summary["final"]["avg_model"] > 0.6  # 4 classes: chance is 0.25
    assert summary["final"]["node_mean"] > 0.5


def test_consensus_distance_and_node_std_match_their_definitions(fake_data):
    cfg = tiny().resolved()
    sim = Simulation(cfg, torch.device("cpu"))
    for t in range(2):
        sim.train_round(t)
    rec = sim.metrics()
    X = sim.X.double()
    expected = float(torch.linalg.norm(X - X.mean(0), dim=1).mean())
    assert rec["consensus_distance"] == pytest.approx(expected, rel=1e-12)
    per_node = sim.node_data.evaluate(sim.X).per_node
    assert rec["node_std"] == pytest.approx(float(np.std(per_node)))


def test_movielens_rmse_per_node_and_for_the_average_model(fake_data, tmp_path):
    summary = run_experiment(
        tiny(dataset="movielens", partition=None, lr=0.5, batch_size=8, rounds=6, eval_every=3),
        tmp_path / "mf",
        quiet=True,
    )
    recs = read_metrics(tmp_path / "mf")
    assert recs[0]["metric"] == "rmse" and summary["final"]["metric"] == "rmse"
    assert recs[-1]["node_mean"] < recs[0]["node_mean"]
    assert summary["best_node_mean"] == min(r["node_mean"] for r in recs)
    meta = json.loads((tmp_path / "mf" / "config.json").read_text())
    assert meta["lower_is_better"] is True and meta["config"]["partition"] == "natural"


@pytest.mark.parametrize("dataset", ["fashion-mnist", "movielens"])
def test_same_seed_same_metrics(fake_data, tmp_path, dataset):
    cfg = tiny(
        dataset=dataset, partition=None if dataset == "movielens" else "dirichlet", momentum=0.5
    )
    run_experiment(cfg, tmp_path / "a", quiet=True)
    run_experiment(cfg, tmp_path / "b", quiet=True)
    run_experiment(ExperimentConfig(**{**cfg.to_dict(), "seed": 1}), tmp_path / "c", quiet=True)
    a, b, c = (strip_time(read_metrics(tmp_path / x)) for x in "abc")
    assert a == b
    assert a != c


def test_resume_after_interruption_equals_an_uninterrupted_run(fake_data, tmp_path, monkeypatch):
    cfg = tiny(rounds=6, checkpoint_every=3, eval_every=1, momentum=0.9)
    run_experiment(cfg, tmp_path / "full", quiet=True)

    original = Simulation.train_round

    def crash_at_round_4(self, t):
        if t == 3:
            raise KeyboardInterrupt("injected")
        original(self, t)

    monkeypatch.setattr(Simulation, "train_round", crash_at_round_4)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "cut", quiet=True)
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert (tmp_path / "cut" / "checkpoint.pt").exists()
    monkeypatch.setattr(Simulation, "train_round", original)
    summary = run_experiment(cfg, tmp_path / "cut", quiet=True, resume=True)
    assert summary["complete"]
    assert strip_time(read_metrics(tmp_path / "cut")) == strip_time(read_metrics(tmp_path / "full"))
    # Resuming a complete run returns its summary without training again.
    assert run_experiment(cfg, tmp_path / "cut", quiet=True, resume=True) == summary


def test_refuses_to_overwrite_and_to_resume_a_different_config(fake_data, tmp_path):
    run_experiment(tiny(rounds=3, checkpoint_every=3), tmp_path / "r", quiet=True)
    with pytest.raises(MosaicValueError, match="already holds a run"):
        run_experiment(tiny(rounds=3), tmp_path / "r", quiet=True)
    (tmp_path / "r" / "summary.json").unlink()
    with pytest.raises(MosaicValueError, match="different configuration"):
        run_experiment(tiny(rounds=3, lr=0.2), tmp_path / "r", quiet=True, resume=True)


@pytest.mark.parametrize("fragmenter", ["contiguous", "random", "blocks"])
def test_every_fragmenter_and_a_static_topology_run(fake_data, fragmenter):
    summary = run_experiment(
        tiny(fragmenter=fragmenter, block_size=64, rounds=2, topology="static"), None, quiet=True
    )
    assert summary["complete"]


def test_bad_values_raise_mosaic_errors(fake_data):
    with pytest.raises(MosaicValueError, match="K=10000000"):
        run_experiment(tiny(K=10_000_000), None, quiet=True)
    with pytest.raises(MosaicValueError, match="natural"):
        run_experiment(tiny(partition="natural"), None, quiet=True)
    if not torch.cuda.is_available():
        with pytest.raises(MosaicValueError, match="cuda"):
            run_experiment(tiny(device="cuda"), None, quiet=True)


_THREADS_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from data_helpers import synthetic_images
from test_engine import tiny
from mosaic_fast.engine import parts, run_experiment
parts.load_data = lambda cfg: synthetic_images()
run_experiment(tiny(), {out!r}, quiet=True)
"""


def test_metrics_do_not_depend_on_the_kernel_thread_count(tmp_path):
    results = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}"
        env = {**os.environ, "MOSAIC_NUM_THREADS": threads, "PYTHONPATH": os.pathsep.join(sys.path)}
        code = _THREADS_SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
        results.append(strip_time(read_metrics(out)))
    assert results[0] == results[1]


def test_nesterov_reaches_the_trainer(fake_data):
    def final(**kw):
        return run_experiment(tiny(**kw), None, quiet=True)["final"]

    plain, nesterov = final(momentum=0.9), final(momentum=0.9, nesterov=True)
    assert strip_time([plain]) != strip_time([nesterov])
    # without momentum the Nesterov step is the plain gradient step
    assert strip_time([final(nesterov=True)]) == strip_time([final()])
