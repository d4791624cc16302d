"""Dataset names, the search order, caching and argument errors of load_dataset."""

from __future__ import annotations

import os

import numpy as np
import pytest
from data_helpers import isolate, movielens_rows, write_fashion, write_ml_latest_small

from mosaic_fast.data import (
    clear_cache,
    dataset_names,
    load_dataset,
    locate_dataset,
    locations,
)
from mosaic_fast.errors import DataNotFoundError, MosaicTypeError, MosaicValueError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


def test_dataset_names():
    assert dataset_names() == ["fashion-mnist", "movielens", "cifar10", "cifar100", "shakespeare"]


def test_unknown_name_lists_the_valid_ones(isolated):
    with pytest.raises(
        MosaicValueError, match="unknown dataset 'mnist'; choose one of fashion-mnist, movielens"
    ):
        load_dataset("mnist")
    with pytest.raises(MosaicValueError, match="'cifar'"):
        locate_dataset("cifar")


def test_missing_data_dir_is_named(isolated):
    missing = isolated / "nope"
    with pytest.raises(DataNotFoundError, match=f"data_dir '{missing}' does not exist"):
        load_dataset("movielens", data_dir=missing)
    with pytest.raises(DataNotFoundError, match="nope"):
        locate_dataset("movielens", data_dir=str(missing))


def test_search_order_data_dir_then_env_then_system_then_cache(isolated, monkeypatch):
    def copy(where, n_users):
        write_ml_latest_small(where / "ml-latest-small", movielens_rows(n_users=n_users))
        return where / "ml-latest-small"

    cache = copy(isolated / "cache", 2)
    assert locate_dataset("movielens") == cache
    system = copy(isolated / "system", 3)
    monkeypatch.setitem(locations.SYSTEM_DIRS, "movielens", (isolated / "system",))
    assert locate_dataset("movielens") == system
    env2 = copy(isolated / "env2", 4)
    monkeypatch.setenv(
        "MOSAIC_DATA", os.pathsep.join([str(isolated / "empty"), str(isolated / "env2")])
    )
    assert locate_dataset("movielens") == env2
    explicit = copy(isolated / "explicit", 5)
    assert locate_dataset("movielens", data_dir=isolated / "explicit") == explicit
    assert load_dataset("movielens", data_dir=isolated / "explicit", download=False).n_users == 5
    assert load_dataset("movielens", download=False).n_users == 4
    # a data_dir without the dataset falls through to the next locations
    (isolated / "other").mkdir()
    assert locate_dataset("movielens", data_dir=isolated / "other") == env2


def test_fashion_mnist_found_in_system_dir(isolated, monkeypatch):
    write_fashion(isolated / "debian", n_train=3, n_test=2)
    assert locate_dataset("fashion-mnist") is None
    monkeypatch.setitem(locations.SYSTEM_DIRS, "fashion-mnist", (isolated / "debian",))
    assert locate_dataset("fashion-mnist") == isolated / "debian"
    assert load_dataset("fashion-mnist", download=False).n_train == 3


def test_not_found_without_download_says_where_to_put_files(isolated, monkeypatch):
    monkeypatch.setenv("MOSAIC_DATA", str(isolated / "env"))
    (isolated / "dd").mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("shakespeare", data_dir=isolated / "dd", download=False)
    msg = str(info.value)
    assert msg.startswith(
        f"no local copy of shakespeare found in [{isolated / 'dd'}, {isolated / 'env'}, {isolated / 'cache'}]; "
        "downloading is disabled; put the files (LEAF's train/*.json"
    )
    assert f"in {isolated / 'cache' / 'shakespeare'} or pass --data-dir (or set MOSAIC_DATA)" in msg


@pytest.mark.parametrize(
    ("kwargs", "exc", "needle"),
    [
        ({"seed": -1}, MosaicValueError, "seed=-1"),
        ({"seed": 0.5}, MosaicTypeError, "seed=0.5"),
        ({"max_samples_per_group": 0}, MosaicValueError, "max_samples_per_group=0"),
        ({"max_samples_per_group": "10"}, MosaicTypeError, "max_samples_per_group='10'"),
    ],
)
def test_bad_arguments(isolated, kwargs, exc, needle):
    with pytest.raises(exc, match=needle):
        load_dataset("movielens", download=False, **kwargs)


def test_cache_returns_the_same_object_until_cleared(isolated):
    write_fashion(isolated / "fm", n_train=3, n_test=2)
    a = load_dataset("fashion-mnist", data_dir=isolated / "fm", download=False)
    b = load_dataset("fashion-mnist", data_dir=str(isolated / "fm"), download=False, seed=7)
    assert a is b  # the seed does not change Fashion-MNIST, so it is not part of the key
    clear_cache()
    c = load_dataset("fashion-mnist", data_dir=isolated / "fm", download=False)
    assert c is not a and np.array_equal(c.x_train.numpy(), a.x_train.numpy())
