"""One local step of a subset of nodes (``Trainer.step_rows``, ``NodeSampler.next(nodes=...)``)
equals those nodes' rows of a step of all nodes, and leaves every other node as it was."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from mosaic_fast.engine.module_trainer import make_module_trainer
from mosaic_fast.engine.optim import OptimizerSpec, optimizer_from_config, torch_optimizer
from mosaic_fast.engine.sampler import NodeSampler
from mosaic_fast.engine.trainer import SGDConfig, make_trainer
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.models import GNLeNetSpec, LSTMSpec, MatrixFactorizationSpec
from mosaic_fast.models.module_model import ModuleModel

CPU = torch.device("cpu")
N = 5
SUBSET = torch.tensor([0, 2, 3])
REST = torch.tensor([1, 4])
SGDS = [
    SGDConfig(0.1),
    SGDConfig(0.05, momentum=0.9, weight_decay=0.01),
    SGDConfig(0.05, momentum=0.9, weight_decay=0.01, nesterov=True),
]
# loop and sparse do each node's arithmetic alone, so any subset is bit-identical. vmap and batched
# run one batched kernel over the m nodes: on CPU, m >= 2 is bit-identical too (measured, and
# checked below), but with m = 1 torch picks other kernels, which sum in another order (gradients
# differ by up to ~4e-7, measured), so single nodes are held to a tolerance there.
EXACT_ALONE = {"loop", "sparse"}


def _gn_lenet_case(seed):
    spec = GNLeNetSpec(1, 8, 4)
    g = torch.Generator().manual_seed(seed)
    batches = [
        (torch.randn(N, 4, 1, 8, 8, generator=g), torch.randint(0, 4, (N, 4), generator=g))
        for _ in range(2)
    ]
    return spec, batches


def _lstm_case(seed):
    spec = LSTMSpec(7, sequence_targets=True, pad_index=6)
    g = torch.Generator().manual_seed(seed)
    batches = [
        (torch.randint(0, 6, (N, 3, 5), generator=g), torch.randint(0, 7, (N, 3, 5), generator=g))
        for _ in range(2)
    ]
    return spec, batches


def _mf_case(seed):
    spec = MatrixFactorizationSpec(6, 8, dim=3, biases=True, mean=3.0)
    g = torch.Generator().manual_seed(seed)
    batches = [
        (
            torch.randint(0, 6, (N, 7), generator=g),
            torch.randint(0, 8, (N, 7), generator=g),
            5 * torch.rand(N, 7, generator=g),
        )
        for _ in range(2)
    ]
    return spec, batches


CASES = [
    ("loop", _gn_lenet_case),
    ("vmap", _gn_lenet_case),
    ("batched", _gn_lenet_case),
    ("loop", _lstm_case),
    ("batched", _lstm_case),
    ("sparse", _mf_case),
]


def _rows_of(batch, rows):
    return tuple(t[rows] for t in batch)


def _assert_same(actual, expected, exact):
    if exact:
        assert torch.equal(actual, expected)
    else:
        torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


def _momentum(trainer):
    return trainer.optimizer.momentum_buffer


def _check_subset_then_rest(full, part, X_full, X_part, batch, extra_state=()):
    """``full`` steps every node, ``part`` steps SUBSET and then REST, from identical states.

    After the first, SUBSET's rows equal the full step's bit for bit and the rest are untouched;
    after the second, everything equals the full step. ``extra_state(trainer)`` -> per-node
    tensors (n, ...) that follow the same rule (BatchNorm statistics; momentum always counts)."""
    states = [_momentum] if _momentum(full) is not None else []
    states += list(extra_state)
    before = [X_part.clone()] + [s(part).clone() for s in states]
    full_losses = full.step(X_full, batch)
    after = [X_full] + [s(full) for s in states]
    losses = part.step_rows(X_part, SUBSET, _rows_of(batch, SUBSET))
    assert torch.equal(losses, full_losses[SUBSET])
    for old, new, now in zip(before, after, [X_part] + [s(part) for s in states], strict=True):
        assert torch.equal(now[SUBSET], new[SUBSET])
        assert torch.equal(now[REST], old[REST])
    losses = part.step_rows(X_part, REST, _rows_of(batch, REST))
    assert torch.equal(losses, full_losses[REST])
    for new, now in zip(after, [X_part] + [s(part) for s in states], strict=True):
        assert torch.equal(now, new)


@pytest.mark.parametrize("sgd", SGDS)
@pytest.mark.parametrize(("strategy", "case"), CASES)
def test_builtin_subset_step_equals_those_rows_of_a_full_step(strategy, case, sgd):
    spec, (warmup, batch) = case(0)
    X0 = torch.stack([spec.init_params(s) for s in range(N)])
    full, part = (make_trainer(spec, N, sgd, CPU, strategy) for _ in range(2))
    X_full, X_part = X0.clone(), X0.clone()
    # A full step first, so that momentum buffers are non-zero and differ between nodes.
    full.step(X_full, warmup)
    part.step(X_part, warmup)
    _check_subset_then_rest(full, part, X_full, X_part, batch)


@pytest.mark.parametrize("biases", [False, True])
def test_the_write_log_covers_every_coordinate_a_plain_sgd_step_changes(biases):
    spec = MatrixFactorizationSpec(6, 8, dim=4, biases=biases, mean=3.0)
    _, (warmup, batch) = _mf_case(3)
    trainer = make_trainer(spec, N, SGDS[0], CPU, "sparse")
    # Without biases the embeddings are whole 4-wide rows of X.view(-1, 4); with them (n_params
    # no longer a multiple of 4) every coordinate is its own piece.
    assert trainer.write_widths == ((1,) if biases else (4,))
    X = torch.stack([spec.init_params(s) for s in range(N)])
    trainer.step(X, warmup)
    block = X[1:4]  # a rank's block: the log numbers pieces of the stepped rows
    before = block.clone()
    trainer.write_log = {}
    trainer.step_rows(X, torch.arange(1, 4), _rows_of(batch, slice(1, 4)))
    (width,) = trainer.write_widths
    written = torch.zeros(block.numel() // width, dtype=torch.bool)
    written[torch.cat(trainer.write_log[width])] = True
    changed = (block != before).reshape(-1, width).any(1)
    assert changed.any() and not (changed & ~written).any()
    # at most the batches' table rows: 3 nodes x 7 ratings x (user, item rows; and biases)
    assert written.sum() <= 3 * 7 * (2 * 4 + 2 if biases else 2)
    trainer.write_log = None
    assert make_trainer(spec, N, SGDS[1], CPU, "sparse").write_widths == ()  # momentum: dense
    gn_lenet, _ = _gn_lenet_case(0)
    assert make_trainer(gn_lenet, N, SGDS[0], CPU, "loop").write_widths == ()


@pytest.mark.parametrize("strategy", ["loop", "vmap", "batched"])
def test_single_node_steps_match_a_full_step(strategy):
    spec, (batch, _) = _gn_lenet_case(1)
    X0 = torch.stack([spec.init_params(s) for s in range(N)])
    sgd = SGDS[1]
    full, part = (make_trainer(spec, N, sgd, CPU, strategy) for _ in range(2))
    X_full, X_part = X0.clone(), X0.clone()
    full_losses = full.step(X_full, batch)
    for i in range(N):  # one node at a time, in an order other than the ids'
        node = torch.tensor([(3 * i) % N])
        loss = part.step_rows(X_part, node, _rows_of(batch, node))
        _assert_same(loss, full_losses[node], strategy in EXACT_ALONE)
    _assert_same(X_part, X_full, strategy in EXACT_ALONE)
    _assert_same(
        part.optimizer.momentum_buffer, full.optimizer.momentum_buffer, strategy in EXACT_ALONE
    )


def test_all_rows_take_the_ordinary_step():
    spec, (batch, _) = _gn_lenet_case(2)
    X0 = torch.stack([spec.init_params(s) for s in range(N)])
    full, part = (make_trainer(spec, N, SGDS[1], CPU, "vmap") for _ in range(2))
    X_full, X_part = X0.clone(), X0.clone()
    full_losses = full.step(X_full, batch)
    assert torch.equal(part.step_rows(X_part, torch.arange(N), batch), full_losses)
    assert torch.equal(X_part, X_full)
    assert part._row_store is None  # nothing gathered


# --- user modules ---------------------------------------------------------------------------


def _bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(72, 3)
    )


class _NodesLinear(nn.Module):
    """A linear classifier with its batched form over nodes (for the batched strategy)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(36, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))

    @staticmethod
    def forward_nodes(tensors, x):
        n, B = x.shape[:2]
        flat = x.reshape(n, B, -1)
        return torch.baddbmm(
            tensors["fc.bias"].unsqueeze(1), flat, tensors["fc.weight"].transpose(1, 2)
        )


