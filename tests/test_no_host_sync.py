"""No host-device sync inside a synchronous round, for every built-in model and trainer strategy
and for a user's torch.nn.Module: on CUDA, a round then queues its local steps and its gossip on
the device without waiting for them, and reads nothing back until an evaluation.

Proved on CPU through instrumentation: while the rounds run, every tensor method that copies device
values to the host (``.item()``, ``.cpu()``, ``.numpy()``, ``.tolist()``, ``float()``, ``int()``,
``bool()``) or copies between devices and blocks (``.to(device)`` without ``non_blocking=True``) is
counted; a round must call none of them. The first round is left out (it builds caches)."""

from __future__ import annotations

import functools
import traceback
from collections import Counter
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from data_helpers import synthetic_images, synthetic_ratings

import mosaic_fast as mf
from mosaic_fast.data import ClassificationData
from mosaic_fast.engine import Simulation
from mosaic_fast.engine.inputs import UserCode
from mosaic_fast.engine.sampler import NodeSampler
from mosaic_fast.kernel.torch_path import aggregate_torch
from mosaic_fast.settings import ExperimentConfig

SYNCING = ("item", "cpu", "numpy", "tolist", "__float__", "__int__", "__bool__", "__index__")


def _names_a_device(tensor: torch.Tensor, args, kwargs) -> bool:
    """Whether ``tensor.to(*args, **kwargs)`` names a device (which on CUDA is a copy between host
    and device); ``.to(other)`` with a tensor on the same device only converts the dtype."""
    values = [*args, kwargs.get("device"), kwargs.get("other")]
    return any(
        isinstance(v, (str, torch.device))
        or (isinstance(v, torch.Tensor) and v.device != tensor.device)
        for v in values
    )


@contextmanager
def counted_syncs():
    """Counter of syncing calls (method name and the caller's file:line) while inside."""
    calls: Counter[str] = Counter()

    def where() -> str:
        frame = traceback.extract_stack(limit=3)[0]
        return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"

    originals = {name: getattr(torch.Tensor, name) for name in (*SYNCING, "to")}

    def wrap(name):
        original = originals[name]

        @functools.wraps(original)
        def counting(self, *args, **kwargs):
            if name != "to" or (
                _names_a_device(self, args, kwargs) and not kwargs.get("non_blocking")
            ):
                calls[f"{name} at {where()}"] += 1
            return original(self, *args, **kwargs)

        return counting

    for name in originals:
        setattr(torch.Tensor, name, wrap(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def characters(seed: int = 0) -> ClassificationData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 9, (120, 6), generator=g)
    y = torch.randint(0, 9, (120,), generator=g)
    return ClassificationData("shakespeare", x, y, x[:20], y[:20], 10, None, None)


def config(dataset: str, **kw) -> ExperimentConfig:
    base = dict(
        dataset=dataset,
        K=4,
        nodes=6,
        degree=2,
        rounds=3,
        local_steps=3,
        batch_size=4,
        partition="iid",
        test_samples=20,
        step_time=0.01,
    )
    return ExperimentConfig(**{**base, **kw}).resolved()


@pytest.fixture(autouse=True)
def device_aggregation(monkeypatch):
    """Gossip through the device path (the torch index path on these CPU tensors), which CUDA
    tensors take, instead of the Rust kernel (which reads CPU tensors through zero-copy numpy
    views: not a sync, but counted as one here)."""
    monkeypatch.setattr(mf.kernel, "aggregate", aggregate_torch)


def rounds_without_syncs(sim: Simulation) -> None:
    sim.train_round(0)  # builds the caches (index tensors, kernels)
    with counted_syncs() as calls:
        sim.train_round(1)
        sim.train_round(2)
    assert not calls, f"host syncs inside a round: {dict(calls)}"
    assert np.isfinite(sim.last_loss)  # read once, after the rounds: the one copy to the host


DATA = {
    "fashion-mnist": synthetic_images,
    "movielens": synthetic_ratings,
    "shakespeare": characters,
}
BUILTIN = [
    ("fashion-mnist", "loop"),
    ("fashion-mnist", "vmap"),
    ("fashion-mnist", "batched"),
    ("shakespeare", "loop"),
    ("shakespeare", "batched"),
    ("movielens", "sparse"),
]


@pytest.mark.parametrize(("dataset", "strategy"), BUILTIN)
def test_builtin_models_round_without_host_syncs(dataset: str, strategy: str) -> None:
    small = dict(nodes=3, local_steps=2, batch_size=2) if dataset == "shakespeare" else {}
    partition = "natural" if dataset == "movielens" else "iid"
    cfg = config(dataset, trainer=strategy, partition=partition, **small)
    sim = Simulation(cfg, torch.device("cpu"), data=DATA[dataset]())
    assert sim.strategy == strategy
    rounds_without_syncs(sim)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_a_users_module_rounds_without_host_syncs(strategy: str) -> None:
    data = synthetic_images()

    def model() -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))

    cfg = config("<images>", model="<model>", trainer=strategy, lr=0.05)
    user = UserCode(
        model=model, train=(data.x_train, data.y_train), test=(data.x_test, data.y_test)
    )
    sim = Simulation(cfg, torch.device("cpu"), user=user)
    rounds_without_syncs(sim)


