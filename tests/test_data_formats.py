"""Loaders on small generated files in the published formats."""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import torch
from data_helpers import (
    accept_cifar,
    isolate,
    leaf_samples,
    movielens_rows,
    py2_pickle,
    write_cifar10,
    write_cifar100,
    write_fashion,
    write_idx_gz,
    write_leaf,
    write_ml_100k,
    write_ml_latest_small,
    write_tff_h5,
)

from mosaic_fast.data import ClassificationData, RatingsData, cifar, clear_cache, load_dataset
from mosaic_fast.data import shakespeare as sh
from mosaic_fast.errors import DataNotFoundError, MosaicValueError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    return isolate(tmp_path, monkeypatch)


# ----------------------------------------------------------------------------- Fashion-MNIST

_FM_FILES = (
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
)


def test_fashion_mnist_gz_copy_is_unpacked_into_the_cache(isolated):
    tri, trl, tei, tel = write_fashion(isolated / "fm", n_train=12, n_test=5)
    d = load_dataset("fashion-mnist", data_dir=isolated / "fm", download=False)
    assert isinstance(d, ClassificationData) and d.num_classes == 10 and not d.sequence_targets
    assert d.x_train.dtype == torch.float32 and d.x_train.shape == (12, 1, 28, 28)
    assert d.y_train.dtype == torch.int64 and d.y_test.shape == (5,)
    expected = (tri.astype(np.float64) / 255 - 0.2860) / 0.3530
    np.testing.assert_allclose(d.x_train[:, 0].numpy(), expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(d.y_train.numpy(), trl)
    np.testing.assert_array_equal(d.y_test.numpy(), tel)
    assert d.groups_train is None and d.groups_test is None
    raw = isolated / "cache" / "fashion-mnist" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [".mosaic-source.json", *_FM_FILES]
    assert (raw / "t10k-images-idx3-ubyte").read_bytes() == gzip.decompress(
        (isolated / "fm" / "t10k-images-idx3-ubyte.gz").read_bytes()
    )
    assert sorted(p.name for p in (isolated / "fm").iterdir()) == [f + ".gz" for f in _FM_FILES]


def test_fashion_mnist_torchvision_layout_is_read_in_place(isolated):
    raw = isolated / "root" / "FashionMNIST" / "raw"
    arrays = write_fashion(raw, n_train=4, n_test=3)
    for name in _FM_FILES:  # torchvision keeps the .gz and the unpacked file side by side
        (raw / name).write_bytes(gzip.decompress((raw / f"{name}.gz").read_bytes()))
    d = load_dataset("fashion-mnist", data_dir=isolated / "root", download=False)
    np.testing.assert_array_equal(d.y_test.numpy(), arrays[3])
    assert not (isolated / "cache").exists()  # nothing unpacked


def test_fashion_mnist_partly_unpacked_torchvision_folder_is_unpacked(isolated):
    raw = isolated / "root" / "FashionMNIST" / "raw"
    arrays = write_fashion(raw, n_train=4, n_test=3)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(
        gzip.decompress((raw / "t10k-labels-idx1-ubyte.gz").read_bytes())
    )
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()  # one file only unpacked
    d = load_dataset("fashion-mnist", data_dir=isolated / "root", download=False)
    np.testing.assert_array_equal(d.y_test.numpy(), arrays[3])
    assert (isolated / "cache" / "fashion-mnist" / "FashionMNIST" / "raw").is_dir()


def test_fashion_mnist_unpacks_each_copy_once_and_again_when_it_changes(isolated):
    a = write_fashion(isolated / "a", n_train=5, n_test=2, seed=1)
    b = write_fashion(isolated / "b", n_train=6, n_test=2, seed=2)
    raw = isolated / "cache" / "fashion-mnist" / "FashionMNIST" / "raw"
    load_dataset("fashion-mnist", data_dir=isolated / "a", download=False)
    os.utime(raw / "train-images-idx3-ubyte", ns=(1, 1))
    clear_cache()
    d = load_dataset("fashion-mnist", data_dir=isolated / "a", download=False)
    assert (raw / "train-images-idx3-ubyte").stat().st_mtime_ns == 1  # not unpacked again
    np.testing.assert_array_equal(d.y_train.numpy(), a[1])
    d = load_dataset("fashion-mnist", data_dir=isolated / "b", download=False)
    np.testing.assert_array_equal(d.y_train.numpy(), b[1])
    write_fashion(isolated / "a", n_train=7, n_test=2, seed=3)  # the copy itself changes
    clear_cache()
    d = load_dataset("fashion-mnist", data_dir=isolated / "a", download=False)
    assert d.n_train == 7


def test_fashion_mnist_unwritable_cache_is_a_one_line_error(isolated, monkeypatch):
    write_fashion(isolated / "fm", n_train=3, n_test=2)
    (isolated / "file").write_text("not a folder")
    monkeypatch.setenv("MOSAIC_CACHE", str(isolated / "file"))
    with pytest.raises(
        MosaicValueError, match=r"cannot unpack .*\(set MOSAIC_CACHE to a writable folder"
    ):
        load_dataset("fashion-mnist", data_dir=isolated / "fm", download=False)


def _truncated_payload(folder):
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))


