"""MovieLens ratings (GroupLens): ``ml-latest-small`` (ratings.csv) or ``ml-100k`` (u.data).

Each user's ratings are shuffled with the seed and split 70/30 into train/test (rounded half
up, at least one train rating per user), as in the Epidemic/Mosaic Learning experiments.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import MosaicValueError
from .containers import RatingsData
from .download import DownloadError, Remote, extract_archive, fetch, verify_file
from .locations import first_existing

NAME = "movielens"
TRAIN_FRACTION_TENTHS = 7  # 70/30, in integer tenths so the rounding is exact
LATEST_SMALL = Remote(
    "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip", "ml-latest-small.zip"
)
# sha256 of ratings.csv in the September 2018 release (shared/data/ml-latest-small/SOURCE.md).
LATEST_SMALL_RATINGS_SHA256 = "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646"
ML_100K = Remote(
    "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    "ml-100k.zip",
    md5="0e33842e24a9c977be4e0107933c0723",  # GroupLens' ml-100k.zip.md5
)
URLS = (LATEST_SMALL.url,)
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


def fetch_into(dest: Path) -> Path:
    """Download ml-latest-small into ``dest``, check ratings.csv's sha256, return its folder."""
    archive = fetch(LATEST_SMALL, dest)
    extract_archive(archive, dest)
    archive.unlink()
    folder = dest / "ml-latest-small"
    try:
        verify_file(folder / "ratings.csv", LATEST_SMALL_RATINGS_SHA256)
    except (DownloadError, FileNotFoundError) as exc:
        raise DownloadError(f"{LATEST_SMALL.url}: unexpected content ({exc})") from None
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
