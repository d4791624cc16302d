"""One boundary for every input: numpy arrays, CPU tensors and device (CUDA) tensors get the same
checks, made once per call by the extension, and so the same one-line messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import mosaic_fast as mf
from mosaic_fast import MosaicError, MosaicTypeError, MosaicValueError
from mosaic_fast.kernel.reference import aggregate_reference
from mosaic_fast.kernel.torch_path import aggregate_torch

N, D, K = 6, 40, 4
GRAPHS = mf.sample_graphs(N, K, 2, seed=0)
FRAGMENTS = mf.FragmentMap.contiguous(D, K)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def misaligned(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 view at an odd byte offset: legal numpy (and torch), not whole floats."""
    size = int(np.prod(shape))
    raw = bytearray(4 * size + 1)
    return np.frombuffer(raw, np.float32, count=size, offset=1).reshape(shape)


def zeros(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    return np.zeros(shape, dtype)


# Each case builds (params, fragments, out) from a converter that turns numpy arrays into the input
# kind under test, and names the error class and a fragment of its message.
Convert = Callable[[np.ndarray], Any]
CASES: dict[str, tuple[Callable[[Convert], tuple[Any, Any, Any]], type[MosaicError], str]] = {
    "dtype": (
        lambda c: (c(zeros((N, D), np.float64)), FRAGMENTS, None),
        MosaicTypeError,
        "params must have dtype float32, got ",
    ),
    "ndim": (
        lambda c: (c(zeros((N * D,))), FRAGMENTS, None),
        MosaicValueError,
        "params must have shape (n_nodes, n_params), got shape (240,)",
    ),
    "strided": (
        lambda c: (c(zeros((D, N))).T, FRAGMENTS, None),
        MosaicTypeError,
        "params must be C-contiguous; got a strided view of shape (6, 40)",
    ),
    "misaligned": (
        lambda c: (c(misaligned((N, D))), FRAGMENTS, None),
        MosaicTypeError,
        "params is not aligned to 4 bytes",
    ),
    "rows": (
        lambda c: (c(zeros((7, D))), FRAGMENTS, None),
        MosaicValueError,
        "params has 7 rows but the graphs are for n_nodes=6",
    ),
    "columns": (
        lambda c: (c(zeros((N, 41))), FRAGMENTS, None),
        MosaicValueError,
        "params has 41 columns but the fragment map is for n_params=40",
    ),
    "fragments": (
        lambda c: (c(zeros((N, D))), mf.FragmentMap.contiguous(D, 3), None),
        MosaicValueError,
        "the fragment map has K=3 fragments but the graphs have K=4",
    ),
    "out dtype": (
        lambda c: (c(zeros((N, D))), FRAGMENTS, c(zeros((N, D), np.float64))),
        MosaicTypeError,
        "out must have dtype float32, got ",
    ),
    "out misaligned": (
        lambda c: (c(zeros((N, D))), FRAGMENTS, c(misaligned((N, D)))),
        MosaicTypeError,
        "out is not aligned to 4 bytes",
    ),
    "out shape": (
        lambda c: (c(zeros((N, D))), FRAGMENTS, c(zeros((N, D - 1)))),
        MosaicValueError,
        "out has shape (6, 39) but params has shape (6, 40)",
    ),
    "out is params": (
        lambda c: (lambda x: (x, FRAGMENTS, x))(c(zeros((N, D)))),
        MosaicValueError,
        "out aliases params; pass a separate buffer",
    ),
    "out overlaps params": (
        lambda c: (lambda big: (big[:N], FRAGMENTS, big[3 : 3 + N]))(c(zeros((2 * N, D)))),
        MosaicValueError,
        "out aliases params; pass a separate buffer",
    ),
}


def _message(call: Callable[[], Any], error: type[MosaicError]) -> str:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message
    return message


def _to_tensor(device: str) -> Convert:
    return lambda a: torch.from_numpy(a).to(device) if device != "cpu" else torch.from_numpy(a)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_every_input_kind_gets_the_same_message(case: str, device: str) -> None:
    build, error, needle = CASES[case]
    if case.endswith("misaligned") and device != "cpu":
        pytest.skip("a device copy is aligned again")
    x, fragments, out = build(np.asarray)
    from_numpy = _message(lambda: mf.aggregate(x, GRAPHS, fragments, out=out), error)
    assert needle in from_numpy
    t, fragments, out_t = build(_to_tensor(device))
    from_tensor = _message(lambda: mf.aggregate(t, GRAPHS, fragments, out=out_t), error)
    # The torch path (what device tensors use) runs the very same checks, on CPU tensors too.
    from_torch_path = _message(lambda: aggregate_torch(t, GRAPHS, fragments, out=out_t), error)
    assert from_tensor == from_torch_path
    # Only a dtype is spelled as its library spells it.
    assert from_tensor == from_numpy.replace("float64", "torch.float64")


@pytest.mark.parametrize("device", DEVICES)
def test_out_of_another_kind_or_device_is_refused(device: str) -> None:
    x = np.zeros((N, D), np.float32)
    t = torch.zeros(N, D, device=device)
    with pytest.raises(MosaicTypeError, match="out must be a numpy array like params, got a torch"):
        mf.aggregate(x, GRAPHS, FRAGMENTS, out=t)
    with pytest.raises(
        MosaicTypeError, match="out must be a torch tensor like params, got a numpy"
    ):
        mf.aggregate(t, GRAPHS, FRAGMENTS, out=x)
    with pytest.raises(MosaicTypeError, match="out must be a numpy array or torch tensor"):
        mf.aggregate(x, GRAPHS, FRAGMENTS, out=x.tolist())
    if device != "cpu":
        with pytest.raises(MosaicValueError, match=f"out is on cpu but params is on {device}"):
            mf.aggregate(t, GRAPHS, FRAGMENTS, out=torch.zeros(N, D))


def test_tensors_numpy_cannot_hold_are_refused_cleanly() -> None:
    with pytest.raises(MosaicTypeError, match="got torch.bfloat16"):
        mf.aggregate(torch.zeros(N, D, dtype=torch.bfloat16), GRAPHS, FRAGMENTS)
    with pytest.raises(MosaicTypeError, match="dense tensor, got layout torch.sparse_coo"):
        mf.aggregate(torch.zeros(N, D).to_sparse(), GRAPHS, FRAGMENTS)
    with pytest.raises(MosaicTypeError, match="got >f4"):
        mf.aggregate(np.zeros((N, D), ">f4"), GRAPHS, FRAGMENTS)


def test_the_extension_refuses_device_tensors_itself() -> None:
    # `_core.aggregate` reads host memory; called directly with a device tensor it says so.
    from mosaic_fast import _core

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    t = torch.zeros(N, D, device="cuda")
    with pytest.raises(MosaicValueError, match="params is on cuda:0, but the Rust kernel"):
        _core.aggregate(t, GRAPHS, FRAGMENTS)


@pytest.mark.parametrize("device", DEVICES)
def test_valid_tensors_are_averaged_on_their_device(device: str) -> None:
    x = np.random.default_rng(0).random((N, D), dtype=np.float32)
    want = aggregate_reference(x, GRAPHS, FRAGMENTS)
    t = torch.from_numpy(x).to(device)
    got = mf.aggregate(t, GRAPHS, FRAGMENTS)
    assert got.device == t.device and got.dtype == torch.float32
    np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-5, atol=1e-6)
    out = torch.empty_like(t)
    assert mf.aggregate(t, GRAPHS, FRAGMENTS, out=out) is out
    np.testing.assert_allclose(out.cpu().numpy(), want, rtol=1e-5, atol=1e-6)


