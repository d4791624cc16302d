"""Faithful by default: random per-layer fragments, evaluation schedules dense early, per-node
initial models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from data_helpers import synthetic_images

from mosaic_fast import Experiment
from mosaic_fast.cli import main
from mosaic_fast.engine import Simulation, run_experiment
from mosaic_fast.engine import parts as parts_module
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.settings import ExperimentConfig, evaluation_rounds
from mosaic_fast.topology import SmallLayerWarning, fragments_for


@pytest.fixture
def fake_data(monkeypatch):
    images = synthetic_images()
    monkeypatch.setattr(parts_module, "load_data", lambda cfg: images)
    return images


def tiny(**kw) -> ExperimentConfig:
    base = dict(
        dataset="fashion-mnist",
        K=4,
        nodes=4,
        degree=2,
        rounds=6,
        local_steps=1,
        batch_size=8,
        partition="iid",
        test_samples=40,
        step_time=0.01,
    )
    return ExperimentConfig(**{**base, **kw}).resolved()


def test_the_default_fragmenter_is_random_within_each_layer():
    assert ExperimentConfig().fragmenter == "random"
    assert ExperimentConfig(dataset="movielens").resolved().fragmenter == "random"
    sizes = [300, 10, 90]
    fragments = fragments_for("random", 4, sizes, 400, seed=3, block_size=1024)
    ids = np.asarray(fragments.assignment())
    start = 0
    for size in sizes:  # each layer is spread over the fragments, balanced within it
        counts = np.bincount(ids[start : start + size], minlength=4)
        assert counts.max() - counts.min() <= 1
        start += size
    assert not np.array_equal(ids[:300], np.sort(ids[:300]))  # drawn, not ranges


def test_a_layer_smaller_than_k_is_named_once():
    with pytest.warns(SmallLayerWarning, match="layer 1, has 3.*only 3 of the 8 fragments"):
        fragments_for("random", 8, [100, 3, 5], 108, seed=0, block_size=1024)


@pytest.mark.parametrize(
    ("text", "rounds", "expected"),
    [
        ("5", 10, (5,)),
        ("2,4,7", 10, (2, 4, 7)),
        ("5:20:5,30:50:10", 50, (5, 10, 15, 20, 30, 40, 50)),
        ("1:10:4", 10, (1, 5, 9)),
    ],
)
def test_eval_at_names_rounds(text, rounds, expected):
    assert evaluation_rounds(text, rounds) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("10,5", "must increase: round 5 follows round 10"),
        ("5:20:5,20", "must increase: round 20 follows round 20"),
        ("1000", "names round 1000, beyond rounds=100"),
        ("0", "'0' is not a round"),
        ("5:x:1", "is not a round"),
        ("5:1:1", "ends before it starts"),
        ("1:2", "is not a round"),
        ("", "is not a round"),
    ],
)
def test_bad_eval_at_is_one_line_naming_it(text, needle):
    with pytest.raises(MosaicValueError, match=needle):
        ExperimentConfig(eval_at=text).resolved()


def test_eval_at_and_a_schedule_in_simulated_time_conflict():
    with pytest.raises(MosaicValueError, match="two evaluation schedules: give one"):
        ExperimentConfig(eval_at="5", eval_every_s=1.0).resolved()


def test_eval_at_sets_the_evaluated_rounds(fake_data, tmp_path):
    run_experiment(tiny(eval_at="1,2,4"), tmp_path / "r", quiet=True)
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["round"] for line in lines] == [0, 1, 2, 4, 6]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--eval-every", "0"], "eval_every=0 must be at least 1"),
        (["--eval-at", "4,2"], "must increase: round 2 follows round 4"),
        (["--eval-at", "1000"], "beyond rounds=6"),
        (["--init", "random"], "'random' is not one of 'shared', 'per-node'"),
    ],
)
def test_schedule_and_init_errors_exit_2_in_one_line(fake_data, tmp_path, args, needle):
    out = tmp_path / "o"
    result = CliRunner().invoke(
        main, ["run", "--dataset", "fashion-mnist", "--rounds", "6", *args, "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    assert needle in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_per_node_init_gives_every_node_its_own_seeded_model(fake_data):
    shared = Simulation(tiny(), torch.device("cpu"))
    per_node = Simulation(tiny(init="per-node"), torch.device("cpu"))
    again = Simulation(tiny(init="per-node"), torch.device("cpu"))
    X = per_node.X
    assert torch.equal(shared.X[0], shared.X[3])
    assert all(not torch.equal(X[i], X[j]) for i in range(4) for j in range(i))
    assert not torch.equal(X[0], shared.X[0])
    assert torch.equal(X, again.X)  # reproducible from the seed
    other_seed = Simulation(tiny(init="per-node", seed=1), torch.device("cpu"))
    assert not torch.equal(X[0], other_seed.X[0])


def test_per_node_init_draws_user_models_too(tmp_path):
    def net():
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))

    x, y = torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,))
    exp = Experiment(
        model=net, train=(x, y), test=(x, y), nodes=3, K=2, degree=1, rounds=1, init="per-node"
    )
    params = exp.run(None, quiet=True).params
    assert not torch.equal(torch.as_tensor(params[0]), torch.as_tensor(params[1]))


def test_per_node_init_refuses_a_factory_that_ignores_the_seed():
    def self_seeded():
        torch.manual_seed(1234)  # the seed torch was given is thrown away
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))

    x, y = torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,))
    common = dict(train=(x, y), test=(x, y), nodes=3, K=2, degree=1, rounds=1)
    Experiment(model=self_seeded, **common).run(None, quiet=True)  # shared: fine
    with pytest.raises(MosaicValueError, match="nodes 0 and 1 drew the same initial model"):
        Experiment(model=self_seeded, init="per-node", **common).run(None, quiet=True)
