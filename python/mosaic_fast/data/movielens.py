"""MovieLens ratings (GroupLens): ``ml-latest-small`` (ratings.csv) or ``ml-100k`` (u.data).

Each user's ratings are shuffled with the seed and split 70/30 into train/test (rounded half
up, at least one train rating per user), as in the Epidemic/Mosaic Learning experiments.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import MosaicValueError
from .containers import RatingsData
from .download import DownloadError, check_sha256, download, extract
from .locations import first_existing

NAME = "movielens"
TRAIN_FRACTION_TENTHS = 7  # 70/30, in integer tenths so the rounding is exact
LATEST_SMALL_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
# GroupLens publishes no checksum of the zip that we hold, so its content is checked instead:
# the sha256 of ratings.csv in the September 2018 release (shared/data/ml-latest-small/SOURCE.md).
LATEST_SMALL_RATINGS_SHA256 = "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"
LAYOUT = "ml-latest-small/ratings.csv or ml-100k/u.data"
_SUBDIRS = (
    "",
    "ml-latest-small",
    "ml-100k",
    "movielens",
    "movielens/ml-latest-small",
    "movielens/ml-100k",
)


def _ratings_file(folder: Path) -> Path | None:
    for name in ("ratings.csv", "u.data"):
        if (folder / name).is_file():
            return folder / name
    return None


def find(root: Path) -> Path | None:
    """The folder at or under ``root`` holding ratings.csv or u.data, or None."""
    return first_existing(root, _SUBDIRS, lambda f: _ratings_file(f) is not None)


def download_url() -> str:
    """The archive :func:`fetch_into` downloads."""
    return LATEST_SMALL_URL


def fetch_into(dest: Path) -> Path:
    """Download ml-latest-small into ``dest`` with torchvision, check ratings.csv's sha256.

    Returns the extracted folder; on a mismatch the folder is removed (a later search must not
    find it) and DownloadError raised.
    """
    archive = download(LATEST_SMALL_URL, dest, "ml-latest-small.zip")
    try:
        extract(archive, dest)
    finally:
        archive.unlink(missing_ok=True)
    folder = dest / "ml-latest-small"
    try:
        check_sha256(folder / "ratings.csv", LATEST_SMALL_RATINGS_SHA256)
    except DownloadError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise DownloadError(f"{LATEST_SMALL_URL}: unexpected content ({exc})") from None
    return folder


@functools.lru_cache(maxsize=2)
def read_ratings(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (user id int64, item id int64, rating float32) columns of ratings.csv or u.data."""
    try:
        if path.name == "u.data":  # tab separated, no header: user item rating timestamp
            df = pd.read_csv(path, sep="\t", header=None, usecols=[0, 1, 2], names=["u", "i", "r"])
        else:  # header userId,movieId,rating,timestamp; CRLF line ends are fine for pandas
            df = pd.read_csv(path, usecols=["userId", "movieId", "rating"])
            df.columns = ["u", "i", "r"]
        users = df["u"].to_numpy(dtype=np.int64)
        items = df["i"].to_numpy(dtype=np.int64)
        ratings = df["r"].to_numpy(dtype=np.float32)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise MosaicValueError(f"{str(path)!r} is not a MovieLens ratings file ({exc})") from None
    if len(ratings) == 0:
        raise MosaicValueError(f"{str(path)!r} holds no ratings")
    if not np.isfinite(ratings).all():
        raise MosaicValueError(f"{str(path)!r} holds non-finite ratings")
    return users, items, ratings


def split_per_user(users: np.ndarray, seed: int) -> np.ndarray:
    """Boolean train mask (M,): each user's ratings shuffled with ``seed``, round(70%) to train (>= 1).

    ``users`` is int64 (M,) with ids in ``0..n_users-1``.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    order = np.lexsort((rng.random(len(users)), users))  # by user, random within each user
    counts = np.bincount(users)
    starts = np.cumsum(counts) - counts
    sorted_users = users[order]
    rank = np.arange(len(users)) - starts[sorted_users]
    n_train = np.maximum(1, (TRAIN_FRACTION_TENTHS * counts + 5) // 10)
    mask = np.zeros(len(users), dtype=bool)
    mask[order[rank < n_train[sorted_users]]] = True
    return mask


def load(folder: Path, *, seed: int = 0, max_samples_per_group: int | None = None) -> RatingsData:
    """Parse and split the ratings in ``folder`` (``max_samples_per_group`` is ignored)."""
    path = _ratings_file(folder)
    if path is None:
        raise MosaicValueError(f"{str(folder)!r} holds neither ratings.csv nor u.data")
    raw_users, raw_items, ratings = read_ratings(path)
    _, users = np.unique(raw_users, return_inverse=True)
    item_ids, items = np.unique(raw_items, return_inverse=True)
    users, items = users.astype(np.int64), items.astype(np.int64)
    train = split_per_user(users, seed)
    test = ~train

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    return RatingsData(
        name=NAME,
        n_users=int(users.max()) + 1,
        n_items=len(item_ids),
        train_users=t(users[train]),
        train_items=t(items[train]),
        train_ratings=t(ratings[train]),
        test_users=t(users[test]),
        test_items=t(items[test]),
        test_ratings=t(ratings[test]),
        rating_mean=float(ratings[train].mean(dtype=np.float64)),
    )
