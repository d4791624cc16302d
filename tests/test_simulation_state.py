"""Simulation state: only tensors and plain values, loadable with weights_only=True, checked on load."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from test_tasks import synthetic_characters, synthetic_images, synthetic_ratings

from mosaic_fast.engine import Simulation
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.results.layout import CLOCK_FIELDS
from mosaic_fast.settings import ExperimentConfig

CPU = torch.device("cpu")
PLAIN = (dict, list, tuple, int, float, str, bool, type(None), torch.Tensor)

RUNS = {
    "images": (
        synthetic_images(),
        dict(dataset="fashion-mnist", partition="dirichlet", alpha=0.5, momentum=0.9),
    ),
    "characters": (
        synthetic_characters(True),
        dict(dataset="shakespeare", partition="natural", lr=0.5),
    ),
    "ratings": (
        synthetic_ratings(),
        dict(dataset="movielens", lr=0.5, momentum=0.5, weight_decay=0.01),
    ),
}


def simulation(kind: str) -> Simulation:
    data, kw = RUNS[kind]
    base = dict(
        K=2,
        nodes=4,
        degree=2,
        rounds=4,
        local_steps=2,
        batch_size=4,
        test_samples=20,
        step_time=0.01,
    )
    cfg = ExperimentConfig(**{**base, **kw}).resolved()
    return Simulation(cfg, CPU, data=data)


def without_time(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in CLOCK_FIELDS}


def same_state(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("kind", list(RUNS))
def test_saved_state_loads_with_weights_only_and_resumes_bit_identically(kind, tmp_path):
    full = simulation(kind)
    expected = []
    for t in range(4):
        full.train_round(t)
        expected.append(without_time(full.metrics()))

    cut = simulation(kind)
    for t in range(2):
        cut.train_round(t)
    torch.save(cut.state_dict(), tmp_path / "state.pt")
    del cut
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    resumed = simulation(kind)
    resumed.load_state_dict(state)
    assert resumed.rounds_done == 2
    got = [without_time(resumed.metrics())]
    for t in range(2, 4):
        resumed.train_round(t)
        got.append(without_time(resumed.metrics()))
    assert got == expected[1:]
    assert torch.equal(resumed.X, full.X)
    assert same_state(resumed.trainer.state_dict(), full.trainer.state_dict())
    assert np.array_equal(resumed.sampler.next(4), full.sampler.next(4))


def test_state_holds_only_tensors_and_plain_values():
    sim = simulation("images")
    sim.train_round(0)
    state = sim.state_dict()

    def walk(value, where):
        assert isinstance(value, PLAIN), f"{where} is a {type(value).__name__}"
        if isinstance(value, torch.Tensor):
            assert value.device.type == "cpu", where
        elif isinstance(value, (dict, list, tuple)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                walk(item, f"{where}[{key!r}]")

    walk(state, "state")
    x_before = state["X"].clone()
    sim.train_round(1)  # the state is a snapshot, not a view of the live buffers
    assert torch.equal(state["X"], x_before)


@pytest.mark.parametrize("kind", list(RUNS))
def test_a_run_leaves_the_global_rngs_alone(kind):
    """Why neither global RNG is in the state: building, training and evaluating never draw from them."""
    torch_rng, numpy_rng = torch.get_rng_state(), np.random.get_state()
    sim = simulation(kind)
    sim.train_round(0)
    sim.metrics()
    assert torch.equal(torch.get_rng_state(), torch_rng)
    after = np.random.get_state()
    assert after[0] == numpy_rng[0] and np.array_equal(after[1], numpy_rng[1])
    assert after[2:] == numpy_rng[2:]


def _set(state, path, value):
    """``state`` with the entry at ``path`` (keys and indices) replaced; ``...`` deletes it."""
    *parents, last = path
    target = state
    for key in parents:
        target = target[key]
    if value is ...:
        del target[last]
    else:
        target[last] = value


_MALFORMED = [
    ((), "a list", "'simulation' must be a dict"),
    (("X",), ..., "'simulation' lacks 'X'"),
    (("numpy_rng",), (1, 2), "unexpected 'numpy_rng'"),
    (("X",), torch.zeros(3, 5), "'X' must be a float32 tensor of shape (4,"),
    (("X",), "X", "'X' must be a float32 tensor"),
    (("rounds_done",), "2", "'rounds_done' must be an integer"),
    (("rounds_done",), -1, "'rounds_done' must be an integer >= 0"),
    (("rounds_done",), True, "'rounds_done' must be an integer"),
    (("last_loss",), "0.5", "'last_loss' must be a number or None"),
    (("train_seconds",), None, "'train_seconds' must be a number"),
    (("sampler", "perms", 1), torch.zeros(2, dtype=torch.int64), "'sampler.perms[1]'"),
    (("sampler", "cursors"), 3, "'sampler.cursors' must be a list of 4 items"),
    (("sampler", "rng", 2, "state"), {"state": 1}, "'sampler.rng[2].state' lacks 'inc'"),
    (("trainer", "momentum_buffer"), torch.zeros(2, 2), "'trainer.momentum_buffer'"),
    (("trainer", "momentum_buffer"), ..., "'trainer' lacks 'momentum_buffer'"),
]


@pytest.mark.parametrize(("path", "value", "message"), _MALFORMED)
def test_malformed_state_is_a_one_line_error_and_changes_nothing(path, value, message):
    source = simulation("images")
    for t in range(2):
        source.train_round(t)
    state = source.state_dict()
    if path:
        _set(state, path, value)
    else:
        state = value
    target = simulation("images")  # at round 0: any partial load would show
    before = target.state_dict()
    with pytest.raises(MosaicValueError, match=re.escape(message)) as info:
        target.load_state_dict(state)
    assert "\n" not in str(info.value)
    assert same_state(target.state_dict(), before)


def test_evaluation_time_accumulates_and_a_checkpoint_without_it_still_loads():
    sim = simulation("images")
    first = sim.metrics()["eval_time_s"]
    second = sim.metrics()["eval_time_s"]
    assert 0 < first < second  # seconds spent in evaluation so far
    state = sim.state_dict()
    assert state["eval_seconds"] == second
    del state["eval_seconds"]  # written before evaluation was timed
    fresh = simulation("images")
    fresh.load_state_dict(state)
    assert fresh.eval_seconds == 0.0 and torch.equal(fresh.X, sim.X)