def _module_pair(factory, strategy, sgd, gossip_buffers=False):
    """Two identical (model, trainer, X) triples with distinct node rows, after one full step."""
    g = torch.Generator().manual_seed(5)
    warmup = (torch.randn(N, 4, 1, 6, 6, generator=g), torch.randint(0, 3, (N, 4), generator=g))
    noise = 0.1 * torch.randn(N, 1, generator=g)
    out = []
    for _ in range(2):
        model = ModuleModel(factory, 0, N, CPU, gossip_buffers=gossip_buffers)
        X = model.init_params().expand(N, -1) + noise  # distinct rows
        loss = nn.functional.cross_entropy
        optimizer = OptimizerSpec.from_sgd(sgd)
        trainer = make_module_trainer(model, loss, N, optimizer, CPU, strategy, warmup)
        trainer.step(X, warmup)
        out.append((model, trainer, X))
    return out


def _buffer(name):
    return lambda trainer: trainer.model.buffers[name]


MODULE_CASES = [
    ("loop", _bn_net, False),
    ("loop", _bn_net, True),
    ("vmap", _bn_net, False),
    ("vmap", _bn_net, True),
    ("batched", _NodesLinear, False),
]


@pytest.mark.parametrize("sgd", SGDS[:2])
@pytest.mark.parametrize(("strategy", "factory", "gossip_buffers"), MODULE_CASES)
def test_module_subset_step_equals_those_rows_of_a_full_step(
    strategy, factory, gossip_buffers, sgd
):
    (model, full, X_full), (_, part, X_part) = _module_pair(factory, strategy, sgd, gossip_buffers)
    g = torch.Generator().manual_seed(6)
    batch = (torch.randn(N, 4, 1, 6, 6, generator=g), torch.randint(0, 3, (N, 4), generator=g))
    buffers = [_buffer(name) for name in model.buffers]
    if factory is _bn_net and not gossip_buffers:  # statistics and step counts per node
        assert len(buffers) == 3
    _check_subset_then_rest(full, part, X_full, X_part, batch, buffers)