def _cut_gzip(folder):
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (
            lambda f: write_idx_gz(
                f / "train-images-idx3-ubyte.gz", np.zeros((6, 28, 28)), magic=0x0000_0B03
            ),
            r"train-images-idx3-ubyte' has IDX magic number 0x00000b03, expected 0x00000803",
        ),
        (
            lambda f: write_idx_gz(f / "t10k-labels-idx1-ubyte.gz", np.zeros((3, 2))),
            r"t10k-labels-idx1-ubyte' has IDX magic number 0x00000802, expected 0x00000801",
        ),
        (_truncated_payload, r"holds 4699 payload bytes but its header \(6, 28, 28\) needs 4704"),
        (_cut_gzip, r"cannot unpack '.*train-images-idx3-ubyte.gz' into"),
        (
            lambda f: (f / "t10k-images-idx3-ubyte.gz").write_bytes(b"this is not gzip"),
            r"cannot unpack '.*t10k-images-idx3-ubyte.gz' into .*Not a gzipped file",
        ),
        (
            lambda f: write_idx_gz(f / "train-labels-idx1-ubyte.gz", np.zeros(5)),
            "train-labels-idx1-ubyte' has 5 labels for 6 images",
        ),
        (
            lambda f: write_idx_gz(f / "t10k-images-idx3-ubyte.gz", np.zeros((3, 27, 28))),
            r"holds images of shape \(27, 28\), expected \(28, 28\)",
        ),
        (
            lambda f: write_idx_gz(f / "t10k-labels-idx1-ubyte.gz", np.full(3, 10)),
            "t10k-labels-idx1-ubyte' has label 10, expected 0..9",
        ),
    ],
)
def test_fashion_mnist_corrupt_files_are_one_line_errors(isolated, damage, needle):
    write_fashion(isolated / "fm", n_train=6, n_test=3)
    damage(isolated / "fm")
    with pytest.raises(MosaicValueError, match=needle) as info:
        load_dataset("fashion-mnist", data_dir=isolated / "fm", download=False)
    assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- CIFAR


def test_py2_pickle_writer_matches_the_published_opcodes():
    blob = py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [3]})
    assert blob.startswith(b"\x80\x02}")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in blob
    assert b"U\x04data" in blob and b"X\x04" not in blob  # SHORT_BINSTRING keys, no unicode


