"""Writers of small dataset files in the exact published formats, tiny synthetic datasets, and an
isolation fixture."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mosaic_fast.data import ClassificationData, RatingsData

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No $MOSAIC_DATA, no system folders, an empty cache under tmp_path, a cold parse cache."""
    from mosaic_fast.data import clear_cache, locations

    monkeypatch.delenv("MOSAIC_DATA", raising=False)
    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(locations, "SYSTEM_DIRS", {})
    clear_cache()
    return tmp_path


# ----------------------------------------------------------------------------- IDX (MNIST family)
def write_idx_gz(path: Path, array: np.ndarray, *, magic: int | None = None) -> Path:
    """An IDX file of unsigned bytes, gzip-compressed; ``magic`` overrides the magic number."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = (0x08 << 8) | array.ndim if magic is None else magic
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))
    return path


def write_fashion(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0):
    """The four gz IDX files; returns (train_images, train_labels, test_images, test_labels)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = (
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train, dtype=np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test, dtype=np.uint8),
    )
    names = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    for name, arr in zip(names, arrays, strict=True):
        write_idx_gz(folder / f"{name}.gz", arr)
    return arrays


# ----------------------------------------------------------------------------- CIFAR (Python 2 pickles)
class _Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle (protocol 2) wrote: str/bytes as BINSTRING, numpy in numpy.core."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_binstring(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_binstring
    dispatch[str] = _save_binstring

    def save_global(self, obj, name=None):
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__name__}\n".encode("ascii"))
        self.memoize(obj)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _cifar_batch(
    rng, n, label_keys: dict[bytes, int], batch_label: bytes
) -> tuple[dict, np.ndarray, dict]:
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = {k: [int(v) for v in rng.integers(0, c, n)] for k, c in label_keys.items()}
    batch = {
        b"batch_label": batch_label,
        **labels,
        b"data": data,
        b"filenames": [f"img_{i:06d}.png".encode() for i in range(n)],
    }
    return batch, data, labels


def write_cifar10(root: Path, n_per_batch: int = 4, seed: int = 0):
    """``root/cifar-10-batches-py`` with 5 train batches, test_batch and batches.meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    out = []
    for i in range(1, 7):
        name, label = (
            (f"data_batch_{i}", f"training batch {i} of 5")
            if i <= 5
            else ("test_batch", "testing batch 1 of 1")
        )
        batch, data, labels = _cifar_batch(rng, n_per_batch, {b"labels": 10}, label.encode())
        (folder / name).write_bytes(py2_pickle(batch))
        out.append((data, labels[b"labels"]))
    meta = {b"num_cases_per_batch": 10000, b"label_names": [b"airplane"] * 10, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))
    return folder, out


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 3, seed: int = 0):
    """``root/cifar-100-python`` with train, test and meta."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        batch, data, labels = _cifar_batch(
            rng, n, {b"fine_labels": 100, b"coarse_labels": 20}, name.encode()
        )
        (folder / name).write_bytes(py2_pickle(batch))
        out.append((data, labels[b"fine_labels"]))
    meta = {b"fine_label_names": [b"apple"] * 100, b"coarse_label_names": [b"fish"] * 20}
    (folder / "meta").write_bytes(py2_pickle(meta))
    return folder, out


