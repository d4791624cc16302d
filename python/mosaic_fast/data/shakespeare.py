"""Shakespeare next-character prediction (LEAF; Caldas et al. 2019), sequence length 80.

Two published layouts are read:

* LEAF's JSON (``train/*.json``, ``test/*.json``): each sample is an 80-character string and
  the single next character, so ``x`` is int64 ``(N, 80)`` and ``y`` int64 ``(N,)``.
* TensorFlow Federated's HDF5 (``shakespeare_{train,test}.h5``, ``/examples/<client>/snippets``):
  every snippet ``c`` of ``L >= 2`` characters becomes the windows ``x = c[i:i+80]``,
  ``y = c[i+1:i+81]`` for ``i = 0, 80, 160, ...`` (non-overlapping inputs; every character
  after the first is a target exactly once), the last window padded with PAD_ID. Here ``y`` is
  int64 ``(N, 80)`` and ``sequence_targets`` is True: losses and accuracies must ignore targets
  equal to PAD_ID (``torch.nn.CrossEntropyLoss(ignore_index=PAD_ID)``).

Vocabulary: LEAF's 80 characters ``ALL_LETTERS`` keep LEAF's ids 0..79 (``ALL_LETTERS.find(c)``),
then PAD_ID = 80 and UNK_ID = 81 (any other character), so VOCAB_SIZE = 82 = ``num_classes``.
Groups are roles (one character in one play, LEAF's "users", TFF's clients), numbered in
sorted order of their names over train and test together.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import MosaicValueError
from .containers import ClassificationData
from .download import DownloadError, check_sha256, download, extract
from .locations import first_existing

NAME = "shakespeare"
SEQ_LEN = 80
ALL_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
PAD_ID = len(ALL_LETTERS)
UNK_ID = PAD_ID + 1
VOCAB_SIZE = UNK_ID + 1

TFF_FILES = ("shakespeare_train.h5", "shakespeare_test.h5")
# The archive behind tff.simulation.datasets.shakespeare.load_data, and the two files it holds.
# TFF publishes sha256s, not md5s, so torchvision downloads unchecked and they are checked here
# (archive: TFF's source; files: shared/data/shakespeare/SOURCE.md).
TFF_URL = "https://storage.googleapis.com/tff-datasets-public/shakespeare.tar.bz2"
TFF_ARCHIVE_SHA256 = "0285be9906cb5f268092eee4edeeacfc2af4574f2941f7cc2f08a321d7f5c707"
TFF_SHA256 = {
    "shakespeare_train.h5": "67100f52adfb6d5ece73c1a942b6863731a477bf09421a3c79c9937612895344",
    "shakespeare_test.h5": "55d3a635bffe5c4f71610a8d0cf86c1b369bfd7793e0635b5a83cde1f195689e",
}
LAYOUT = (
    "LEAF's train/*.json and test/*.json, or TFF's shakespeare_train.h5 and shakespeare_test.h5"
)

_LUT = np.full(128, UNK_ID, dtype=np.int64)
_LUT[[ord(c) for c in ALL_LETTERS]] = np.arange(len(ALL_LETTERS))


def encode(text: str) -> np.ndarray:
    """Character ids (int64, shape ``(len(text),)``) of ``text`` in the vocabulary above."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
    ids = _LUT[np.minimum(codes, 127)]
    ids[codes > 127] = UNK_ID
    return ids


def _is_leaf(folder: Path) -> bool:
    return all(
        (folder / s).is_dir() and any((folder / s).glob("*.json")) for s in ("train", "test")
    )


def _is_tff(folder: Path) -> bool:
    return all((folder / f).is_file() for f in TFF_FILES)


def find(root: Path) -> Path | None:
    """The folder at or under ``root`` holding either layout (LEAF JSON preferred), or None."""
    return first_existing(
        root, ("", "data", "shakespeare", "shakespeare/data"), _is_leaf
    ) or first_existing(root, ("", "tff_leaf", "shakespeare", "shakespeare/tff_leaf"), _is_tff)


def download_url() -> str:
    """The archive :func:`fetch_into` downloads."""
    return TFF_URL


def fetch_into(dest: Path) -> Path:
    """Download TFF's archive into ``dest`` with torchvision, check its and both h5 files' sha256."""
    archive = download(TFF_URL, dest, "shakespeare.tar.bz2", sha256=TFF_ARCHIVE_SHA256)
    try:
        extract(archive, dest)
    finally:
        archive.unlink(missing_ok=True)
    try:
        for name, digest in TFF_SHA256.items():
            check_sha256(dest / name, digest)
    except DownloadError as exc:
        for name in TFF_SHA256:  # a later search must not find them
            (dest / name).unlink(missing_ok=True)
        raise DownloadError(f"{TFF_URL}: unexpected content ({exc})") from None
    return dest


