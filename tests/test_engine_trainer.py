"""Batched trainers equal a per-node reference loop with torch.optim.SGD; the data-order sampler."""

from __future__ import annotations

import functools
import re

import numpy as np
import pytest
import torch

from mosaic_fast.engine.optim import OptimizerSpec, torch_optimizer
from mosaic_fast.engine.sampler import NodeSampler
from mosaic_fast.engine.trainer import SGDConfig, make_trainer
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.models import GNLeNetSpec, LSTMSpec, MatrixFactorizationSpec

CPU = torch.device("cpu")


def _reference(spec, X0, batches, sgd, loss_fn):
    """Each node alone: its module, torch.optim.SGD, the same minibatches. Returns rows (n, d)."""
    rows = []
    for i in range(X0.shape[0]):
        m = spec.module(0)
        torch.nn.utils.vector_to_parameters(X0[i].clone(), m.parameters())
        opt = torch.optim.SGD(
            m.parameters(), lr=sgd.lr, momentum=sgd.momentum, weight_decay=sgd.weight_decay
        )
        for batch in batches:
            opt.zero_grad()
            loss_fn(m, [b[i] for b in batch]).backward()
            opt.step()
        rows.append(torch.nn.utils.parameters_to_vector(m.parameters()).detach())
    return torch.stack(rows)


def _run(spec, X0, batches, sgd, strategy):
    X = X0.clone()
    trainer = make_trainer(spec, X.shape[0], sgd, CPU, strategy)
    losses = [trainer.step(X, batch) for batch in batches]
    return X, losses


def _distinct(spec, n):
    return torch.stack([spec.init_params(s) for s in range(n)])


SGDS = [SGDConfig(0.1), SGDConfig(0.05, momentum=0.9, weight_decay=0.01)]


@pytest.mark.parametrize("sgd", SGDS)
@pytest.mark.parametrize("strategy", ["loop", "vmap", "batched"])
def test_gn_lenet_trainers_match_reference(strategy, sgd):
    spec = GNLeNetSpec(1, 8, 4)
    n, B = 3, 5
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(n, B, 1, 8, 8, generator=g), torch.randint(0, 4, (n, B), generator=g))
        for _ in range(3)
    ]
    X0 = _distinct(spec, n)
    X, losses = _run(spec, X0, batches, sgd, strategy)
    ref = _reference(
        spec, X0, batches, sgd, lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])
    )
    torch.testing.assert_close(X, ref, rtol=1e-4, atol=1e-5)
    assert not torch.equal(X, X0)
    assert losses[0].shape == (n,)


@pytest.mark.parametrize("sequence_targets", [True, False])
@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_lstm_trainers_match_reference(strategy, sequence_targets):
    spec = LSTMSpec(7, sequence_targets=sequence_targets, pad_index=6 if sequence_targets else None)
    n, B, T = 2, 3, 5
    g = torch.Generator().manual_seed(1)
    y_shape = (n, B, T) if sequence_targets else (n, B)
    batches = [
        (torch.randint(0, 6, (n, B, T), generator=g), torch.randint(0, 7, y_shape, generator=g))
        for _ in range(2)
    ]
    X0 = _distinct(spec, n)
    sgd = SGDConfig(0.5, momentum=0.5)
    X, _ = _run(spec, X0, batches, sgd, strategy)
    ref = _reference(spec, X0, batches, sgd, lambda m, b: spec.loss(m(b[0]), b[1]))
    torch.testing.assert_close(X, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("biases", [False, True])
@pytest.mark.parametrize("sgd", SGDS)
def test_sparse_mf_step_matches_dense_autograd(sgd, biases):
    spec = MatrixFactorizationSpec(6, 8, dim=3, biases=biases, mean=3.0)
    n, B = 3, 7
    g = torch.Generator().manual_seed(2)
    # Small id ranges so the same user/item repeats inside a batch (accumulation must add up).
    batches = [
        (
            torch.randint(0, 6, (n, B), generator=g),
            torch.randint(0, 8, (n, B), generator=g),
            5 * torch.rand(n, B, generator=g),
        )
        for _ in range(3)
    ]
    X0 = _distinct(spec, n)
    X, losses = _run(spec, X0, batches, sgd, "sparse")
    ref = _reference(
        spec, X0, batches, sgd, lambda m, b: torch.nn.functional.mse_loss(m(b[0], b[1]), b[2])
    )
    torch.testing.assert_close(X, ref, rtol=1e-5, atol=1e-6)
    assert losses[0].shape == (n,)


def test_sparse_mf_row_scatter_is_bit_identical_to_per_float_scatter():
    spec = MatrixFactorizationSpec(5, 7, dim=4)  # tables aligned to rows of width 4
    n, B = 3, 50
    g = torch.Generator().manual_seed(4)
    trainer = make_trainer(spec, n, SGDConfig(0.1), CPU, "sparse")
    nodes = torch.arange(n).unsqueeze(1).expand(n, B)
    rows = torch.randint(0, 7, (n, B), generator=g)  # many repeats: addition order matters
    val = torch.randn(n, B, 4, generator=g)
    base = torch.randn(n * spec.n_params, generator=g)
    by_rows = base.clone()
    trainer._scatter_add(by_rows, "item.weight", nodes, rows, val)
    by_floats = base.clone()
    index = spec.flat_index("item.weight", nodes, rows, 4).reshape(-1)
    by_floats.index_add_(0, index, val.reshape(-1))
    assert torch.equal(by_rows, by_floats)


def test_single_node_momentum_weight_decay_is_exactly_torch_sgd():
    spec = GNLeNetSpec(1, 8, 3)
    sgd = SGDConfig(0.05, momentum=0.9, weight_decay=0.01)
    g = torch.Generator().manual_seed(3)
    batches = [
        (torch.randn(1, 4, 1, 8, 8, generator=g), torch.randint(0, 3, (1, 4), generator=g))
        for _ in range(4)
    ]
    X0 = spec.init_params(0).unsqueeze(0)
    X, _ = _run(spec, X0, batches, sgd, "loop")
    ref = _reference(
        spec, X0, batches, sgd, lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])
    )
    torch.testing.assert_close(X, ref, rtol=0, atol=1e-6)