def test_the_instrumentation_sees_a_sync() -> None:
    with counted_syncs() as calls:
        float(torch.ones(2).sum())
        torch.arange(3).to("cpu")
        torch.arange(3).to("cpu", non_blocking=True)  # not counted
        torch.arange(3).to(torch.float64)  # a dtype only: not counted
    assert sorted(k.split(" ")[0] for k in calls) == ["__float__", "to"]


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_a_rounds_indices_drawn_at_once_equal_step_by_step_draws(batch: int) -> None:
    parts = [np.arange(5), np.arange(5, 7), np.arange(7, 20)]
    step_by_step, at_once = NodeSampler(parts, seed=3), NodeSampler(parts, seed=3)
    for _ in range(4):
        want = np.stack([step_by_step.next(batch) for _ in range(3)])
        np.testing.assert_array_equal(at_once.next_steps(3, batch), want)
    np.testing.assert_array_equal(at_once.cursors, step_by_step.cursors)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("dataset", "strategy"), BUILTIN)
def test_cuda_rounds_without_host_syncs(dataset: str, strategy: str, monkeypatch) -> None:
    """On a GPU: torch's sync debug mode turns every implicit sync inside rounds 2-3 into an error
    (the round's timed wait at its end is left out)."""
    from mosaic_fast.engine import rounds as rounds_module

    small = dict(nodes=3, local_steps=2, batch_size=2) if dataset == "shakespeare" else {}
    partition = "natural" if dataset == "movielens" else "iid"
    cfg = config(dataset, trainer=strategy, partition=partition, device="cuda", **small)
    sim = Simulation(cfg, torch.device("cuda"), data=DATA[dataset]())
    monkeypatch.setattr(mf.kernel, "aggregate", mf.kernel.device_aggregate)
    sim.train_round(0)
    monkeypatch.setattr(rounds_module, "synchronize", lambda device: None)
    torch.cuda.set_sync_debug_mode("error")
    try:
        sim.train_round(1)
        sim.train_round(2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert np.isfinite(sim.last_loss)


def _reference_draws(parts, seed, batches):
    """The sampler's draws as one node at a time, written out plainly (the definition)."""
    rngs = [np.random.default_rng([seed, 0x5A3B, i]) for i in range(len(parts))]
    perms = [rng.permutation(p) for rng, p in zip(rngs, parts, strict=True)]
    cursors = [0] * len(parts)
    out = []
    for batch in batches:
        rows = []
        for i in range(len(parts)):
            row = []
            while len(row) < batch:
                if cursors[i] == len(perms[i]):
                    perms[i], cursors[i] = rngs[i].permutation(parts[i]), 0
                take = min(batch - len(row), len(perms[i]) - cursors[i])
                row += list(perms[i][cursors[i] : cursors[i] + take])
                cursors[i] += take
            rows.append(row)
        out.append(np.array(rows))
    return out


def test_every_nodes_draws_at_once_equal_the_definition() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 40, size=30)
    parts = np.split(rng.permutation(int(sizes.sum())), np.cumsum(sizes)[:-1])
    batches = [int(b) for b in rng.integers(1, 25, size=40)]
    sampler = NodeSampler(parts, seed=11)
    want = _reference_draws(parts, 11, batches)
    for k, batch in enumerate(batches):
        if k == 20:  # a checkpoint and restore in the middle
            state = sampler.state_dict()
            sampler = NodeSampler(parts, seed=11)
            sampler.load_state_dict(state)
        if k % 7 == 3:  # some nodes alone, as the asynchronous engine draws
            nodes = np.array([5, 2, 17])
            rest = np.setdiff1d(np.arange(len(parts)), nodes)
            got = np.empty_like(want[k])
            got[nodes] = sampler.next(batch, nodes)
            got[rest] = sampler.next(batch, rest)
        else:
            got = sampler.next(batch)
        np.testing.assert_array_equal(got, want[k])
