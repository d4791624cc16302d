"""The loaders on the real published files (skipped when a copy is absent)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import SHARED_DATA

from mosaic_fast.data import clear_cache, deal_groups, load_dataset, partition_classes
from mosaic_fast.data import shakespeare as sh

_ML = SHARED_DATA / "ml-latest-small" / "ratings.csv"
_FM = Path("/usr/share/datasets/fashion-mnist")
_TFF = SHARED_DATA / "shakespeare" / "tff_leaf"


@pytest.mark.skipif(not _ML.is_file(), reason=f"MovieLens ml-latest-small not found at {_ML}")
def test_movielens_latest_small():
    d = load_dataset("movielens", data_dir=SHARED_DATA, download=False, seed=0)
    assert (d.n_users, d.n_items) == (610, 9724)
    assert d.n_train + d.n_test == 100_836
    assert 0.69 < d.n_train / 100_836 < 0.71
    assert torch.equal(torch.unique(d.train_users), torch.arange(610))  # every user trains
    assert torch.equal(torch.unique(d.test_users), torch.arange(610))  # >= 20 ratings each
    assert 3.4 < d.rating_mean < 3.6
    assert float(d.train_ratings.min()) == 0.5 and float(d.train_ratings.max()) == 5.0
    parts = deal_groups(d.train_users.numpy(), 16)
    users = [np.unique(d.train_users.numpy()[p]) for p in parts]
    assert (
        [len(u) for u in users] == [39] * 2 + [38] * 14
        and users[0][0] == 0
        and users[-1][-1] == 609
    )


# sha256 of x_train, y_train, x_test, y_test (tobytes) as the loader gave them before it went
# through torchvision: every run on this copy must see the very same tensors.
_FM_TENSOR_SHA256 = (
    "90cdb5e69364e63d64df687c55d8347ed439e011de279be3c03e253b5b4deb8a",
    "e3245b63f7c40d1c8b652835f19744d970c1613b40ddac6bcfc87b9c46e16a0b",
    "46db1a148d92c23bf06793ceeea69d3c4ec9f0896501e6f9d962ccc5198b78b1",
    "d51d859896c55775b9e9e219b77ff03bcec1b6ac322f313544dc3f9e7bc94fae",
)


@pytest.mark.skipif(
    not (_FM / "train-images-idx3-ubyte.gz").is_file(), reason=f"Fashion-MNIST not found in {_FM}"
)
def test_fashion_mnist_debian_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path))
    clear_cache()
    d = load_dataset("fashion-mnist", data_dir=_FM, download=False)
    assert d.x_train.shape == (60_000, 1, 28, 28) and d.x_test.shape == (10_000, 1, 28, 28)
    assert d.x_train.dtype == torch.float32
    tensors = (d.x_train, d.y_train, d.x_test, d.y_test)
    assert tuple(hashlib.sha256(t.numpy().tobytes()).hexdigest() for t in tensors) == (
        _FM_TENSOR_SHA256
    )
    assert torch.equal(torch.bincount(d.y_train), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(d.y_test), torch.full((10,), 1000))
    # normalised with the published train statistics
    assert abs(float(d.x_train.mean())) < 1e-3 and abs(float(d.x_train.std()) - 1) < 1e-3
    parts = partition_classes(d.y_train.numpy(), 64, method="dirichlet", alpha=0.1, seed=0)
    assert sum(len(p) for p in parts) == 60_000 and min(len(p) for p in parts) > 0
    raw = tmp_path / "fashion-mnist" / "FashionMNIST" / "raw"  # unpacked for torchvision
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + 60_000 * 28 * 28
    clear_cache()


@pytest.mark.skipif(
    not (_TFF / "shakespeare_train.h5").is_file(), reason=f"TFF Shakespeare not found in {_TFF}"
)
def test_shakespeare_tff_h5():
    d = load_dataset("shakespeare", data_dir=SHARED_DATA, download=False)
    assert d.sequence_targets and d.num_classes == sh.VOCAB_SIZE
    assert len(np.unique(d.groups_train)) == 715 and d.groups_train.max() == 714
    assert np.unique(d.groups_test).max() <= 714
    assert d.x_train.shape[1:] == (80,) and d.y_train.shape == d.x_train.shape
    # 2,359,315 train characters, minus the first of each usable snippet, are targets exactly once
    targets = int((d.y_train != sh.PAD_ID).sum())
    assert 2_359_315 - 16_068 <= targets < 2_359_315
    assert int((d.x_train == sh.UNK_ID).sum()) == 0  # every character is in LEAF's vocabulary
    parts = deal_groups(d.groups_train, 32)
    assert sum(len(p) for p in parts) == d.n_train
