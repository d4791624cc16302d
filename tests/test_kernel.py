"""The kernel's boundary: parity with the slow reference, graph semantics, zero copy, determinism."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from kernel_helpers import digests_by_thread_count

import mosaic_fast as mf
from mosaic_fast.kernel.reference import aggregate_reference, mixing_matrix_reference
from mosaic_fast.kernel.torch_path import aggregate_torch

FRAGMENTERS = ("contiguous", "random", "blocks")


def make_map(kind: str, d: int, k: int, seed: int = 3) -> mf.FragmentMap:
    if kind == "contiguous":
        return mf.FragmentMap.contiguous(d, k)
    if kind == "random":
        return mf.FragmentMap.random(d, k, seed=seed)
    return mf.FragmentMap.blocks(d, k, block_size=7, seed=seed)


def make_graphs(
    mode: str, n: int, k: int, degree: int = 3, seed: int = 1, round: int = 2
) -> mf.Graphs:
    edges = np.array([[0, 1], [2, 1], [n - 1, 0]]) if mode == "edges" else None
    return mf.sample_graphs(n, k, degree, seed=seed, round=round, mode=mode, edges=edges)


@pytest.mark.parametrize("kind", FRAGMENTERS)
@pytest.mark.parametrize("mode", mf.GRAPH_MODES)
def test_aggregate_matches_reference_bit_for_bit(kind: str, mode: str) -> None:
    rng = np.random.default_rng(0)
    n, d, k = 12, 1500, 5
    x = rng.standard_normal((n, d)).astype(np.float32)
    fragments = make_map(kind, d, k)
    graphs = make_graphs(mode, n, k, degree=4)
    got = mf.aggregate(x, graphs, fragments)
    want = aggregate_reference(x, graphs, fragments)
    np.testing.assert_array_equal(got, want)
    # the vectorised torch path (used for CUDA tensors) agrees up to float32 rounding
    fast = aggregate_torch(torch.from_numpy(x), graphs, fragments).numpy()
    np.testing.assert_allclose(fast, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,d,k", [(64, 20_000, 16), (3, 97, 1), (40, 4099, 7), (300, 3000, 3)])
def test_parity_across_tile_shapes(n: int, d: int, k: int) -> None:
    rng = np.random.default_rng(n + d)
    x = rng.random((n, d), dtype=np.float32)
    for kind in FRAGMENTERS:
        fragments = make_map(kind, d, k)
        graphs = mf.sample_graphs(n, k, 2, seed=5, round=0)
        np.testing.assert_array_equal(
            mf.aggregate(x, graphs, fragments), aggregate_reference(x, graphs, fragments)
        )


@pytest.mark.parametrize("kind", FRAGMENTERS)
def test_parity_when_output_is_streamed(kind: str) -> None:
    # Outputs of 16 MiB and more bypass the cache (streaming stores); rows here start at every
    # phase of a cache line, and `out` is offset by one float from the allocation.
    n, d, k = 20, 210_001, 6
    x = np.random.default_rng(1).random((n, d), dtype=np.float32)
    assert x.nbytes >= 16 << 20
    fragments = make_map(kind, d, k)
    graphs = mf.sample_graphs(n, k, 5, seed=2, round=1)
    out = np.full(n * d + 1, np.nan, dtype=np.float32)[1:].reshape(n, d)
    mf.aggregate(x, graphs, fragments, out=out)
    np.testing.assert_array_equal(out, aggregate_reference(x, graphs, fragments))


def test_empty_params_is_a_kernel_ready_tensor() -> None:
    buffer = mf.empty_params(6, 50)
    assert buffer.dtype == torch.float32 and tuple(buffer.shape) == (6, 50)
    assert buffer.is_contiguous() and buffer.device.type == "cpu"
    assert buffer.data_ptr() % 4096 == 0  # rows of 16k floats start on cache lines
    buffer.copy_(torch.arange(300, dtype=torch.float32).reshape(6, 50))
    fragments, graphs = mf.FragmentMap.random(50, 3, seed=0), mf.sample_graphs(6, 3, 2, seed=1)
    got = mf.aggregate(buffer, graphs, fragments, out=mf.empty_params(6, 50))
    want = aggregate_reference(buffer.numpy(), graphs, fragments)
    np.testing.assert_array_equal(got.numpy(), want)
    with pytest.raises(mf.MosaicValueError, match="n_params=0"):
        mf.empty_params(6, 0)
    with pytest.raises(mf.MosaicTypeError, match="n_nodes=2.5"):
        mf.empty_params(2.5, 3)


def test_k1_is_epidemic_learning_matrix_form() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 300)).astype(np.float32)
    graphs = mf.sample_graphs(20, 1, 4, seed=9, round=3)
    w = graphs.mixing_matrix(0)
    np.testing.assert_allclose(
        mf.aggregate(x, graphs, mf.FragmentMap.contiguous(300, 1)), w @ x, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("mode", mf.GRAPH_MODES)
def test_mixing_matrices_are_row_stochastic(mode: str) -> None:
    graphs = make_graphs(mode, 10, 3, degree=3 if mode != "undirected" else 2)
    for k in range(3):
        w = graphs.mixing_matrix(k)
        np.testing.assert_array_equal(w, mixing_matrix_reference(graphs, k))
        np.testing.assert_allclose(w.sum(axis=1), 1.0)
        assert (np.diag(w) > 0).all()
        degrees = graphs.in_degrees(k)
        np.testing.assert_allclose(np.diag(w), 1.0 / (1 + degrees))


@pytest.mark.parametrize("mode", ["el-oracle", "el-oracle-pairing"])
def test_el_oracle_is_exactly_regular_and_fresh_each_round(mode: str) -> None:
    n, k, s = 50, 4, 8
    g = mf.sample_graphs(n, k, s, seed=0, round=0, mode=mode)
    for frag in range(k):
        assert (g.in_degrees(frag) == s).all()
        assert (g.out_degrees(frag) == s).all()
        for i, sources in enumerate(g.in_neighbors(frag)):
            assert i not in sources
            assert len(set(sources.tolist())) == len(sources)
    assert not np.array_equal(g.mixing_matrix(0), g.mixing_matrix(1))
    g2 = mf.sample_graphs(n, k, s, seed=0, round=1, mode=mode)
    assert not np.array_equal(g.mixing_matrix(0), g2.mixing_matrix(0))
    again = mf.sample_graphs(n, k, s, seed=0, round=0, mode=mode)
    for frag in range(k):
        np.testing.assert_array_equal(g.mixing_matrix(frag), again.mixing_matrix(frag))


@pytest.mark.parametrize("mode", ["el-oracle", "el-oracle-pairing"])
def test_el_oracle_edges_are_spread_uniformly(mode: str) -> None:
    # Over many draws every ordered pair (j -> i), i != j, appears with probability s / (n - 1).
    n, s, draws = 8, 3, 4000
    counts = np.zeros((n, n))
    for r in range(draws // 8):
        g = mf.sample_graphs(n, 8, s, seed=11, round=r, mode=mode)
        for k in range(8):
            counts += g.mixing_matrix(k) > 0
    counts -= np.diag(np.diag(counts))
    freq = counts[~np.eye(n, dtype=bool)] / draws
    assert np.abs(freq - s / (n - 1)).max() < 0.04


def test_both_el_oracle_samplers_make_as_many_two_way_pairs_as_a_uniform_draw() -> None:
    # Mutual pairs (a -> b and b -> a) of a uniform s-regular digraph: about n s^2 / (2 (n - 1)).
    n, s = 1000, 8
    for mode in ("el-oracle", "el-oracle-pairing"):
        counts = []
        for r in range(10):
            g = mf.sample_graphs(n, 8, s, seed=3, round=r, mode=mode)
            for k in range(8):
                w = g.mixing_matrix(k) > 0
                np.fill_diagonal(w, False)
                counts.append((w & w.T).sum() / 2)
        # 80 draws, sd about 5.8 each: the mean is within 4 standard errors (2.6) of 32.0
        assert abs(np.mean(counts) - n * s * s / (2 * (n - 1))) < 2.6, (mode, np.mean(counts))


def test_el_local_sends_exactly_degree() -> None:
    g = mf.sample_graphs(30, 2, 5, seed=4, round=0, mode="el-local")
    assert (g.out_degrees(0) == 5).all() and (g.out_degrees(1) == 5).all()
    assert g.in_degrees(0).sum() == 150


def test_sent_params_equal_across_k() -> None:
    d = 10_000
    for k in (1, 2, 8, 16):
        fragments = mf.FragmentMap.random(d, k, seed=0)
        sent = mf.sample_graphs(16, k, 8, seed=0, round=0).sent_params(fragments)
        assert (sent == 8 * d).all()


def test_no_arrival_keeps_own_value() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    graphs = mf.sample_graphs(3, 1, 0, mode="edges", edges=[[0, 1]])
    out = mf.aggregate(x, graphs, mf.FragmentMap.contiguous(4, 1))
    np.testing.assert_array_equal(out[[0, 2]], x[[0, 2]])
    np.testing.assert_array_equal(out[1], (x[1] + x[0]) * np.float32(0.5))


def test_fragment_maps_partition_the_coordinates() -> None:
    layer_sizes = [100, 7, 893]
    for fragments in (
        mf.FragmentMap.contiguous(1000, 6),
        mf.FragmentMap.random(1000, 6, seed=2, layer_sizes=layer_sizes),
        mf.FragmentMap.blocks(1000, 6, block_size=64, seed=2),
    ):
        a = fragments.assignment()
        assert a.shape == (1000,) and a.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(a, minlength=6), fragments.fragment_sizes())
        assert fragments.fragment_sizes().min() > 0
        assert fragments.fragment_sizes().max() - fragments.fragment_sizes().min() <= 64


def test_out_buffer_is_written_in_place_numpy_and_torch() -> None:
    x = np.random.default_rng(0).random((8, 500), dtype=np.float32)
    fragments = mf.FragmentMap.random(500, 4, seed=0)
    graphs = mf.sample_graphs(8, 4, 2, seed=0)
    out = np.empty_like(x)
    ptr = out.ctypes.data
    assert mf.aggregate(x, graphs, fragments, out=out) is out
    assert out.ctypes.data == ptr
    xt = torch.from_numpy(x.copy())
    outt = torch.empty_like(xt)
    tptr = outt.data_ptr()
    res = mf.aggregate(xt, graphs, fragments, out=outt)
    assert res is outt and outt.data_ptr() == tptr
    np.testing.assert_array_equal(outt.numpy(), out)
    # tensors that require grad (model parameters) are read without copying
    xg = torch.from_numpy(x.copy()).requires_grad_(True)
    np.testing.assert_array_equal(mf.aggregate(xg, graphs, fragments).numpy(), out)


def test_repeated_calls_are_identical() -> None:
    x = np.random.default_rng(0).random((32, 10_000), dtype=np.float32)
    fragments = mf.FragmentMap.random(10_000, 8, seed=0)
    graphs = mf.sample_graphs(32, 8, 4, seed=0)
    first = mf.aggregate(x, graphs, fragments)
    for _ in range(3):
        np.testing.assert_array_equal(mf.aggregate(x, graphs, fragments), first)


_THREAD_SCRIPT = """
import hashlib, json, numpy as np, mosaic_fast as mf
h = hashlib.sha256()
x = np.random.default_rng(0).random((48, 40_000), dtype=np.float32)
for kind in ("contiguous", "random", "blocks"):
    for mode in ("el-oracle", "el-oracle-pairing", "el-local", "shatter"):
        k = 8
        fm = {"contiguous": lambda: mf.FragmentMap.contiguous(40_000, k),
              "random": lambda: mf.FragmentMap.random(40_000, k, seed=1),
              "blocks": lambda: mf.FragmentMap.blocks(40_000, k, block_size=100, seed=1)}[kind]()
        g = mf.sample_graphs(48, k, 6, seed=7, round=3, mode=mode)
        h.update(mf.aggregate(x, g, fm).tobytes())
        for f in range(k):
            h.update(g.mixing_matrix(f).tobytes())