def _strategy_case(strategy):
    if strategy == "sparse":
        spec = MatrixFactorizationSpec(6, 8, dim=3, biases=True, mean=3.0)
        g = torch.Generator().manual_seed(8)
        return spec, [
            (
                torch.randint(0, 6, (3, 7), generator=g),
                torch.randint(0, 8, (3, 7), generator=g),
                5 * torch.rand(3, 7, generator=g),
            )
            for _ in range(3)
        ]
    spec = GNLeNetSpec(1, 8, 4)
    g = torch.Generator().manual_seed(8)
    return spec, [
        (torch.randn(3, 5, 1, 8, 8, generator=g), torch.randint(0, 4, (3, 5), generator=g))
        for _ in range(3)
    ]


@pytest.mark.parametrize("strategy", ["loop", "vmap", "batched", "sparse"])
def test_every_strategy_steps_torch_optimizers_on_the_swapping_buffer(strategy):
    # torch.optim.SGD is bit-identical to the hand-written rule (test_settings), so the two
    # trainers must agree exactly while X alternates between two storages as under gossip.
    spec, batches = _strategy_case(strategy)
    sgd = SGDConfig(0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    torch_sgd = torch_optimizer(
        functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    )
    ends = []
    for optimizer in (sgd, OptimizerSpec.from_sgd(sgd), torch_sgd):
        X, spare = _distinct(spec, 3), torch.empty(3, spec.n_params)
        trainer = make_trainer(spec, 3, optimizer, CPU, strategy)
        for batch in batches:
            trainer.step(X, batch)
            spare.copy_(X)
            X, spare = spare, X
        ends.append(X)
    assert torch.equal(ends[0], ends[1]) and torch.equal(ends[0], ends[2])
    assert not torch.equal(ends[0], _distinct(spec, 3))


def test_unknown_or_unavailable_strategy_is_a_value_error():
    with pytest.raises(MosaicValueError, match="'fast'"):
        make_trainer(GNLeNetSpec(1, 8, 3), 2, SGDConfig(0.1), CPU, "fast")
    with pytest.raises(MosaicValueError, match="'auto' is resolved by the task"):
        make_trainer(GNLeNetSpec(1, 8, 3), 2, SGDConfig(0.1), CPU, "auto")
    with pytest.raises(MosaicValueError, match="'loop' cannot train mf"):
        make_trainer(MatrixFactorizationSpec(3, 3), 2, SGDConfig(0.1), CPU, "loop")
    with pytest.raises(MosaicValueError, match="'sparse' cannot train gn-lenet"):
        make_trainer(GNLeNetSpec(1, 8, 3), 2, SGDConfig(0.1), CPU, "sparse")


def test_sampler_covers_each_epoch_and_resumes_identically():
    parts = [np.arange(0, 5), np.arange(10, 13)]
    s = NodeSampler(parts, seed=4)
    first = np.concatenate([s.next(5)[0], s.next(5)[0]])
    assert sorted(first[:5]) == list(range(5)) and sorted(first[5:]) == list(range(5))
    state = s.state_dict()
    later = [s.next(4) for _ in range(3)]
    t = NodeSampler(parts, seed=4)
    t.load_state_dict(state)
    assert all(np.array_equal(a, t.next(4)) for a in later)
    # A node with fewer samples than the batch still fills it, from consecutive epochs.
    assert set(NodeSampler(parts, seed=0).next(6)[1]) == {10, 11, 12}


def test_sampler_streams_depend_on_seed():
    parts = [np.arange(100)]
    assert not np.array_equal(NodeSampler(parts, 0).next(20), NodeSampler(parts, 1).next(20))


def test_sampler_state_is_tensors_and_plain_values():
    s = NodeSampler([np.arange(0, 5), np.arange(10, 13)], seed=4)
    s.next(3)
    state = s.state_dict()
    assert all(isinstance(p, torch.Tensor) and p.dtype == torch.int64 for p in state["perms"])
    assert state["cursors"] == [3, 3] and all(type(c) is int for c in state["cursors"])
    assert all(type(r["state"]["state"]) is int for r in state["rng"])  # 128-bit ints
    s.next(4)  # the state is a snapshot: later draws do not change it
    assert state["cursors"] == [3, 3]


def _sampler_state(**change):
    state = NodeSampler([np.arange(0, 5), np.arange(10, 13)], seed=4).state_dict()
    state.update(change)
    return state


_PERMS = NodeSampler([np.arange(0, 5), np.arange(10, 13)], seed=4).state_dict()["perms"]
_RNG = NodeSampler([np.arange(0, 5), np.arange(10, 13)], seed=4).state_dict()["rng"][0]


@pytest.mark.parametrize(
    ("change", "entry"),
    [
        ({"cursors": [0, 9]}, "sampler.cursors[1]"),
        ({"cursors": [0]}, "sampler.cursors"),
        ({"perms": [_PERMS[0], _PERMS[1].float()]}, "sampler.perms[1]"),
        ({"perms": [_PERMS[0], torch.tensor([10, 10, 12])]}, "sampler.perms[1]"),
        ({"perms": [_PERMS[0].numpy(), _PERMS[1]]}, "sampler.perms[0]"),
        ({"rng": [_RNG, {**_RNG, "bit_generator": "MT19937"}]}, "sampler.rng[1].bit_generator"),
        ({"rng": [_RNG, {**_RNG, "state": {"state": -1, "inc": 1}}]}, "sampler.rng[1].state.state"),
        ({"rng": [_RNG, {"state": 1}]}, "sampler.rng[1]"),
        ({"extra": 1}, "sampler"),
    ],
)
def test_malformed_sampler_state_is_refused_and_changes_nothing(change, entry):
    s = NodeSampler([np.arange(0, 5), np.arange(10, 13)], seed=4)
    s.next(2)
    before = s.state_dict()
    with pytest.raises(MosaicValueError, match=re.escape(repr(entry))):
        s.load_state_dict(_sampler_state(**change))
    after = s.state_dict()
    assert after["cursors"] == before["cursors"] and after["rng"] == before["rng"]
    assert all(torch.equal(a, b) for a, b in zip(after["perms"], before["perms"], strict=True))


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_trainer_state_round_trip_and_checks(momentum):
    spec = GNLeNetSpec(1, 8, 3)
    trainer = make_trainer(spec, 2, SGDConfig(0.1, momentum=momentum), CPU, "loop")
    X = _distinct(spec, 2)
    batch = (torch.randn(2, 4, 1, 8, 8), torch.randint(0, 3, (2, 4)))
    trainer.step(X, batch)
    state = trainer.state_dict()
    fresh = make_trainer(spec, 2, SGDConfig(0.1, momentum=momentum), CPU, "loop")
    fresh.load_state_dict(state)
    X1, X2 = X.clone(), X.clone()
    trainer.step(X1, batch)
    fresh.step(X2, batch)
    assert torch.equal(X1, X2)
    wrong = torch.zeros(3, spec.n_params) if momentum else torch.zeros(2, spec.n_params)
    with pytest.raises(MosaicValueError, match="'trainer.momentum_buffer'"):
        fresh.load_state_dict({"momentum_buffer": wrong})
    with pytest.raises(MosaicValueError, match="lacks 'momentum_buffer'"):
        fresh.load_state_dict({})
