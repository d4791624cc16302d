"""Aggregation kernel benchmarks: K=1 vs K=16 per fragmenter, Rust vs the torch
implementation (per-round index tensors: gathers and in-order adds), and effective bandwidth as a fraction
of a copy measured in the same run.

Effective bandwidth counts the physical minimum of one call: read every input value once and write
every output value once, ``8 * n * d`` bytes. The copy probe needs the extension built with the cargo
feature ``bench-probes`` (``bash .ci/setup --test`` does); without it the probe is skipped with a note
and the fractions of copy are left out.

    pytest benches/bench_kernel.py --benchmark-group-by=group --benchmark-min-rounds=5
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mosaic_fast as mf
from mosaic_fast import _core
from mosaic_fast.kernel.reference import aggregate_reference
from mosaic_fast.kernel.torch_path import aggregate_torch

from .conftest import SUMMARY, min_seconds

DEGREE = 8


def sizes(full: bool) -> tuple[int, int]:
    return (64, 1_000_000) if full else (16, 20_000)


def make_map(kind: str, d: int, k: int) -> mf.FragmentMap:
    if kind == "contiguous":
        return mf.FragmentMap.contiguous(d, k)
    if kind == "random":
        return mf.FragmentMap.random(d, k, seed=0)
    return mf.FragmentMap.blocks(d, k, block_size=1024 if d >= 1024 * k else 16, seed=0)


@pytest.fixture(scope="module")
def params(full_size: bool) -> np.ndarray:
    n, d = sizes(full_size)
    return np.random.default_rng(0).random((n, d), dtype=np.float32)


# The copy probe is compiled in only with the cargo feature `bench-probes` (`bash .ci/setup --test`).
COPY_INTO = getattr(_core, "copy_into", None)
NO_PROBE = (
    "copy probe not built: this extension lacks the cargo feature bench-probes; rebuild with "
    "MATURIN_PEP517_ARGS='--features bench-probes' pip install -e .  (or bash .ci/setup --test)"
)


@pytest.fixture(scope="module")
def copy_bandwidth(params: np.ndarray) -> float | None:
    """Bytes per second of a parallel copy (read + write) on the kernel's pool, best of 10; None
    without the probe."""
    import time

    if COPY_INTO is None:
        return None
    out = np.empty_like(params)
    COPY_INTO(params, out)
    best = min(_timed(lambda: COPY_INTO(params, out), time) for _ in range(10))
    return 2 * params.nbytes / best


def _timed(fn, time) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_copy_probe(benchmark, params: np.ndarray, copy_bandwidth: float | None) -> None:
    if COPY_INTO is None or copy_bandwidth is None:
        pytest.skip(NO_PROBE)
    benchmark.group = "memory-probe"
    out = np.empty_like(params)
    benchmark(COPY_INTO, params, out)
    np.testing.assert_array_equal(out, params)
    benchmark.extra_info["probe_GBps"] = copy_bandwidth / 1e9
    SUMMARY.append(
        {"bench": "copy-probe", "shape": params.shape, "GB/s": round(copy_bandwidth / 1e9, 1)}
    )


@pytest.mark.parametrize("k", [1, 16])
@pytest.mark.parametrize("kind", ["contiguous", "blocks", "random"])
@pytest.mark.parametrize("impl", ["rust", "torch"])
def test_aggregate(
    benchmark, params: np.ndarray, copy_bandwidth: float | None, impl: str, kind: str, k: int
) -> None:
    n, d = params.shape
    benchmark.group = f"aggregate n={n} d={d} {kind}"
    fragments = make_map(kind, d, k)
    graphs = mf.sample_graphs(n, k, DEGREE, seed=0, round=0)
    if impl == "rust":
        out = np.empty_like(params)
        benchmark(mf.aggregate, params, graphs, fragments, out=out)
        result = out
    else:
        x = torch.from_numpy(params)
        out_t = torch.empty_like(x)
        aggregate_torch(x, graphs, fragments, out=out_t)  # builds the column selections once
        benchmark(aggregate_torch, x, graphs, fragments, out=out_t)
        result = out_t.numpy()
    # parity on a slice of rows/columns (the full reference is too slow at this size)
    cols = slice(0, min(d, 4096))
    sub = make_map(kind, d, k)
    want = aggregate_reference(params, graphs, sub) if d <= 50_000 else None
    if want is not None:
        np.testing.assert_allclose(result, want, rtol=1e-5, atol=1e-6)
    else:
        rust = mf.aggregate(params, graphs, fragments)
        np.testing.assert_allclose(result[:, cols], rust[:, cols], rtol=1e-5, atol=1e-6)
    seconds = min_seconds(benchmark)
    if seconds is not None:
        gbps = 8 * n * d / seconds / 1e9
        of_copy = gbps * 1e9 / copy_bandwidth if copy_bandwidth else None
        benchmark.extra_info.update(effective_GBps=gbps, fraction_of_copy=of_copy, ms=seconds * 1e3)
        SUMMARY.append(
            {
                "bench": "aggregate",
                "impl": impl,
                "fragmenter": kind,
                "K": k,
                "n": n,
                "d": d,
                "ms": round(seconds * 1e3, 1),
                "GB/s": round(gbps, 1),
                "of_copy": f"{of_copy:.0%}" if of_copy is not None else "n/a (no copy probe)",
            }
        )


@pytest.mark.parametrize("k", [1, 16])
@pytest.mark.parametrize("n", [16, 64, 256])
@pytest.mark.parametrize("impl", ["rust", "torch"])
def test_scaling_with_nodes(benchmark, full_size: bool, impl: str, n: int, k: int) -> None:
    d = 1_000_000 if full_size else 10_000
    if not full_size:
        n = min(n, 32)
    benchmark.group = f"nodes d={d} K={k} contiguous"
    x = np.random.default_rng(n).random((n, d), dtype=np.float32)
    fragments = mf.FragmentMap.contiguous(d, k)
    graphs = mf.sample_graphs(n, k, DEGREE, seed=0, round=0)
    if impl == "rust":
        out = np.empty_like(x)
        benchmark(mf.aggregate, x, graphs, fragments, out=out)
    else:
        xt = torch.from_numpy(x)
        out_t = torch.empty_like(xt)
        aggregate_torch(xt, graphs, fragments, out=out_t)
        benchmark(aggregate_torch, xt, graphs, fragments, out=out_t)
    seconds = min_seconds(benchmark)
    if seconds is not None:
        SUMMARY.append(
            {"bench": "nodes", "impl": impl, "n": n, "K": k, "d": d, "ms": round(seconds * 1e3, 1)}
        )


@pytest.mark.parametrize("block_size", [1, 8, 32, 64, 128, 1024])
def test_block_size(benchmark, params: np.ndarray, block_size: int) -> None:
    """K=16 by block size: how coarse a random map must be to run at contiguous speed."""
    n, d = params.shape
    k = 16 if d >= 16 * block_size else 2
    benchmark.group = f"blocks by size n={n} d={d} K={k}"
    fragments = mf.FragmentMap.blocks(d, k, block_size=block_size, seed=0)
    graphs = mf.sample_graphs(n, k, DEGREE, seed=0, round=0)
    out = np.empty_like(params)
    benchmark(mf.aggregate, params, graphs, fragments, out=out)
    if d <= 50_000:
        np.testing.assert_array_equal(out, aggregate_reference(params, graphs, fragments))
    seconds = min_seconds(benchmark)
    if seconds is not None:
        SUMMARY.append(
            {
                "bench": "blocks",
                "block_size": block_size,
                "K": k,
                "n": n,
                "d": d,
                "ms": round(seconds * 1e3, 1),
            }
        )


@pytest.mark.parametrize("k", [1, 16])
@pytest.mark.parametrize("kind", ["contiguous", "random"])
@pytest.mark.parametrize("impl", ["rust", "torch-gather"])
def test_torch_path_on_cpu(benchmark, full_size: bool, impl: str, kind: str, k: int) -> None:
    """The torch path CUDA tensors take (``aggregate_torch``: a gather and an add per in-neighbour
    slot) run on CPU tensors, against the Rust kernel on the same data: the same bits, and what the
    GPU-shaped path costs on a CPU (it is not meant to be fast there)."""
    n, d = (32, 200_000) if full_size else (12, 5_000)
    benchmark.group = f"torch path vs rust on CPU n={n} d={d} {kind}"
    x = np.random.default_rng(7).random((n, d), dtype=np.float32)
    fragments = make_map(kind, d, k)
    graphs = mf.sample_graphs(n, k, DEGREE, seed=0, round=0)
    want = mf.aggregate(x, graphs, fragments)
    if impl == "rust":
        out = np.empty_like(x)
        benchmark(mf.aggregate, x, graphs, fragments, out=out)
        result = out
    else:
        xt, out_t = torch.from_numpy(x), torch.empty(n, d)
        aggregate_torch(xt, graphs, fragments, out=out_t)  # builds the index tensors once
        benchmark(aggregate_torch, xt, graphs, fragments, out=out_t)
        result = out_t.numpy()
    np.testing.assert_array_equal(result.view(np.int32), want.view(np.int32))
    seconds = min_seconds(benchmark)
    if seconds is not None:
        gbps = 8 * n * d / seconds / 1e9
        benchmark.extra_info.update(effective_GBps=gbps, ms=seconds * 1e3)
        SUMMARY.append(
            {
                "bench": "torch-path-cpu",
                "impl": impl,
                "fragmenter": kind,
                "K": k,
                "n": n,
                "d": d,
                "ms": round(seconds * 1e3, 1),
                "GB/s": round(gbps, 1),
            }
        )


SCALE_NODES = [64, 256, 1_000, 4_000, 10_000]
SCALE_VALUES = 400_000_000  # n * d: 1.6 GB a buffer, as many values at every n


def _best_seconds(fn, repeats: int) -> float:
    import time

    return min(_timed(fn, time) for _ in range(repeats))


@pytest.mark.parametrize("k", [1, 16])
@pytest.mark.parametrize("kind", ["contiguous", "blocks", "random"])
@pytest.mark.parametrize("n", SCALE_NODES)
def test_scale(benchmark, full_size: bool, n: int, kind: str, k: int) -> None:
    """n * d held at 4e8 while n grows: effective bandwidth against a copy of the same buffers,
    measured right before and after the kernel (the best of the two)."""
    d = SCALE_VALUES // n if full_size else max(2_000, 200_000 // n)
    if not full_size:
        n = min(n, 64)
    benchmark.group = f"scale n*d={n * d:.0e} {kind} K={k}"
    x = mf.empty_params(n, d).numpy()
    x[:] = np.random.default_rng(n).random(d, dtype=np.float32)
    out = mf.empty_params(n, d).numpy()
    fragments = make_map(kind, d, k)
    graphs = mf.sample_graphs(n, k, DEGREE, seed=0, round=0)
    copy_before = _best_seconds(lambda: COPY_INTO(x, out), 3) if COPY_INTO else None
    benchmark(mf.aggregate, x, graphs, fragments, out=out)
    copy_after = _best_seconds(lambda: COPY_INTO(x, out), 3) if COPY_INTO else None
    sample_s = _best_seconds(lambda: mf.sample_graphs(n, 8, DEGREE, seed=0, round=1), 2)
    pairing_s = _best_seconds(
        lambda: mf.sample_graphs(n, 8, DEGREE, seed=0, round=1, mode="el-oracle-pairing"), 2
    )
    seconds = min_seconds(benchmark)
    if seconds is None:
        return
    gbps = 8 * n * d / seconds / 1e9
    copy_gbps = 8 * n * d / min(copy_before, copy_after) / 1e9 if COPY_INTO else None
    of_copy = gbps / copy_gbps if copy_gbps else None
    benchmark.extra_info.update(
        effective_GBps=gbps,
        copy_GBps=copy_gbps,
        fraction_of_copy=of_copy,
        sample_K8_ms=sample_s * 1e3,
        sample_pairing_K8_ms=pairing_s * 1e3,
    )
    SUMMARY.append(
        {
            "bench": "scale",
            "fragmenter": kind,
            "K": k,
            "n": n,
            "d": d,
            "ms": round(seconds * 1e3, 1),
            "GB/s": round(gbps, 1),
            "copy GB/s": round(copy_gbps, 1) if copy_gbps else "n/a (no copy probe)",
            "of_copy": f"{of_copy:.0%}" if of_copy is not None else "n/a",
            "sample K=8 ms": round(sample_s * 1e3, 1),
            "sample el-oracle-pairing K=8 ms": round(pairing_s * 1e3, 2),
            "sampling of aggregation": f"{sample_s / seconds:.0%}",
            "pairing of aggregation": f"{pairing_s / seconds:.1%}",
        }
    )


PANEL_CEILING = getattr(_core, "panel_ceiling", None)


@pytest.mark.parametrize("n", [n for n in SCALE_NODES if n >= 1_000])
def test_panel_ceiling(benchmark, full_size: bool, n: int) -> None:
    """The packed path's panel averaging alone (no packing, no write-back; every thread on its own
    panels): the fastest a kernel that reads nine rows per output from L2 could be at this n, as
    milliseconds per n*d = 4e8 outputs and as the most of the copy it could reach."""
    if COPY_INTO is None or PANEL_CEILING is None:
        pytest.skip(NO_PROBE)
    d = SCALE_VALUES // n if full_size else max(2_000, 200_000 // n)
    benchmark.group = f"panel ceiling n={n}"
    graphs = mf.sample_graphs(n, 1, DEGREE, seed=0, round=0)
    threads = mf.num_threads()
    # Each thread averages passes * n * 16 outputs: about n*d of them over all threads.
    passes = max(4, n * d // (16 * n * threads))
    benchmark(PANEL_CEILING, graphs, passes)
    seconds = min_seconds(benchmark)
    if seconds is None or not full_size:
        return
    x = mf.empty_params(n, d).numpy()
    x[:] = 1.0
    out = mf.empty_params(n, d).numpy()
    copy_s = _best_seconds(lambda: COPY_INTO(x, out), 5)
    ceiling_s = seconds * 4e8 / (passes * threads * 16 * n)
    benchmark.extra_info.update(ceiling_ms=ceiling_s * 1e3, copy_ms=copy_s * 1e3)
    SUMMARY.append(
        {
            "bench": "panel-ceiling",
            "n": n,
            "ms per 4e8 outputs": round(ceiling_s * 1e3, 1),
            "copy ms": round(copy_s * 1e3, 1),
            "most of copy": f"{copy_s / ceiling_s:.0%}",
        }
    )