def test_failed_subset_step_leaves_the_model_buffers_in_place():
    (model, trainer, X), _ = _module_pair(_bn_net, "loop", SGDS[1])
    buffers = {name: b.clone() for name, b in model.buffers.items()}
    bad = (torch.randn(2, 4, 1, 5, 5), torch.randint(0, 3, (2, 4)))  # wrong image size
    with pytest.raises(RuntimeError):
        trainer.step_rows(X, torch.tensor([1, 2]), bad)
    assert model.buffers.keys() == buffers.keys()
    for name, b in model.buffers.items():
        assert b.shape[0] == N and torch.equal(b, buffers[name])


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (torch.tensor([0, 5]), "row 5 is out of range for 5 nodes"),
        (torch.tensor([-1, 2]), "row -1 is out of range for 5 nodes"),
        (torch.tensor([1, 1, 3]), "row 1 appears twice"),
        (torch.tensor([0, 3, 2]), "row 2 follows 3"),
        (torch.tensor([0, 2], dtype=torch.int32), "torch.int32"),
        (torch.tensor([[0, 2]]), r"shape \(1, 2\)"),
        (torch.tensor([], dtype=torch.int64), r"non-empty.*shape \(0,\)"),
        ([0, 2], "got list"),
    ],
)
def test_bad_rows_are_one_line_errors_and_change_nothing(rows, message):
    spec, (batch, _) = _gn_lenet_case(3)
    trainer = make_trainer(spec, N, SGDS[1], CPU, "loop")
    X = torch.stack([spec.init_params(s) for s in range(N)])
    X0, M0 = X.clone(), trainer.optimizer.momentum_buffer.clone()
    with pytest.raises(MosaicValueError, match=message) as caught:
        trainer.step_rows(X, rows, _rows_of(batch, torch.tensor([0, 2])))
    assert "\n" not in str(caught.value)
    assert torch.equal(X, X0) and torch.equal(trainer.optimizer.momentum_buffer, M0)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop"])