@pytest.mark.parametrize("variant", [cifar.CIFAR10, cifar.CIFAR100])
def test_cifar_layout_is_torchvisions(variant):
    cls = variant.dataset_class()
    assert variant.folder == cls.base_folder
    listed = [name for name, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    assert list(variant.files) == listed


def test_cifar10_python_pickles(isolated, monkeypatch):
    folder, batches = write_cifar10(isolated / "c10", n_per_batch=4)
    accept_cifar(monkeypatch, folder)
    d = load_dataset("cifar10", data_dir=isolated / "c10", download=False)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    assert (
        d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64 and d.num_classes == 10
    )
    data, labels = batches[1]  # second train batch -> rows 4..7
    img = data.reshape(-1, 3, 32, 32).astype(np.float64) / 255
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2023, 0.1994, 0.2010])
    expected = (img - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(d.x_train[4:8].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(d.y_train[4:8].numpy(), labels)
    np.testing.assert_array_equal(d.y_test.numpy(), batches[5][1])


def test_cifar100_uses_fine_labels(isolated, monkeypatch):
    write_cifar100(isolated / "c100", n_train=6, n_test=3)
    folder, batches = write_cifar100(isolated / "other", n_train=6, n_test=3)
    accept_cifar(monkeypatch, folder)
    d = load_dataset("cifar100", data_dir=folder, download=False)  # the folder itself works too
    assert d.num_classes == 100 and d.x_train.shape == (6, 3, 32, 32)
    np.testing.assert_array_equal(d.y_train.numpy(), batches[0][1])
    red = batches[1][0][:, :1024].reshape(-1, 32, 32).astype(np.float64) / 255
    np.testing.assert_allclose(d.x_test[:, 0].numpy(), (red - 0.5071) / 0.2673, atol=1e-5)


def test_cifar_folder_must_have_the_published_name(isolated, monkeypatch):
    folder, _ = write_cifar10(isolated / "c10")
    accept_cifar(monkeypatch, folder)
    folder.rename(isolated / "c10" / "cifar10")
    with pytest.raises(DataNotFoundError, match="no local copy of cifar10"):
        load_dataset("cifar10", data_dir=isolated / "c10", download=False)


def test_cifar_files_must_match_the_published_md5(isolated):
    folder, _ = write_cifar10(isolated / "c10")
    with pytest.raises(MosaicValueError) as info:
        load_dataset("cifar10", data_dir=isolated / "c10", download=False)
    assert str(info.value) == (
        f"cifar10: a file in {str(folder)!r} is missing or differs from the published one "
        "(md5 mismatch; torchvision: Dataset not found or corrupted)"
    )


def test_cifar_tampered_pickle_is_rejected_before_it_is_unpickled(isolated, monkeypatch):
    folder, _ = write_cifar10(isolated / "c10")
    accept_cifar(monkeypatch, folder)
    marker = isolated / "pwned"
    (folder / "data_batch_1").write_bytes(f"cbuiltins\nopen\n(S'{marker}'\nS'w'\ntR.".encode())
    with pytest.raises(MosaicValueError, match="md5 mismatch"):
        load_dataset("cifar10", data_dir=isolated / "c10", download=False)
    assert not marker.exists()


def test_cifar_wrong_shape_is_reported(isolated, monkeypatch):
    folder, _ = write_cifar10(isolated / "c10")
    (folder / "test_batch").write_bytes(
        py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    )
    accept_cifar(monkeypatch, folder)
    with pytest.raises(MosaicValueError, match=r"cifar10: torchvision cannot read .*reshape"):
        load_dataset("cifar10", data_dir=isolated / "c10", download=False)


def test_cifar_label_out_of_range_is_reported(isolated, monkeypatch):
    folder, _ = write_cifar10(isolated / "c10")
    (folder / "test_batch").write_bytes(
        py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    )
    accept_cifar(monkeypatch, folder)
    with pytest.raises(MosaicValueError, match=r"has labels in \[0, 10\], expected 0..9"):
        load_dataset("cifar10", data_dir=isolated / "c10", download=False)


# ----------------------------------------------------------------------------- MovieLens


@pytest.mark.parametrize("layout", ["ml-latest-small", "ml-100k"])
def test_movielens_layouts_reindex_and_split(isolated, layout):
    rows = movielens_rows(n_users=6)
    writer = write_ml_latest_small if layout == "ml-latest-small" else write_ml_100k
    writer(isolated / "ml" / layout, rows)
    d = load_dataset("movielens", data_dir=isolated / "ml", download=False, seed=5)
    assert isinstance(d, RatingsData) and d.n_users == 6
    raw_items = sorted({r[1] for r in rows})
    assert d.n_items == len(raw_items)
    for t in (d.train_users, d.train_items, d.test_users, d.test_items):
        assert t.dtype == torch.int64
    assert d.train_ratings.dtype == torch.float32 and d.test_ratings.dtype == torch.float32
    # per user: round(70%) train, rest test, together exactly the user's ratings
    for u in range(6):
        n = 3 + 2 * u
        n_tr = int((d.train_users == u).sum())
        assert n_tr == max(1, (7 * n + 5) // 10) and int((d.test_users == u).sum()) == n - n_tr
    user_ids = sorted({r[0] for r in rows})
    got = {
        (user_ids[u], raw_items[i], float(r))
        for users, items, ratings in (
            (d.train_users, d.train_items, d.train_ratings),
            (d.test_users, d.test_items, d.test_ratings),
        )
        for u, i, r in zip(users.tolist(), items.tolist(), ratings.tolist(), strict=True)
    }
    rating = (lambda r: r) if layout == "ml-latest-small" else (lambda r: float(int(round(r))))
    assert got == {(u, i, rating(r)) for u, i, r, _ in rows}
    assert d.rating_mean == pytest.approx(float(d.train_ratings.double().mean()))


def test_movielens_split_depends_on_seed_only(isolated):
    write_ml_latest_small(isolated / "ml", movielens_rows(n_users=4))
    a = load_dataset("movielens", data_dir=isolated / "ml", seed=1, download=False)
    b = load_dataset("movielens", data_dir=isolated / "ml", seed=1, download=False)
    c = load_dataset("movielens", data_dir=isolated / "ml", seed=2, download=False)
    assert a is b  # per-process cache
    assert not torch.equal(a.train_items, c.train_items)
    assert torch.equal(a.train_users.bincount(), c.train_users.bincount())


def test_movielens_single_rating_user_keeps_it_for_training(isolated):
    write_ml_100k(isolated / "ml-100k", [(1, 1, 3.0, 0), (2, 1, 4.0, 0), (2, 2, 5.0, 0)])
    d = load_dataset("movielens", data_dir=isolated / "ml-100k", download=False)
    assert d.train_users.tolist().count(0) == 1 and 0 not in d.test_users.tolist()


def test_movielens_garbage_file_is_reported(isolated):
    (isolated / "ml").mkdir()
    (isolated / "ml" / "ratings.csv").write_text("userId,movieId,rating,timestamp\r\n1,2,bad,3\r\n")
    with pytest.raises(MosaicValueError, match="not a MovieLens ratings file"):
        load_dataset("movielens", data_dir=isolated / "ml", download=False)


# ----------------------------------------------------------------------------- Shakespeare

_TEXT = (
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 2
)


def test_vocabulary_is_leafs_plus_pad_and_unknown():
    assert len(sh.ALL_LETTERS) == 80 and (sh.PAD_ID, sh.UNK_ID, sh.VOCAB_SIZE) == (80, 81, 82)
    np.testing.assert_array_equal(sh.encode("\n a}"), [0, 1, 53, 79])
    np.testing.assert_array_equal(sh.encode("é$ö"), [81, 81, 81])


def test_windows_cover_each_target_once_and_pad_the_last():
    text = "".join(chr(65 + i % 26) for i in range(170))
    ids = sh.encode(text)
    x, y, snippet = sh.windows(
        np.concatenate([ids, sh.encode("ab"), sh.encode("z")]), np.array([170, 2, 1])
    )
    assert x.shape == (4, 80) and snippet.tolist() == [
        0,
        0,
        0,
        1,
    ]  # ceil(169/80) = 3 windows, then 1
    np.testing.assert_array_equal(x[0], ids[:80])
    np.testing.assert_array_equal(y[0], ids[1:81])
    np.testing.assert_array_equal(x[2, :10], ids[160:170])
    np.testing.assert_array_equal(y[2, :9], ids[161:170])
    assert (x[2, 10:] == sh.PAD_ID).all() and (y[2, 9:] == sh.PAD_ID).all()
    assert y[3, 0] == sh.encode("b")[0] and (y[3, 1:] == sh.PAD_ID).all()
    assert int((y != sh.PAD_ID).sum()) == 169 + 1  # every character after the first of a snippet


def test_shakespeare_leaf_json(isolated):
    train = {"HAMLET": leaf_samples(_TEXT[:120]), "OPHELIA": leaf_samples(_TEXT[10:100])}
    test = {
        "HAMLET": leaf_samples(_TEXT[50:135]),
        "OPHELIA": leaf_samples(_TEXT[:82]),
        "YORICK": leaf_samples(_TEXT[:81]),
    }
    write_leaf(isolated / "leaf" / "data", train, "train", parts=2)
    write_leaf(isolated / "leaf" / "data", test, "test")
    d = load_dataset("shakespeare", data_dir=isolated / "leaf", download=False)
    assert not d.sequence_targets and d.num_classes == 82
    assert (
        d.x_train.shape == (40 + 10, 80)
        and d.y_train.shape == (50,)
        and d.x_train.dtype == torch.int64
    )
    assert d.groups_train.dtype == np.int64 and d.groups_train.tolist() == [0] * 40 + [1] * 10
    assert d.groups_test.tolist() == [0] * 5 + [1] * 2 + [2]  # roles numbered over train and test
    np.testing.assert_array_equal(d.x_train[3].numpy(), sh.encode(_TEXT[3:83]))
    assert d.y_train[3].item() == sh.encode(_TEXT[83])[0]


def test_shakespeare_leaf_rejects_wrong_lengths(isolated):
    write_leaf(isolated / "leaf", {"A": (["short"], ["x"])}, "train")
    write_leaf(isolated / "leaf", {"A": leaf_samples(_TEXT[:90])}, "test")
    with pytest.raises(MosaicValueError, match="LEAF user 'A'"):
        load_dataset("shakespeare", data_dir=isolated / "leaf", download=False)


def _write_tff(folder):
    folder.mkdir(parents=True)
    write_tff_h5(
        folder / "shakespeare_train.h5",
        {"PLAY_B": [_TEXT[:100], ""], "PLAY_A": [_TEXT[:81], "ab", "x"]},
    )
    write_tff_h5(
        folder / "shakespeare_test.h5",
        {"PLAY_A": [_TEXT[5:20]], "PLAY_B": [_TEXT[:30]], "PLAY_C": ["hi"]},
    )


def test_shakespeare_tff_hdf5(isolated):
    _write_tff(isolated / "sh" / "tff_leaf")
    d = load_dataset("shakespeare", data_dir=isolated / "sh", download=False)
    assert d.sequence_targets and d.num_classes == 82
    # PLAY_A (group 0): 81 chars -> 1 window, "ab" -> 1, "x" -> none; PLAY_B: 100 chars -> 2, "" -> none
    assert d.x_train.shape == (4, 80) and d.y_train.shape == (4, 80)
    assert d.groups_train.tolist() == [0, 0, 1, 1]
    assert d.groups_test.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(d.x_train[0].numpy(), sh.encode(_TEXT[:80]))
    np.testing.assert_array_equal(d.y_train[0].numpy(), sh.encode(_TEXT[1:81]))
    np.testing.assert_array_equal(d.y_train[3, :19].numpy(), sh.encode(_TEXT[81:100]))
    assert (d.y_train[3, 19:] == sh.PAD_ID).all()


def test_shakespeare_cap_per_role_is_seeded(isolated):
    folder = isolated / "sh"
    folder.mkdir()
    long = "".join(_TEXT for _ in range(20))
    write_tff_h5(folder / "shakespeare_train.h5", {"A": [long], "B": [_TEXT]})
    write_tff_h5(folder / "shakespeare_test.h5", {"A": [long], "B": [_TEXT]})
    full = load_dataset("shakespeare", data_dir=folder, download=False)
    a = load_dataset(
        "shakespeare", data_dir=folder, download=False, max_samples_per_group=3, seed=1
    )
    b = load_dataset(
        "shakespeare", data_dir=folder, download=False, max_samples_per_group=3, seed=2
    )
    assert np.bincount(full.groups_train).tolist() == [43, 3]
    assert np.bincount(a.groups_train).tolist() == [3, 3] and np.bincount(
        a.groups_test
    ).tolist() == [3, 3]
    assert not torch.equal(a.x_train, b.x_train)
    rows = {tuple(r) for r in full.x_train.tolist()}
    assert all(tuple(r) in rows for r in a.x_train.tolist())  # a subset of the full windows


def test_shakespeare_corrupt_hdf5(isolated):
    folder = isolated / "sh"
    folder.mkdir()
    (folder / "shakespeare_train.h5").write_bytes(b"not hdf5")
    (folder / "shakespeare_test.h5").write_bytes(b"not hdf5")
    with pytest.raises(MosaicValueError, match="not a TFF Shakespeare HDF5 file"):
        load_dataset("shakespeare", data_dir=folder, download=False)