big = np.random.default_rng(1).random((16, 262_147), dtype=np.float32)  # streamed output
for fm in (mf.FragmentMap.contiguous(262_147, 4), mf.FragmentMap.random(262_147, 4, seed=2)):
    h.update(mf.aggregate(big, mf.sample_graphs(16, 4, 5, seed=3), fm).tobytes())
print(json.dumps({"threads": mf.num_threads(), "digest": h.hexdigest()}))
"""


def test_results_do_not_depend_on_thread_count() -> None:
    digests = digests_by_thread_count(_THREAD_SCRIPT)
    assert len(set(digests.values())) == 1, digests


_BAD_THREADS_SCRIPT = """
import os, sys, numpy as np, mosaic_fast as mf
bad = os.environ.pop("MOSAIC_NUM_THREADS")


def attempt(name, call):
    try:
        call()
        print(name, "| no error")
    except mf.MosaicValueError as exc:
        print(name, "|", exc)


if sys.argv[1] == "first-call":
    os.environ["MOSAIC_NUM_THREADS"] = bad
    attempt("sample_graphs", lambda: mf.sample_graphs(4, 2, 2))
    attempt("num_threads", mf.num_threads)
else:
    # aggregate needs graphs, and drawing them starts the pool: draw them with the variable unset,
    # then set it and fork; the child starts its own pool and must refuse the value too.
    x, fm = np.ones((4, 100), np.float32), mf.FragmentMap.contiguous(100, 2)
    g = mf.sample_graphs(4, 2, 2)
    os.environ["MOSAIC_NUM_THREADS"] = bad
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        attempt("aggregate", lambda: mf.aggregate(x, g, fm))
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
"""


@pytest.mark.parametrize("value", ["0", "-1", "abc", "zero"])
def test_bad_thread_count_is_a_clear_error(value: str) -> None:
    # Every call that uses the kernel's threads refuses the value with a one-line error naming it:
    # no panic, no silent fallback to some thread count.
    env = {**os.environ, "MOSAIC_NUM_THREADS": value}
    out = ""
    for case in ("first-call", "aggregate-after-fork"):
        res = subprocess.run(
            [sys.executable, "-c", _BAD_THREADS_SCRIPT, case],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert res.returncode == 0, res.stderr
        out += res.stdout
    lines = out.strip().splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["sample_graphs", "num_threads", "aggregate"]
    for line in lines:
        assert f"MOSAIC_NUM_THREADS='{value}' is not a positive integer" in line.replace('"', "'")


def test_sampling_runs_on_the_kernel_pool() -> None:
    # MOSAIC_NUM_THREADS bounds graph sampling too: the threads it starts are the pool's (named
    # mosaic-*), as many as asked for, and no others (rayon's global pool would add unnamed ones).
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs Linux /proc to list threads")
    code = (
        "import os, mosaic_fast as mf\n"
        "def threads():\n"
        "    return {t: open(f'/proc/self/task/{t}/comm').read().strip()\n"
        "            for t in os.listdir('/proc/self/task')}\n"
        "import time\n"
        "before = threads()\n"
        "mf.sample_graphs(64, 16, 8, seed=1)\n"
        "# a worker names itself once it runs: give the last one a moment\n"
        "for _ in range(200):\n"
        "    new = sorted(name for t, name in threads().items() if t not in before)\n"
        "    if all(name.startswith('mosaic-') for name in new):\n"
        "        break\n"
        "    time.sleep(0.01)\n"
        "print(new)\n"
    )
    env = {**os.environ, "MOSAIC_NUM_THREADS": "3"}
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "['mosaic-0', 'mosaic-1', 'mosaic-2']"


def test_pool_survives_fork() -> None:
    # The child of a fork has none of the parent's worker threads: the kernel starts a fresh pool
    # there, for averaging and for sampling alike, and draws the same graphs.
    code = (
        "import os, numpy as np, mosaic_fast as mf\n"
        "x = np.ones((4, 100), np.float32); fm = mf.FragmentMap.contiguous(100, 2)\n"
        "g = mf.sample_graphs(4, 2, 2)\n"
        "mf.aggregate(x, g, fm)\n"
        "def draw():\n"
        "    g = mf.sample_graphs(32, 8, 4, seed=5, round=3)\n"
        "    return [g.mixing_matrix(k).tobytes() for k in range(8)]\n"
        "here = draw()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = draw() == here and (mf.aggregate(x, mf.sample_graphs(4, 2, 2), fm) == 1).all()\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert res.stdout.strip() == "0"


def test_digest_is_stable_for_a_seed() -> None:
    # Same seed, same graphs in a fresh process (counter-based RNG, no global state).
    g = mf.sample_graphs(20, 3, 4, seed=123, round=7)
    here = hashlib.sha256(b"".join(g.mixing_matrix(k).tobytes() for k in range(3))).hexdigest()
    code = (
        "import hashlib, mosaic_fast as mf\n"
        "g = mf.sample_graphs(20, 3, 4, seed=123, round=7)\n"
        "print(hashlib.sha256(b''.join(g.mixing_matrix(k).tobytes() for k in range(3))).hexdigest())"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == here