def test_torch_optimizers_refuse_subset_steps(name):
    from mosaic_fast.settings import ExperimentConfig

    if name == "rmsprop":
        optimizer = torch_optimizer(functools.partial(torch.optim.RMSprop, lr=0.01))
        name = "RMSprop"
    else:
        optimizer = optimizer_from_config(ExperimentConfig(optimizer=name, lr=0.01))
    spec, (batch, _) = _gn_lenet_case(4)
    trainer = make_trainer(spec, N, optimizer, CPU, "loop")
    assert not trainer.optimizer.steps_rows_independently
    X = torch.stack([spec.init_params(s) for s in range(N)])
    X0 = X.clone()
    expected = f"optimizer '{name}' keeps one step count for all nodes"
    with pytest.raises(MosaicValueError, match=expected):
        trainer.optimizer.require_row_steps()
    for rows in (SUBSET, torch.arange(N)):
        with pytest.raises(MosaicValueError, match=expected + r".*optimizer='sgd'"):
            trainer.step_rows(X, rows, _rows_of(batch, rows))
    assert torch.equal(X, X0)
    sgd = make_trainer(spec, N, SGDS[0], CPU, "loop").optimizer
    assert sgd.steps_rows_independently
    sgd.require_row_steps()


# --- sampler --------------------------------------------------------------------------------


def _parts():
    rng = np.random.default_rng(0)
    sizes = [3, 7, 5, 2, 11]  # several smaller than a batch: draws cross epochs
    return [rng.choice(100, size, replace=False) for size in sizes]


def test_subset_draws_follow_each_nodes_own_stream():
    whole, parts = NodeSampler(_parts(), seed=4), NodeSampler(_parts(), seed=4)
    expected = [whole.next(4) for _ in range(6)]
    drawn: list[list[np.ndarray]] = [[] for _ in range(N)]
    for subset in ([3, 0], [1], [4, 2, 0], [0, 1, 2, 3, 4], [2], [4, 3, 1, 0]):
        out = parts.next(4, np.array(subset, dtype=np.int64))
        assert out.shape == (len(subset), 4) and out.dtype == np.int64
        for row, i in zip(out, subset, strict=True):
            drawn[i].append(row)
    for i in range(N):
        k = len(drawn[i])
        assert np.array_equal(np.stack(drawn[i]), np.stack([e[i] for e in expected[:k]]))


def test_all_nodes_in_order_draws_like_no_subset():
    plain, listed = NodeSampler(_parts(), seed=1), NodeSampler(_parts(), seed=1)
    for _ in range(4):
        assert np.array_equal(plain.next(3), listed.next(3, np.arange(N)))


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        (np.array([0, 5]), "node id 5 is out of range for 5 nodes"),
        (np.array([2, 1, 2]), "node id 2 appears twice"),
        (np.array([0.0, 1.0]), "integer array.*float64"),
        (np.array([[0, 1]]), r"1-D.*shape \(1, 2\)"),
    ],
)
def test_bad_sampler_nodes_are_one_line_errors(nodes, message):
    sampler = NodeSampler(_parts(), seed=0)
    cursors = sampler.cursors.copy()
    with pytest.raises(MosaicValueError, match=message):
        sampler.next(2, nodes)
    assert np.array_equal(sampler.cursors, cursors)
