"""The torch aggregation (what CUDA tensors use) against the Rust kernel, bit for bit, on CPU tensors:
every fragment map, graph family, uneven in-degrees, column chunking and the ``out=`` contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mosaic_fast as mf
from mosaic_fast.errors import MosaicError, MosaicTypeError, MosaicValueError
from mosaic_fast.kernel import torch_path as kernel_torch
from mosaic_fast.kernel.torch_path import aggregate_torch

FRAGMENTERS = ("contiguous", "random", "blocks")
MODES = ("el-oracle", "static", "ring", "complete", "edges", "uneven-per-fragment")


def make_map(kind: str, d: int, k: int) -> mf.FragmentMap:
    if kind == "contiguous":
        return mf.FragmentMap.contiguous(d, k)
    if kind == "random":
        return mf.FragmentMap.random(d, k, seed=3)
    return mf.FragmentMap.blocks(d, k, block_size=4, seed=3)


def uneven_edges(n: int, rng: np.random.Generator) -> np.ndarray:
    """A user topology: random in-degrees from 0 to n-1, node 0 with no in-neighbour at all."""
    edges = [
        (int(src), dst)
        for dst in range(1, n)
        for src in rng.choice(
            [j for j in range(n) if j != dst], size=rng.integers(0, n), replace=False
        )
    ]
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def make_graphs(mode: str, n: int, k: int, rng: np.random.Generator) -> mf.Graphs:
    if mode == "uneven-per-fragment":
        return mf.Graphs.from_edges(n, [uneven_edges(n, rng) for _ in range(k)], round=1)
    edges = uneven_edges(n, rng) if mode == "edges" else None
    return mf.sample_graphs(n, k, min(3, n - 1), seed=1, round=2, mode=mode, edges=edges)


def fragment_columns(fragments: mf.FragmentMap) -> list[np.ndarray]:
    assignment = fragments.assignment()
    return [np.flatnonzero(assignment == k) for k in range(fragments.n_fragments)]


def assert_same_bits(got: torch.Tensor, want: np.ndarray) -> None:
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.equal(got.view(torch.int32), torch.from_numpy(want).view(torch.int32))


def test_the_graphs_here_have_uneven_in_degrees_and_a_node_without_arrivals() -> None:
    graphs = make_graphs("uneven-per-fragment", 12, 4, np.random.default_rng(0))
    for k in range(4):
        degrees = graphs.in_degrees(k)
        assert degrees[0] == 0 and len(set(degrees.tolist())) > 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", FRAGMENTERS)
@pytest.mark.parametrize("k", [1, 4, 16])
def test_equals_the_rust_kernel_bit_for_bit(k: int, kind: str, mode: str) -> None:
    rng = np.random.default_rng(k)
    for n in (2, 3, 17, 50):
        d = 13 * k + 5  # not divisible by K (K > 1)
        x = rng.standard_normal((n, d)).astype(np.float32)
        x[0, :3] = -0.0  # a lone receiver keeps the sign of zero
        fragments = make_map(kind, d, k)
        graphs = make_graphs(mode, n, k, rng)
        want = mf.aggregate(x, graphs, fragments)
        assert_same_bits(aggregate_torch(torch.from_numpy(x), graphs, fragments), want)


@pytest.mark.parametrize("kind", FRAGMENTERS)
@pytest.mark.parametrize("mode", ["el-oracle", "uneven-per-fragment"])
def test_column_chunks_keep_the_order_of_additions(
    monkeypatch: pytest.MonkeyPatch, kind: str, mode: str
) -> None:
    # 3 columns per chunk: every fragment is split, including past its last full chunk.
    n, d, k = 9, 301, 4
    monkeypatch.setattr(kernel_torch, "CPU_CHUNK_BYTES", 4 * n * 3)
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((n, d)) * 1e3).astype(np.float32)
    fragments = make_map(kind, d, k)
    graphs = make_graphs(mode, n, k, rng)
    assert_same_bits(
        aggregate_torch(torch.from_numpy(x), graphs, fragments),
        mf.aggregate(x, graphs, fragments),
    )


def test_values_where_the_order_of_additions_shows() -> None:
    # Magnitudes 1e8 and 1: any other order of additions, or a product with 1/(1+m) in another
    # precision, changes the result.
    n, d = 6, 64
    rng = np.random.default_rng(2)
    x = rng.choice(np.array([1e8, -1e8, 1.0, 3.0, -7.0], np.float32), size=(n, d))
    graphs = mf.sample_graphs(n, 2, 5, mode="complete")
    fragments = mf.FragmentMap.random(d, 2, seed=0)
    want = mf.aggregate(x, graphs, fragments)
    assert_same_bits(aggregate_torch(torch.from_numpy(x), graphs, fragments), want)
    # The data tell orders apart: adding the same rows last to first, or the dense mixing-matrix
    # product this path used to be, gives other bits.
    reversed_order = x[::-1].sum(axis=0, dtype=np.float32) * (np.float32(1) / np.float32(6))
    assert not np.array_equal(want[0], reversed_order)
    dense = np.zeros_like(x)
    for k, cols in enumerate(fragment_columns(fragments)):
        dense[:, cols] = torch.from_numpy(graphs.mixing_matrix(k)).float() @ torch.from_numpy(
            x[:, cols]
        )
    assert not np.array_equal(want, dense)


def test_repeated_calls_reuse_the_index_tensors_and_agree() -> None:
    n, d, k = 10, 200, 4
    x = torch.from_numpy(np.random.default_rng(1).random((n, d), dtype=np.float32))
    fragments = make_map("random", d, k)
    graphs = mf.sample_graphs(n, k, 3, seed=4, round=7, mode="el-local")
    first = aggregate_torch(x, graphs, fragments)
    assert aggregate_torch(x, graphs, fragments).equal(first)
    assert kernel_torch._PLANS[graphs]["cpu"] is kernel_torch._plans(torch, graphs, x.device)


def test_runs_without_reading_the_parameters_on_the_host() -> None:
    # Meta tensors have no values: any copy of params to the host (or numpy) would raise.
    n, d, k = 8, 50, 4
    x = torch.empty(n, d, device="meta")
    for mode in ("el-oracle", "uneven-per-fragment"):
        graphs = make_graphs(mode, n, k, np.random.default_rng(0))
        for kind in FRAGMENTERS:
            got = aggregate_torch(x, graphs, make_map(kind, d, k))
            assert got.device.type == "meta" and got.shape == (n, d)


def test_out_is_written_in_place_and_params_left_alone() -> None:
    n, d, k = 7, 90, 3
    x = np.random.default_rng(3).random((n, d), dtype=np.float32)
    graphs = make_graphs("edges", n, k, np.random.default_rng(3))
    fragments = make_map("blocks", d, k)
    t = torch.from_numpy(x.copy())
    out = torch.full((n, d), float("nan"))
    assert aggregate_torch(t, graphs, fragments, out=out) is out
    assert_same_bits(out, mf.aggregate(x, graphs, fragments))
    assert np.array_equal(t.numpy(), x)
    # Adjacent halves of one buffer do not overlap: allowed, as on the Rust path.
    both = torch.from_numpy(np.concatenate([x, x]))
    aggregate_torch(both[:n], graphs, fragments, out=both[n:])
    assert_same_bits(both[n:], mf.aggregate(x, graphs, fragments))


OUT_CASES = {
    "out is params": (lambda x: x, MosaicValueError),
    "out overlaps params": (lambda x: None, MosaicValueError),
    "out of another shape": (lambda x: torch.empty(x.shape[0], x.shape[1] + 1), MosaicValueError),
    "out of another dtype": (lambda x: torch.empty(x.shape, dtype=torch.float64), MosaicTypeError),
    "out strided": (lambda x: torch.empty(x.shape[1], x.shape[0]).T, MosaicTypeError),
    "out a numpy array": (lambda x: np.empty(tuple(x.shape), np.float32), MosaicTypeError),
}


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_bad_out_gets_the_rust_paths_one_line_message(case: str) -> None:
    n, d, k = 5, 40, 2
    graphs = mf.sample_graphs(n, k, 2)
    fragments = make_map("contiguous", d, k)
    make_out, error = OUT_CASES[case]
    if case == "out overlaps params":
        big = torch.zeros(2 * n, d)
        x, out = big[:n], big[2 : 2 + n]
    else:
        x = torch.zeros(n, d)
        out = make_out(x)
    messages = []
    for call in (
        lambda: aggregate_torch(x, graphs, fragments, out=out),
        lambda: mf.aggregate(x, graphs, fragments, out=out),
    ):
        with pytest.raises(error) as info:
            call()
        messages.append(str(info.value))
    assert messages[0] == messages[1] and "\n" not in messages[0]
    if case.startswith("out is") or case.endswith("overlaps params"):
        assert messages[0] == "out aliases params; pass a separate buffer"


def test_bad_params_are_refused_before_any_work() -> None:
    graphs = mf.sample_graphs(4, 2, 2)
    fragments = make_map("contiguous", 10, 2)
    with pytest.raises(MosaicError, match="params has 5 rows but the graphs are for n_nodes=4"):
        aggregate_torch(torch.zeros(5, 10), graphs, fragments)
    with pytest.raises(MosaicTypeError, match="params must have dtype float32, got torch.float64"):
        aggregate_torch(torch.zeros(4, 10, dtype=torch.float64), graphs, fragments)
