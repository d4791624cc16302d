"""Model specs: parameter counts, zero-copy views, batched forwards equal the reference modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mosaic_fast.models import GNLeNetSpec, LSTMSpec, MatrixFactorizationSpec, ParamLayout


def test_gn_lenet_parameter_counts():
    assert GNLeNetSpec(3, 32, 10).n_params == 89_834  # CIFAR-10, as in the public code
    assert GNLeNetSpec(1, 28, 10).n_params == 83_754  # 28->14->7->3: Linear(64*3*3 -> 10)
    m = GNLeNetSpec(1, 28, 10).module(0)
    assert m.classifier.in_features == 64 * 3 * 3
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lstm_and_mf_parameter_counts():
    spec = LSTMSpec(82, sequence_targets=True, pad_index=80)
    emb, lstm_l0, lstm_l1, fc = (
        82 * 8,
        4 * 256 * (8 + 256 + 2),
        4 * 256 * (256 + 256 + 2),
        256 * 82 + 82,
    )
    assert spec.n_params == emb + lstm_l0 + lstm_l1 + fc
    assert MatrixFactorizationSpec(610, 9724, dim=20).n_params == (610 + 9724) * 20
    assert MatrixFactorizationSpec(610, 9724, dim=20, biases=True).n_params == (610 + 9724) * 21


def test_layout_views_share_memory_with_the_flat_buffer():
    spec = GNLeNetSpec(1, 28, 10)
    X = torch.zeros(3, spec.n_params)
    views = spec.layout.node_views(X)
    row = spec.layout.row_views(X[1])
    views["classifier.bias"][2, 4] = 7.0
    row["features.0.weight"][0, 0, 0, 0] = 5.0
    sl = spec.layout.slice("classifier.bias")
    assert X[2, sl.start + 4] == 7.0
    assert X[1, 0] == 5.0
    assert sum(spec.layout.layer_sizes()) == spec.n_params


def test_init_is_seeded_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    spec = GNLeNetSpec(1, 28, 10)
    LSTMSpec(11, sequence_targets=True, pad_index=10)
    MatrixFactorizationSpec(5, 6)
    a, b, c = spec.init_params(1), spec.init_params(1), spec.init_params(2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float32 and a.shape == (spec.n_params,)


def _distinct_rows(spec, n):
    return torch.stack([spec.init_params(seed) for seed in range(n)])


@pytest.mark.parametrize("shared", [False, True])
def test_gn_lenet_grouped_forward_matches_module(shared):
    spec = GNLeNetSpec(1, 12, 5)
    n, B = 3, 4
    X = _distinct_rows(spec, n)
    x = torch.randn(B, 1, 12, 12) if shared else torch.randn(n, B, 1, 12, 12)
    out = spec.batched_logits(spec.layout.node_views(X), x)
    assert out.shape == (n, B, 5)
    for i in range(n):
        ref = spec.logits(spec.layout.row_views(X[i]), x if shared else x[i])
        torch.testing.assert_close(out[i], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sequence_targets", [True, False])
def test_lstm_batched_forward_matches_nn_lstm(sequence_targets):
    spec = LSTMSpec(11, sequence_targets=sequence_targets, pad_index=10)
    n, B, T = 2, 3, 6
    X = _distinct_rows(spec, n)
    x = torch.randint(0, 11, (n, B, T))
    out = spec.batched_logits(spec.layout.node_views(X), x)
    assert out.shape == ((n, B, T, 11) if sequence_targets else (n, B, 11))
    for i in range(n):
        ref = spec.logits(spec.layout.row_views(X[i]), x[i])
        torch.testing.assert_close(out[i], ref, rtol=1e-4, atol=1e-5)


def test_sequence_loss_and_accuracy_ignore_padding():
    spec = LSTMSpec(5, sequence_targets=True, pad_index=4)
    logits = torch.randn(2, 3, 4, 5)
    y = torch.randint(0, 4, (2, 3, 4))
    y[0, :, 2:] = 4
    losses = spec.loss(logits, y)
    for i in range(2):
        ref = F.cross_entropy(logits[i].reshape(-1, 5), y[i].reshape(-1), ignore_index=4)
        torch.testing.assert_close(losses[i], ref)
    hits, counts = spec.correct(logits, y)
    assert counts.tolist() == [6, 12]
    valid = y != 4
    assert hits.tolist() == [
        int(((logits[i].argmax(-1) == y[i]) & valid[i]).sum()) for i in range(2)
    ]


@pytest.mark.parametrize("biases", [False, True])
def test_mf_predict_matches_module(biases):
    spec = MatrixFactorizationSpec(7, 9, dim=4, biases=biases, mean=3.5)
    n = 3
    X = _distinct_rows(spec, n)
    X += 0.1 * torch.randn_like(X)  # non-zero biases too
    users, items = torch.randint(0, 7, (n, 5)), torch.randint(0, 9, (n, 5))
    nodes = torch.arange(n).unsqueeze(1).expand(n, 5)
    pred = spec.predict(X, nodes, users, items)
    for i in range(n):
        m = spec.module(0)
        torch.nn.utils.vector_to_parameters(X[i], m.parameters())
        torch.testing.assert_close(pred[i], m(users[i], items[i]))


def test_mf_init_without_biases_starts_near_the_mean():
    spec = MatrixFactorizationSpec(50, 60, dim=20, mean=3.5)
    X = spec.init_params(0).unsqueeze(0)
    u, i = torch.randint(0, 50, (1, 2000)), torch.randint(0, 60, (1, 2000))
    pred = spec.predict(X, torch.zeros_like(u), u, i)
    assert abs(float(pred.mean()) - 3.5) < 0.5


def test_layout_of_module_orders_like_named_parameters():
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    layout = ParamLayout.of_module(m)
    assert layout.names == ("0.weight", "0.bias", "1.weight", "1.bias")
    assert layout.offsets == (0, 6, 8, 10) and layout.n_params == 11
    torch.testing.assert_close(
        layout.flatten_module(m), torch.nn.utils.parameters_to_vector(m.parameters())
    )
