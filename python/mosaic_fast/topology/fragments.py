"""A run's fragment map: the built-in fragmenters, or the user's own assignment of one fragment
id per coordinate (an array, a :class:`FragmentMap`, or a file)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MosaicValueError
from ..kernel import FragmentMap
from ..user_code import FILE_PREFIXES, File, decode
from .inputs import existing, load_npy, one_line, read_text_rows, require_int

ASSIGNMENT_PREFIX = FILE_PREFIXES["assignment"]
BUILTIN_FRAGMENTERS = ("contiguous", "random", "blocks")


def read_assignment(path: str | os.PathLike[str]) -> np.ndarray:
    """The fragment ids of an assignment file (``.npy`` or text), as read: unchecked against a model.
    A missing or unreadable file, or a text token that is not an integer, is one MosaicValueError."""
    what = "assignment file"
    path = existing(path, what)
    if path.suffix.lower() == ".npy":
        return load_npy(path, what)
    rows, _ = read_text_rows(path, what)
    return np.array([v for row in rows for v in row], dtype=np.int64)


def assignment_map(
    assignment: Any, n_fragments: int, n_params: int, *, origin: str = "fragment assignment"
) -> FragmentMap:
    """A :class:`FragmentMap` from one fragment id per coordinate, checked with one-line messages:
    ``origin`` names the assignment (a file, or the array handed to the API)."""
    n_fragments = require_int("K", n_fragments, 1)
    n_params = require_int("n_params", n_params, 1)
    if n_fragments > n_params:
        raise MosaicValueError(
            f"K={n_fragments} exceeds n_params={n_params}: every fragment needs a coordinate"
        )
    try:
        ids = np.asarray(assignment)
    except (ValueError, TypeError) as exc:
        raise MosaicValueError(
            f"{origin} is not an array of fragment ids: {one_line(exc)}"
        ) from None
    if ids.dtype.kind not in "iu":
        raise MosaicValueError(f"{origin} holds {ids.dtype} values; fragment ids must be integers")
    if ids.ndim != 1:
        raise MosaicValueError(
            f"{origin} has shape {ids.shape}; expected one fragment id per coordinate, "
            f"shape ({n_params},)"
        )
    if len(ids) != n_params:
        raise MosaicValueError(
            f"{origin} has {len(ids)} fragment ids, but the model has n_params={n_params}"
        )
    outside = np.flatnonzero((ids < 0) | (ids >= n_fragments))
    if len(outside):
        c = int(outside[0])
        raise MosaicValueError(
            f"{origin}: coordinate {c} has fragment id {ids[c]}, outside 0..{n_fragments - 1} "
            f"(K={n_fragments})"
        )
    sizes = np.bincount(ids.astype(np.int64), minlength=n_fragments)
    empty = np.flatnonzero(sizes == 0)
    if len(empty):
        raise MosaicValueError(
            f"{origin}: fragment {int(empty[0])} of K={n_fragments} has no coordinate"
        )
    return FragmentMap.from_assignment(ids, n_fragments)


class SmallLayerWarning(UserWarning):
    """A layer has fewer coordinates than there are fragments (``fragmenter='random'``)."""


def _warn_small_layers(layer_sizes: Sequence[int], n_fragments: int) -> None:
    """Say once what happens to layers smaller than K: each of their coordinates still goes to
    one fragment, so they travel in fewer than K fragments (the fragments stay balanced overall,
    as the smaller layers' leftovers rotate over the fragments)."""
    small = [(j, size) for j, size in enumerate(layer_sizes) if size < n_fragments]
    if small:
        j, size = min(small, key=lambda js: js[1])
        warnings.warn(
            f"fragmenter='random': {len(small)} layer(s) have fewer coordinates than K={n_fragments} "
            f"(the smallest, layer {j}, has {size}); each of their coordinates goes to one "
            f"fragment, so such a layer travels in only {size} of the {n_fragments} fragments",
            SmallLayerWarning,
            stacklevel=3,
        )


def fragments_for(
    fragmenter: str,
    n_fragments: int,
    layer_sizes: Sequence[int],
    n_params: int,
    seed: int,
    block_size: int,
    user: Any = None,
) -> FragmentMap:
    """The fragment map of a run: ``fragmenter`` is ``contiguous``, ``random`` (balanced within each
    of ``layer_sizes``), ``blocks`` (of ``block_size`` coordinates) or ``"assignment:FILE"``.

    ``user``, when given, is the object the setting stands for (``fragmenter`` is then only its
    label): an array-like of one fragment id per coordinate, a path to an assignment file, or a
    :class:`FragmentMap` (checked against ``n_params`` and ``K``).
    """
    if user is not None:
        if isinstance(user, FragmentMap):
            if (user.n_params, user.n_fragments) != (n_params, n_fragments):
                raise MosaicValueError(
                    f"the fragment map has n_params={user.n_params}, K={user.n_fragments}, but the "
                    f"run has n_params={n_params}, K={n_fragments}"
                )
            return user
        if isinstance(user, (str, os.PathLike)):
            return assignment_map(
                read_assignment(user), n_fragments, n_params, origin=f"assignment file {user}"
            )
        return assignment_map(user, n_fragments, n_params)
    if fragmenter == "contiguous":
        return FragmentMap.contiguous(n_params, n_fragments)
    if fragmenter == "random":
        _warn_small_layers(layer_sizes, n_fragments)
        return FragmentMap.random(n_params, n_fragments, seed=seed, layer_sizes=list(layer_sizes))
    if fragmenter == "blocks":
        return FragmentMap.blocks(n_params, n_fragments, block_size=block_size, seed=seed)
    code = decode("fragmenter", fragmenter) if isinstance(fragmenter, str) else None
    if isinstance(code, File) and code.kind == "assignment":
        return assignment_map(
            read_assignment(code.path), n_fragments, n_params, origin=f"assignment file {code.path}"
        )
    raise MosaicValueError(
        f"unknown fragmenter {fragmenter!r}; choose one of {', '.join(BUILTIN_FRAGMENTERS)}, "
        "or assignment:FILE"
    )


def fragment_coordinates(fragments: FragmentMap, device: Any) -> list[Any]:
    """Every fragment's coordinates (int64 index tensors on ``device``), ascending."""
    import torch

    assignment = torch.as_tensor(np.asarray(fragments.assignment(), dtype=np.int64))
    return [
        torch.nonzero(assignment == k).reshape(-1).to(device) for k in range(fragments.n_fragments)
    ]
