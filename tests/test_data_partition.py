"""Partitioners: coverage, non-emptiness, determinism, skew, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mosaic_fast.data.partition import deal_group_ids, deal_groups, partition_classes
from mosaic_fast.errors import MosaicError, MosaicTypeError, MosaicValueError


def _labels(n=1000, classes=10, seed=0):
    return np.random.default_rng(seed).integers(0, classes, n)


def _assert_partition(parts, n, n_nodes):
    assert len(parts) == n_nodes
    assert all(p.dtype == np.int64 and p.ndim == 1 and len(p) > 0 for p in parts)
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted, no duplicates
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n))


def _skew(labels, parts, classes=10):
    """Mean total-variation distance between each node's label histogram and the global one."""
    glob = np.bincount(labels, minlength=classes) / len(labels)
    return np.mean(
        [
            0.5 * np.abs(np.bincount(labels[p], minlength=classes) / len(p) - glob).sum()
            for p in parts
        ]
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    classes=st.integers(1, 12),
    n_nodes=st.integers(1, 40),
    method=st.sampled_from(["iid", "dirichlet", "shards"]),
    alpha=st.floats(0.01, 10.0),
    spn=st.integers(1, 4),
    seed=st.integers(0, 2**32),
)
def test_every_method_is_a_partition_with_nonempty_nodes(
    n, classes, n_nodes, method, alpha, spn, seed
):
    labels = np.random.default_rng(seed).integers(0, classes, n)
    if n_nodes > n or (method == "shards" and n_nodes * spn > n):
        with pytest.raises(MosaicValueError):
            partition_classes(
                labels, n_nodes, method=method, alpha=alpha, shards_per_node=spn, seed=seed
            )
        return
    parts = partition_classes(
        labels, n_nodes, method=method, alpha=alpha, shards_per_node=spn, seed=seed
    )
    _assert_partition(parts, n, n_nodes)


@pytest.mark.parametrize("method", ["iid", "dirichlet", "shards"])
def test_same_seed_same_split_other_seed_other_split(method):
    labels = _labels()
    a = partition_classes(labels, 10, method=method, alpha=0.5, seed=3)
    b = partition_classes(labels.copy(), 10, method=method, alpha=0.5, seed=3)
    c = partition_classes(labels, 10, method=method, alpha=0.5, seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_iid_sizes_are_balanced_and_labels_unskewed():
    labels = _labels(n=5003)
    parts = partition_classes(labels, 10, method="iid", seed=0)
    assert {len(p) for p in parts} == {500, 501}
    assert _skew(labels, parts) < 0.1


def test_dirichlet_label_skew_grows_as_alpha_falls():
    labels = _labels(n=5000)
    skews = [
        _skew(labels, partition_classes(labels, 10, method="dirichlet", alpha=a, seed=1))
        for a in (100, 1, 0.05)
    ]
    assert skews[0] < 0.1 < skews[1] < skews[2]
    assert skews[2] > 0.6  # alpha = 0.05: most nodes hold one or two classes


def test_dirichlet_repairs_empty_nodes_deterministically():
    labels = np.zeros(
        30, dtype=np.int64
    )  # one class, tiny alpha: nearly all samples land on one node
    a = partition_classes(labels, 20, method="dirichlet", alpha=0.001, seed=0)
    b = partition_classes(labels, 20, method="dirichlet", alpha=0.001, seed=0)
    _assert_partition(a, 30, 20)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_shards_give_each_node_few_classes():
    labels = np.repeat(np.arange(10), 100)
    parts = partition_classes(labels, 10, method="shards", shards_per_node=2, seed=0)
    assert all(len(p) == 100 for p in parts)
    assert all(len(np.unique(labels[p])) <= 2 for p in parts)


@pytest.mark.parametrize(
    ("kwargs", "exc", "needle"),
    [
        ({"method": "dirichlet"}, MosaicValueError, "alpha=None"),
        ({"method": "dirichlet", "alpha": 0.0}, MosaicValueError, "alpha=0.0"),
        ({"method": "dirichlet", "alpha": -1}, MosaicValueError, "alpha=-1"),
        ({"method": "dirichlet", "alpha": float("nan")}, MosaicValueError, "alpha=nan"),
        ({"method": "pathological"}, MosaicValueError, "'pathological'"),
        ({"method": "shards", "shards_per_node": 0}, MosaicValueError, "shards_per_node=0"),
        ({"method": "shards", "shards_per_node": 60}, MosaicValueError, "600 shards"),
        ({"method": "iid", "seed": -1}, MosaicValueError, "seed=-1"),
        ({"method": "iid", "seed": 1.5}, MosaicTypeError, "seed=1.5"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, exc, needle):
    with pytest.raises(exc, match=needle.replace("(", r"\(")):
        partition_classes(_labels(n=500), 10, **kwargs)


def test_more_nodes_than_samples_and_bad_labels():
    with pytest.raises(MosaicValueError, match="n_nodes=11 exceeds the number of samples \\(10\\)"):
        partition_classes(np.zeros(10, dtype=int), 11, method="iid")
    with pytest.raises(MosaicValueError, match="n_nodes=0"):
        partition_classes(np.zeros(10, dtype=int), 0, method="iid")
    with pytest.raises(MosaicTypeError, match="float64"):
        partition_classes(np.zeros(10), 2, method="iid")
    with pytest.raises(MosaicValueError, match=r"\(2, 5\)"):
        partition_classes(np.zeros((2, 5), dtype=int), 2, method="iid")


def test_deal_groups_gives_contiguous_blocks_of_sorted_ids():
    groups = np.array([7, 3, 3, 9, 1, 7, 5, 9, 1, 1])  # distinct sorted: 1 3 5 7 9
    parts = deal_groups(groups, 2)
    _assert_partition(parts, len(groups), 2)
    assert [sorted(set(groups[p].tolist())) for p in parts] == [[1, 3, 5], [7, 9]]
    assert [b.tolist() for b in deal_group_ids(groups, 2)] == [[1, 3, 5], [7, 9]]
    assert [sorted(set(groups[p].tolist())) for p in deal_groups(groups, 5)] == [
        [1],
        [3],
        [5],
        [7],
        [9],
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=200), st.integers(1, 60))
def test_deal_groups_is_a_partition_by_blocks(groups, n_nodes):
    groups = np.array(groups)
    distinct = np.unique(groups)
    if n_nodes > len(distinct):
        with pytest.raises(
            MosaicError, match=f"n_nodes={n_nodes} exceeds the number of distinct groups"
        ):
            deal_groups(groups, n_nodes)
        return
    parts = deal_groups(groups, n_nodes)
    _assert_partition(parts, len(groups), n_nodes)
    owned = [np.unique(groups[p]) for p in parts]
    np.testing.assert_array_equal(
        np.concatenate(owned), distinct
    )  # blocks in order, no group split
    sizes = [len(o) for o in owned]
    assert max(sizes) - min(sizes) <= 1
