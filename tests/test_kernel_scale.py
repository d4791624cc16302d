"""The kernel at thousands of nodes: the packed path (from 3,000 nodes on) and the staged path (from
1,000 nodes on, for maps whose tiles would be gathered) are bit-identical to the reference and to
themselves on any thread count; buffers and graphs too large for the machine are one
line each, before anything is allocated; fresh parameter buffers come faulted in."""

from __future__ import annotations

import numpy as np
import pytest
from kernel_helpers import digests_by_thread_count

import mosaic_fast as mf
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.kernel.reference import aggregate_reference

# Packed from this many nodes on (PACKED_MIN_NODES in rust/core/src/aggregate.rs), and staged from
# STAGED_NODES on for maps whose tiles would be gathered (STAGED_MIN_NODES).
PACKED_NODES = 3000
STAGED_NODES = 1000


def _maps(d: int, k: int) -> list[mf.FragmentMap]:
    return [
        mf.FragmentMap.contiguous(d, k),
        mf.FragmentMap.blocks(d, k, block_size=24, seed=1),
        mf.FragmentMap.random(d, k, seed=2),
    ]


def test_packed_path_matches_the_reference_bit_for_bit() -> None:
    # d=150: two packed tiles and a partial one, panels across fragment boundaries, a partial panel.
    n, d = PACKED_NODES, 150
    x = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    for k in (1, 3):
        graphs = mf.sample_graphs(n, k, 8, seed=4, round=1)
        for fragments in _maps(d, k):
            got = mf.aggregate(x, graphs, fragments)
            want = aggregate_reference(x, graphs, fragments)
            assert got.tobytes() == want.tobytes(), (k, fragments)


@pytest.mark.parametrize(
    ("k", "d"),
    [
        (3, 700),
        (16, 700),
        # 1,000 rows of 17,000 columns fill more than one 64 MB staging window: two windows.
        (16, 17_000),
    ],
)
def test_gathered_maps_are_staged_bit_for_bit(k: int, d: int) -> None:
    n = STAGED_NODES
    x = np.random.default_rng(1).standard_normal((n, d), dtype=np.float32)
    graphs = mf.sample_graphs(n, k, 8, seed=5, round=2)
    for fragments in (
        mf.FragmentMap.random(d, k, seed=3),
        mf.FragmentMap.blocks(d, k, block_size=4, seed=3),
    ):
        got = mf.aggregate(x, graphs, fragments)
        assert got.tobytes() == aggregate_reference(x, graphs, fragments).tobytes(), fragments


_THREAD_SCRIPT = """
import hashlib, json, numpy as np, mosaic_fast as mf
n, d = 3000, 150
x = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
h = hashlib.sha256()
for k in (1, 3):
    g = mf.sample_graphs(n, k, 8, seed=4, round=1)
    for a in g.in_csr(0):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(mf.aggregate(x, g, mf.FragmentMap.contiguous(d, k)).tobytes())
    h.update(mf.aggregate(x, g, mf.FragmentMap.random(d, k, seed=2)).tobytes())
print(json.dumps({"threads": mf.num_threads(), "digest": h.hexdigest()}))
"""


def test_packed_path_and_sampling_do_not_depend_on_thread_count() -> None:
    digests = digests_by_thread_count(_THREAD_SCRIPT)
    assert len(set(digests.values())) == 1, digests


def test_a_buffer_beyond_memory_is_one_line_before_allocating() -> None:
    with pytest.raises(MosaicValueError) as err:
        mf.empty_params(1_000_000, 1_000_000)
    message = str(err.value)
    assert "\n" not in message
    assert "n_nodes=1000000 x n_params=1000000 needs 3725.3 GiB" in message


def test_empty_params_is_faulted_in_and_writeable() -> None:
    params = mf.empty_params(3, 5000)
    assert params.shape == (3, 5000) and params.is_contiguous()
    # one zero per 4 KiB page was written; the rest is the buffer's to fill
    assert float(params.view(-1)[0]) == 0.0
    params.fill_(2.0)
    assert float(params.sum()) == 30_000.0


@pytest.mark.parametrize(
    ("n_nodes", "degree", "named"),
    [(100_000, 99_999, "degree=99999"), (10_000, 0, "degree=0")],
)
def test_graphs_too_large_or_degree_zero_are_one_line(
    n_nodes: int, degree: int, named: str
) -> None:
    with pytest.raises(MosaicValueError) as err:
        mf.sample_graphs(n_nodes, 1, degree)
    assert named in str(err.value) and "\n" not in str(err.value)