def accept_cifar(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make torchvision accept the generated files in ``folder`` (``cifar-10-batches-py`` or
    ``cifar-100-python``): its lists hold the published md5s, so tests patch in these files'."""
    import torchvision.datasets as tvd
    from torchvision.datasets.utils import calculate_md5

    cls = tvd.CIFAR10 if folder.name == tvd.CIFAR10.base_folder else tvd.CIFAR100

    def listed(entries):
        return [[name, calculate_md5(folder / name)] for name, _ in entries]

    monkeypatch.setattr(cls, "train_list", listed(cls.train_list))
    monkeypatch.setattr(cls, "test_list", listed(cls.test_list))
    meta_md5 = calculate_md5(folder / cls.meta["filename"])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": meta_md5})


# ----------------------------------------------------------------------------- MovieLens
def movielens_rows(n_users: int = 5, seed: int = 0) -> list[tuple[int, int, float, int]]:
    """(user, item, rating, timestamp) rows; user u has 3 + 2u ratings, ids are sparse."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(50, size=3 + 2 * u, replace=False)
        for it in items:
            rows.append(
                (
                    10 * u + 7,
                    100 + 3 * int(it),
                    float(rng.integers(1, 11)) / 2,
                    964982703 + len(rows),
                )
            )
    return rows


def write_ml_latest_small(folder: Path, rows) -> Path:
    """ratings.csv exactly as GroupLens ships it: header, CRLF line ends."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userId,movieId,rating,timestamp"] + [f"{u},{i},{r:.1f},{t}" for u, i, r, t in rows]
    (folder / "ratings.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return folder


def write_ml_100k(folder: Path, rows) -> Path:
    """u.data as in ml-100k: tab separated, no header, integer ratings."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{u}\t{i}\t{int(round(r))}\t{t}" for u, i, r, t in rows]
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    return folder


# ----------------------------------------------------------------------------- Shakespeare
def write_leaf(
    folder: Path, users: dict[str, tuple[list[str], list[str]]], split: str, parts: int = 1
) -> None:
    """LEAF JSON files ``folder/split/*.json`` holding ``users`` (x: 80-char strings, y: next char)."""
    (folder / split).mkdir(parents=True, exist_ok=True)
    names = sorted(users)
    for p in range(parts):
        chunk = names[p::parts]
        blob = {
            "users": chunk,
            "num_samples": [len(users[u][0]) for u in chunk],
            "user_data": {u: {"x": users[u][0], "y": users[u][1]} for u in chunk},
        }
        (folder / split / f"all_data_{p}_niid_0_keep_0_{split}_9.json").write_text(json.dumps(blob))


def leaf_samples(text: str) -> tuple[list[str], list[str]]:
    """LEAF's sliding windows over one role's text: x = text[i:i+80], y = text[i+80]."""
    return [text[i : i + 80] for i in range(len(text) - 80)], [
        text[i + 80] for i in range(len(text) - 80)
    ]


def write_tff_h5(path: Path, clients: dict[str, list[str]]) -> Path:
    """TFF layout: ``/examples/<client>/snippets`` as a 1-D fixed-length byte-string dataset."""
    with h5py.File(path, "w") as f:
        examples = f.create_group("examples")
        for client, snippets in clients.items():
            encoded = [s.encode() for s in snippets]
            width = max(1, *(len(s) for s in encoded))
            examples.create_group(client).create_dataset(
                "snippets", data=np.array(encoded, dtype=f"S{width}")
            )
    return path


# Tiny synthetic datasets in the loaders' containers, for engine and task tests.


def synthetic_images(
    seed: int = 0, n_train: int = 240, n_test: int = 60, size: int = 8
) -> ClassificationData:
    """4 classes of 1 x size x size images: a class-dependent mean pattern plus noise (learnable in a few steps)."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(4, 1, size, size, generator=g)

    def draw(n):
        y = torch.randint(0, 4, (n,), generator=g)
        return protos[y] + 0.5 * torch.randn(n, 1, size, size, generator=g), y

    (xt, yt), (xs, ys) = draw(n_train), draw(n_test)
    return ClassificationData("fashion-mnist", xt, yt, xs, ys, 4, None, None)


def synthetic_ratings(seed: int = 0, n_users: int = 24, n_items: int = 30) -> RatingsData:
    """Low-rank ratings in [1, 5]; each user's ratings split 70/30."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    full = np.clip(3.5 + 0.6 * u @ v.T, 1, 5).astype(np.float32)
    tr, te = [], []
    for user in range(n_users):
        items = rng.choice(n_items, 12, replace=False)
        tr += [(user, i) for i in items[:8]]
        te += [(user, i) for i in items[8:]]
    tr, te = np.array(tr), np.array(te)

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a))

    return RatingsData(
        "movielens",
        n_users,
        n_items,
        t(tr[:, 0]),
        t(tr[:, 1]),
        t(full[tr[:, 0], tr[:, 1]]),
        t(te[:, 0]),
        t(te[:, 1]),
        t(full[te[:, 0], te[:, 1]]),
        float(full[tr[:, 0], tr[:, 1]].mean()),
    )
