"""One task per kind of data: dispatch, model, partitions, batches, evaluation, trainer defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import synthetic_images, synthetic_ratings

from mosaic_fast.data import ClassificationData
from mosaic_fast.data.shakespeare import PAD_ID, VOCAB_SIZE
from mosaic_fast.errors import MosaicTypeError, MosaicValueError
from mosaic_fast.models import GNLeNetSpec, LSTMSpec, MatrixFactorizationSpec
from mosaic_fast.settings import ExperimentConfig
from mosaic_fast.tasks import (
    ImageClassificationTask,
    NextCharacterTask,
    NodeScores,
    RatingsTask,
    task_for,
)

CPU = torch.device("cpu")
CUDA = torch.device("cuda")


def synthetic_characters(sequence_targets: bool, n_train: int = 48, n_test: int = 12, T: int = 6):
    """Character windows of 6 groups (roles); targets per position (padded) or the next one."""
    g = torch.Generator().manual_seed(1)

    def draw(n):
        x = torch.randint(0, PAD_ID, (n, T), generator=g)
        if sequence_targets:
            y = torch.randint(0, PAD_ID, (n, T), generator=g)
            y[:, -2:] = PAD_ID
        else:
            y = torch.randint(0, PAD_ID, (n,), generator=g)
        return x, y, np.arange(n, dtype=np.int64) % 6

    (xt, yt, gt), (xs, ys, gs) = draw(n_train), draw(n_test)
    return ClassificationData(
        "shakespeare", xt, yt, xs, ys, VOCAB_SIZE, gt, gs, sequence_targets=sequence_targets
    )


def config(dataset: str, **kw) -> ExperimentConfig:
    base = dict(dataset=dataset, K=2, nodes=4, degree=2, rounds=2, test_samples=20)
    base.update(kw)
    return ExperimentConfig(**base).resolved()


def test_task_for_dispatches_on_the_kind_of_data():
    assert type(task_for(synthetic_images(n_train=120, n_test=30))) is ImageClassificationTask
    assert type(task_for(synthetic_characters(True))) is NextCharacterTask
    assert type(task_for(synthetic_characters(False))) is NextCharacterTask
    assert type(task_for(synthetic_ratings())) is RatingsTask
    with pytest.raises(MosaicTypeError, match="no task for data of type dict"):
        task_for({"x": 1})


def test_each_task_builds_the_papers_model():
    images = task_for(synthetic_images(n_train=120, n_test=30)).model_spec(config("fashion-mnist"))
    assert isinstance(images, GNLeNetSpec) and (images.in_channels, images.image_size) == (1, 8)
    sequence = task_for(synthetic_characters(True)).model_spec(config("shakespeare"))
    assert isinstance(sequence, LSTMSpec) and sequence.sequence_targets
    assert sequence.pad_index == PAD_ID and sequence.num_classes == VOCAB_SIZE
    last = task_for(synthetic_characters(False)).model_spec(config("shakespeare"))
    assert not last.sequence_targets and last.pad_index is None
    mf = task_for(synthetic_ratings()).model_spec(
        config("movielens", embedding_dim=5, mf_biases=True)
    )
    assert isinstance(mf, MatrixFactorizationSpec) and (mf.dim, mf.biases) == (5, True)
    assert (mf.n_users, mf.n_items) == (24, 30) and mf.mean == synthetic_ratings().rating_mean


def test_gn_lenet_refuses_non_square_images():
    data = synthetic_images(n_train=120, n_test=30)
    x_train, x_test = data.x_train[..., :6], data.x_test[..., :6]
    wide = ClassificationData("cifar10", x_train, data.y_train, x_test, data.y_test, 4, None, None)
    with pytest.raises(MosaicValueError, match="square images, got 8x6 in fashion-mnist"):
        task_for(wide).model_spec(config("fashion-mnist"))


@pytest.mark.parametrize(
    ("data", "dataset", "partitions"),
    [
        (synthetic_images(n_train=120, n_test=30), "fashion-mnist", ("iid", "dirichlet", "shards")),
        (synthetic_characters(True), "shakespeare", ("natural", "iid")),
        (synthetic_characters(False), "shakespeare", ("natural", "iid", "dirichlet", "shards")),
        (synthetic_ratings(), "movielens", ("natural",)),
    ],
)
def test_supported_partitions_cover_every_sample_once(data, dataset, partitions):
    task = task_for(data)
    assert task.partitions == partitions
    for partition in partitions:
        parts = task.partition(config(dataset, partition=partition, alpha=0.5))
        assert len(parts) == 4 and all(len(p) for p in parts)
        assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(data.n_train))


@pytest.mark.parametrize(
    ("data", "dataset", "partition", "message"),
    [
        (synthetic_images(n_train=120, n_test=30), "fashion-mnist", "natural", "no natural groups"),
        (synthetic_characters(True), "shakespeare", "dirichlet", "one class per sample"),
        (synthetic_ratings(), "movielens", "iid", "ratings are split by user"),
    ],
)
def test_unavailable_partition_is_a_one_line_value_error(data, dataset, partition, message):
    with pytest.raises(MosaicValueError, match=message) as info:
        task_for(data).partition(config(dataset, partition=partition, alpha=0.5))
    text = str(info.value)
    assert "\n" not in text and f"partition={partition!r}" in text and dataset in text


def test_trainer_defaults_per_device_and_refused_strategies():
    for task in (ImageClassificationTask, NextCharacterTask):
        assert task.trainer_strategy("auto", CPU) == "loop"
        assert task.trainer_strategy("auto", CUDA) == "batched"
        assert task.trainer_strategy("vmap", CPU) == "vmap"
        with pytest.raises(MosaicValueError, match="'sparse' is not available"):
            task.trainer_strategy("sparse", CPU)
    assert RatingsTask.trainer_strategy("auto", CPU) == "sparse"
    assert RatingsTask.trainer_strategy("auto", CUDA) == "sparse"
    with pytest.raises(MosaicValueError, match="'loop' is not available for the ratings task"):
        RatingsTask.trainer_strategy("loop", CPU)
    with pytest.raises(MosaicValueError, match="'fast'.*choose one of auto, loop, vmap, batched"):
        ImageClassificationTask.trainer_strategy("fast", CPU)


def _node_data(data, dataset, strategy="loop", **kw):
    cfg = config(dataset, **kw)
    task = task_for(data)
    spec = task.model_spec(cfg)
    parts = task.partition(cfg)
    return spec, parts, task.node_data(cfg, spec, parts, CPU, strategy)


@pytest.mark.parametrize(
    ("data", "dataset"),
    [
        (synthetic_images(n_train=120, n_test=30), "fashion-mnist"),
        (synthetic_characters(True), "shakespeare"),
    ],
)
def test_classification_batches_and_accuracy(data, dataset):
    spec, _, node_data = _node_data(data, dataset, partition="iid")
    idx = np.array([[0, 5, 7], [1, 2, 3], [4, 4, 9], [10, 11, 12]])
    x, y = node_data.batch(idx)
    assert torch.equal(x, data.x_train[torch.from_numpy(idx)])
    assert torch.equal(y, data.y_train[torch.from_numpy(idx)])
    X = torch.stack([spec.init_params(s) for s in range(4)])
    scores = node_data.evaluate(X)
    assert isinstance(scores, NodeScores) and scores.per_node.shape == (4,)
    # test_samples=20 keeps 20 of the 30 test images, and all 12 test windows.
    assert len(node_data.y_test) == min(20, data.n_test)
    hits, counts = spec.correct(
        spec.logits(spec.layout.row_views(X[2]), node_data.x_test), node_data.y_test
    )
    assert scores.per_node[2] == pytest.approx(int(hits) / int(counts))
    _, _, batched = _node_data(data, dataset, strategy="batched", partition="iid")
    np.testing.assert_allclose(batched.evaluate(X).per_node, scores.per_node)
    mean_hits, mean_counts = spec.correct(
        spec.logits(spec.layout.row_views(X.mean(0)), node_data.x_test), node_data.y_test
    )
    assert scores.avg_model == pytest.approx(int(mean_hits) / int(mean_counts))


@pytest.mark.parametrize(
    ("data", "dataset"),
    [
        (synthetic_images(n_train=120, n_test=30), "fashion-mnist"),
        (synthetic_characters(True), "shakespeare"),
    ],
)
@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_node_mean_standard_error_is_the_ratio_estimator_over_test_samples(data, dataset, strategy):
    spec, _, node_data = _node_data(data, dataset, strategy=strategy, partition="iid")
    X = torch.stack([spec.init_params(s) for s in range(4)])
    scores = node_data.evaluate(X)
    # Independently: per test sample j, hits summed over nodes h_j and counted targets c_j.
    h = np.zeros(len(node_data.y_test))
    c = np.zeros(len(node_data.y_test))
    for i in range(4):
        params = spec.layout.row_views(X[i])
        for j in range(len(node_data.y_test)):
            x, y = node_data.x_test[j : j + 1], node_data.y_test[j : j + 1]
            hits, counts = spec.correct(spec.logits(params, x), y)
            h[j] += int(hits) / 4
            c[j] = int(counts)
    N, ratio = len(c), h.sum() / c.sum()
    expected = np.sqrt(N / (N - 1) * np.sum((h - ratio * c) ** 2)) / c.sum()
    assert np.mean(scores.per_node) == pytest.approx(ratio)
    assert scores.node_mean_se == pytest.approx(expected, rel=1e-9)
    if dataset == "fashion-mnist":  # one target per image: std(h, ddof=1) / sqrt(N)
        assert expected == pytest.approx(np.std(h, ddof=1) / np.sqrt(N))


def test_identical_models_are_scored_once_with_the_same_result():
    data = synthetic_images(n_train=120, n_test=30)
    spec, _, node_data = _node_data(data, "fashion-mnist", partition="iid")
    X = spec.init_params(3).expand(4, -1).clone()
    calls = []
    original = node_data._accuracy
    node_data._accuracy = lambda rows: calls.append(rows.shape[0]) or original(rows)
    scores = node_data.evaluate(X)
    assert calls == [1, 1]  # one node, then the average model
    node_data._accuracy = original
    X[1, 0] += 1.0  # no longer identical: every row is scored
    reference = node_data.evaluate(X)
    assert reference.per_node[0] == scores.per_node[0] and scores.per_node.shape == (4,)
    assert np.all(scores.per_node == scores.per_node[0])
    assert reference.per_node[2] == scores.per_node[2]


def test_ratings_batches_and_per_node_rmse():
    data = synthetic_ratings()
    spec, parts, node_data = _node_data(data, "movielens")
    idx = np.stack([p[:3] for p in parts])
    users, items, ratings = node_data.batch(idx)
    assert torch.equal(users, data.train_users[torch.from_numpy(idx)])
    assert torch.equal(ratings, data.train_ratings[torch.from_numpy(idx)])
    assert items.shape == (4, 3)
    X = torch.stack([spec.init_params(s) for s in range(4)])
    scores = node_data.evaluate(X)
    for node, part in enumerate(parts):
        own = np.isin(data.test_users.numpy(), np.unique(data.train_users.numpy()[part]))
        u, i = data.test_users[own], data.test_items[own]
        pred = spec.predict(X, torch.full_like(u, node), u, i)
        rmse = float(torch.sqrt(((pred - data.test_ratings[own]).double() ** 2).mean()))
        assert scores.per_node[node] == pytest.approx(rmse, rel=1e-12)
