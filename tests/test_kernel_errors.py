"""Bad input at the kernel boundary: always a MosaicError subclass naming the value, never a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import mosaic_fast as mf
from mosaic_fast import MosaicError, MosaicTypeError, MosaicValueError


def setup(n: int = 6, d: int = 40, k: int = 4):
    x = np.zeros((n, d), np.float32)
    return x, mf.sample_graphs(n, k, 2, seed=0), mf.FragmentMap.contiguous(d, k)


@pytest.mark.parametrize(
    "call,error,needle",
    [
        (lambda: mf.FragmentMap.contiguous(10, 11), MosaicValueError, "K=11 exceeds n_params=10"),
        (lambda: mf.FragmentMap.contiguous(10, 0), MosaicValueError, "K=0"),
        (lambda: mf.FragmentMap.random(10, 2, seed=-1), MosaicValueError, "seed=-1"),
        (
            lambda: mf.FragmentMap.random(10, 2, seed=0, layer_sizes=[4, 4]),
            MosaicValueError,
            "n_params=10",
        ),
        (
            lambda: mf.FragmentMap.blocks(100, 8, block_size=64, seed=0),
            MosaicValueError,
            "block_size=64",
        ),
        (lambda: mf.FragmentMap.contiguous(-5, 1), MosaicValueError, "n_params=-5"),
        (lambda: mf.sample_graphs(1, 1, 1), MosaicValueError, "n_nodes=1"),
        (lambda: mf.sample_graphs(8, 1, 8), MosaicValueError, "degree=8"),
        (lambda: mf.sample_graphs(8, 0, 2), MosaicValueError, "K=0"),
        (lambda: mf.sample_graphs(8, 1, 2, seed=-3), MosaicValueError, "seed=-3"),
        (lambda: mf.sample_graphs(8, 1, 2, round=-1), MosaicValueError, "round=-1"),
        (lambda: mf.sample_graphs(8, 1, 2, mode="gossipy"), MosaicValueError, "gossipy"),
        (lambda: mf.sample_graphs(5, 1, 3, mode="undirected"), MosaicValueError, "even"),
        (
            lambda: mf.sample_graphs(4, 1, 0, mode="edges", edges=[[0, 9]]),
            MosaicValueError,
            "(0, 9)",
        ),
        (
            lambda: mf.sample_graphs(4, 1, 0, mode="edges", edges=[[2, 2]]),
            MosaicValueError,
            "self loop",
        ),
        (
            lambda: mf.sample_graphs(4, 1, 0, mode="edges", edges=[[-1, 2]]),
            MosaicValueError,
            "negative",
        ),
        (
            lambda: mf.sample_graphs(4, 1, 0, mode="edges", edges=[0, 1, 2]),
            MosaicValueError,
            "shape",
        ),
        (lambda: mf.sample_graphs(4, 1, 2, edges=[[0, 1]]), MosaicValueError, "mode='edges'"),
        (lambda: mf.sample_graphs(4.5, 1, 2), MosaicTypeError, "n_nodes=4.5"),
        (lambda: mf.sample_graphs(6, 2, 2).mixing_matrix(2), MosaicValueError, "k=2"),
        (
            lambda: mf.FragmentMap.from_assignment([0, 1, 0], 2),
            MosaicTypeError,
            "assignment must be an integer numpy array of shape (n_params,), got list",
        ),
        (
            lambda: mf.FragmentMap.from_assignment(np.zeros(4), 2),
            MosaicTypeError,
            "assignment must be integers, got dtype float64",
        ),
        (
            lambda: mf.FragmentMap.from_assignment(np.zeros((2, 2), dtype=np.int64), 2),
            MosaicValueError,
            "assignment must have shape (n_params,), got shape (2, 2)",
        ),
    ],
)
def test_bad_arguments(call, error, needle) -> None:
    with pytest.raises(error) as info:
        call()
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_assignment_of_any_integer_dtype_and_layout_is_accepted() -> None:
    ids = np.array([1, 0, 1, 0, 1, 0], dtype=np.int32)[::-1]
    fragments = mf.FragmentMap.from_assignment(ids, 2)
    assert fragments.assignment().tolist() == ids.tolist()


def test_wrong_dtype_and_layout() -> None:
    x, g, fm = setup()
    with pytest.raises(MosaicTypeError, match="float32, got float64"):
        mf.aggregate(x.astype(np.float64), g, fm)
    with pytest.raises(MosaicTypeError, match="C-contiguous"):
        mf.aggregate(np.zeros((40, 6), np.float32).T, g, fm)
    with pytest.raises(MosaicValueError, match=r"shape \(240,\)"):
        mf.aggregate(x.ravel(), g, fm)
    with pytest.raises(MosaicTypeError, match="list"):
        mf.aggregate(x.tolist(), g, fm)
    with pytest.raises(MosaicTypeError, match="dtype float32, got torch.float64"):
        mf.aggregate(torch.zeros(6, 40, dtype=torch.float64), g, fm)
    with pytest.raises(MosaicTypeError, match="contiguous"):
        mf.aggregate(torch.zeros(40, 6).T, g, fm)
    with pytest.raises(MosaicTypeError, match="numpy array like params"):
        mf.aggregate(x, g, fm, out=torch.zeros(6, 40))
    # legal numpy, but not whole floats: a view at an odd byte offset
    odd = np.frombuffer(bytearray(x.nbytes + 1), np.float32, count=x.size, offset=1).reshape(
        x.shape
    )
    with pytest.raises(MosaicTypeError, match="params is not aligned to 4 bytes"):
        mf.aggregate(odd, g, fm)
    with pytest.raises(MosaicTypeError, match="out is not aligned to 4 bytes"):
        mf.aggregate(x, g, fm, out=odd)


def test_shape_mismatches() -> None:
    x, g, fm = setup()
    with pytest.raises(MosaicValueError, match="7 rows but the graphs are for n_nodes=6"):
        mf.aggregate(np.zeros((7, 40), np.float32), g, fm)
    with pytest.raises(
        MosaicValueError, match="41 columns but the fragment map is for n_params=40"
    ):
        mf.aggregate(np.zeros((6, 41), np.float32), g, fm)
    with pytest.raises(MosaicValueError, match="K=3 fragments but the graphs have K=4"):
        mf.aggregate(x, g, mf.FragmentMap.contiguous(40, 3))
    with pytest.raises(MosaicValueError, match="out has shape"):
        mf.aggregate(x, g, fm, out=np.zeros((6, 39), np.float32))


def test_out_aliasing_params_is_refused() -> None:
    x, g, fm = setup()
    with pytest.raises(MosaicValueError, match="aliases"):
        mf.aggregate(x, g, fm, out=x)
    big = np.zeros((12, 40), np.float32)
    with pytest.raises(MosaicValueError, match="aliases"):
        mf.aggregate(big[:6], g, fm, out=big[3:9])
    t = torch.zeros(6, 40)
    with pytest.raises(MosaicValueError, match="aliases"):
        mf.aggregate(t, g, fm, out=t)


def test_errors_are_exceptions_not_panics() -> None:
    for cls in (MosaicValueError, MosaicTypeError):
        assert issubclass(cls, MosaicError) and issubclass(cls, Exception)
    assert issubclass(MosaicValueError, ValueError) and issubclass(MosaicTypeError, TypeError)


_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8])


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(-2, 12),
    d=st.integers(-2, 60),
    k=st.integers(-2, 70),
    degree=st.integers(-2, 14),
    rows=st.integers(0, 14),
    cols=st.integers(0, 70),
    dtype=_DTYPES,
    mode=st.sampled_from(
        [
            "el-oracle",
            "el-local",
            "pull",
            "undirected",
            "static",
            "ring",
            "complete",
            "shatter",
            "x",
        ]
    ),
    fragmenter=st.sampled_from(["contiguous", "random", "blocks"]),
    block=st.integers(-1, 20),
    seed=st.integers(-5, 2**40),
    transpose=st.booleans(),
)
def test_random_boundary_inputs_never_crash(
    n, d, k, degree, rows, cols, dtype, mode, fragmenter, block, seed, transpose
):
    try:
        graphs = mf.sample_graphs(
            n, k, degree, seed=seed, round=seed % 7 if seed > 0 else 0, mode=mode
        )
        if fragmenter == "contiguous":
            fragments = mf.FragmentMap.contiguous(d, k)
        elif fragmenter == "random":
            fragments = mf.FragmentMap.random(d, k, seed=seed)
        else:
            fragments = mf.FragmentMap.blocks(d, k, block_size=block, seed=seed)
        x = np.ones((cols, rows) if transpose else (rows, cols), dtype=dtype)
        if transpose:
            x = x.T
        out = mf.aggregate(x, graphs, fragments)
    except MosaicError as exc:
        message = str(exc)
        assert message and "\n" not in message
        return
    # success only for a fully valid call, and then the constant input stays constant
    assert out.shape == (n, d) and out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)