def test_reference_and_kernel_share_the_checks() -> None:
    with pytest.raises(
        MosaicValueError, match="params has 7 rows but the graphs are for n_nodes=6"
    ):
        aggregate_reference(np.zeros((7, D), np.float32), GRAPHS, FRAGMENTS)


def test_edge_lists_are_checked_once_with_clear_messages() -> None:
    with pytest.raises(MosaicTypeError, match="edges must be integers, got dtype float64"):
        mf.sample_graphs(4, 1, 0, mode="edges", edges=[[0.0, 1.0]])
    with pytest.raises(
        MosaicValueError, match=r"edges must have shape \(n_edges, 2\), got shape \(3,\)"
    ):
        mf.sample_graphs(4, 1, 0, mode="edges", edges=[0, 1, 2])
    with pytest.raises(MosaicValueError, match="edges must be an integer array"):
        mf.sample_graphs(4, 1, 0, mode="edges", edges=[[0, 1], [2]])
    # an empty list is no edges at all: every node keeps its own value
    g = mf.sample_graphs(4, 1, 0, mode="edges", edges=[])
    assert g.in_degrees(0).sum() == 0
    # any integer dtype is read as node ids
    g = mf.sample_graphs(4, 1, 0, mode="edges", edges=np.array([[0, 1]], np.uint8))
    assert g.in_neighbors(0)[1].tolist() == [0]