def windows(ids: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut concatenated snippets into padded next-character windows.

    Args:
        ids: int64 ``(sum(lengths),)`` character ids of all snippets, back to back.
        lengths: int64 ``(S,)`` snippet lengths; snippets shorter than 2 give no window.

    Returns:
        ``x``, ``y``: int64 ``(W, 80)``; ``snippet``: int64 ``(W,)`` source snippet of each window.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n_win = np.where(lengths >= 2, (lengths - 2) // SEQ_LEN + 1, 0)
    padded = np.where(n_win > 0, n_win * SEQ_LEN + 1, 0)
    src_start = np.cumsum(lengths) - lengths
    dst_start = np.cumsum(padded) - padded
    buf = np.full(int(padded.sum()), PAD_ID, dtype=np.int64)
    owner = np.repeat(np.arange(len(lengths)), lengths)
    keep = n_win[owner] > 0
    pos = np.arange(len(ids)) - src_start[owner]
    buf[dst_start[owner[keep]] + pos[keep]] = ids[keep]
    snippet = np.repeat(np.arange(len(lengths)), n_win)
    k = np.arange(len(snippet)) - np.repeat(np.cumsum(n_win) - n_win, n_win)
    base = dst_start[snippet] + k * SEQ_LEN
    offsets = np.arange(SEQ_LEN)
    return buf[base[:, None] + offsets], buf[base[:, None] + offsets + 1], snippet


def cap_per_group(groups: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted int64 indices keeping at most ``cap`` random samples of each group (all if None)."""
    if cap is None:
        return np.arange(len(groups), dtype=np.int64)
    order = np.lexsort((rng.random(len(groups)), groups))
    counts = np.bincount(groups) if len(groups) else np.zeros(0, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(groups)) - starts[groups[order]]
    return np.sort(order[rank < cap])


def _text(snippet: bytes | str) -> str:
    # fixed-length byte strings in TFF's files; variable-length str in some re-exports
    return snippet.decode("utf-8", "replace") if isinstance(snippet, bytes) else str(snippet)


def _read_tff(path: Path) -> dict[str, list[str]]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            examples = f["examples"]
            return {
                client: [_text(s) for s in examples[client]["snippets"][()].tolist()]
                for client in examples
            }
    except (OSError, KeyError, TypeError) as exc:
        raise MosaicValueError(
            f"{str(path)!r} is not a TFF Shakespeare HDF5 file ({exc})"
        ) from None


def _tff_split(
    clients: dict[str, list[str]], index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    snippets = [s for c in clients for s in clients[c]]
    snippet_group = np.repeat(
        np.array([index[c] for c in clients], dtype=np.int64), [len(clients[c]) for c in clients]
    )
    lengths = np.array([len(s) for s in snippets], dtype=np.int64)
    x, y, snippet = windows(encode("".join(snippets)), lengths)
    return x, y, snippet_group[snippet]


def _read_leaf(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    users: dict[str, tuple[list[str], list[str]]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            with open(path, encoding="utf-8") as fh:
                blob = json.load(fh)
            for user in blob["users"]:
                data = blob["user_data"][user]
                xs, ys = users.setdefault(user, ([], []))
                xs.extend(data["x"])
                ys.extend(data["y"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MosaicValueError(
                f"{str(path)!r} is not a LEAF Shakespeare JSON file ({exc})"
            ) from None
    return users


def _leaf_split(
    users: dict[str, tuple[list[str], list[str]]], index: dict[str, int], folder: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xs = [s for u in users for s in users[u][0]]
    ys = [s for u in users for s in users[u][1]]
    for u, (ux, uy) in users.items():
        if len(ux) != len(uy) or any(len(s) != SEQ_LEN for s in ux) or any(len(s) != 1 for s in uy):
            raise MosaicValueError(
                f"LEAF user {u!r} in {str(folder)!r} needs {SEQ_LEN}-character x strings and 1-character y"
            )
    x = encode("".join(xs)).reshape(-1, SEQ_LEN)
    y = encode("".join(ys))
    groups = np.repeat(
        np.array([index[u] for u in users], dtype=np.int64), [len(users[u][0]) for u in users]
    )
    return x, y, groups


def load(
    folder: Path, *, seed: int = 0, max_samples_per_group: int | None = None
) -> ClassificationData:
    """Parse either layout in ``folder``; ``max_samples_per_group`` caps train and test windows per role.

    Returns ClassificationData with x int64 (N, 80), y int64 (N,) [LEAF] or (N, 80) [TFF],
    groups int64 (N,), num_classes = VOCAB_SIZE.
    """
    if _is_leaf(folder):
        train, test = _read_leaf(folder / "train"), _read_leaf(folder / "test")
        index = {u: i for i, u in enumerate(sorted(set(train) | set(test)))}
        parts = [
            _leaf_split(train, index, folder / "train"),
            _leaf_split(test, index, folder / "test"),
        ]
        sequence = False
    elif _is_tff(folder):
        train_clients, test_clients = (_read_tff(folder / f) for f in TFF_FILES)
        index = {c: i for i, c in enumerate(sorted(set(train_clients) | set(test_clients)))}
        parts = [_tff_split(train_clients, index), _tff_split(test_clients, index)]
        sequence = True
    else:
        raise MosaicValueError(f"{str(folder)!r} holds neither {LAYOUT}")
    if not len(parts[0][0]):
        raise MosaicValueError(f"{str(folder)!r} yields no training samples")
    rngs = np.random.Generator(np.random.PCG64(seed)).spawn(2)
    out = []
    for (x, y, g), rng in zip(parts, rngs, strict=True):
        keep = cap_per_group(g, max_samples_per_group, rng)
        out.append((torch.from_numpy(x[keep]), torch.from_numpy(y[keep]), g[keep]))
    (xtr, ytr, gtr), (xte, yte, gte) = out
    return ClassificationData(
        NAME, xtr, ytr, xte, yte, VOCAB_SIZE, gtr, gte, sequence_targets=sequence
    )
