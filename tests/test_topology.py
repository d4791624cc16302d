"""User graphs and fragments: callables, edge lists, adjacency matrices, files, assignments; every bad
input is one line naming what is wrong and where."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mosaic_fast as mf
from mosaic_fast import MosaicTypeError, MosaicValueError
from mosaic_fast.kernel.torch_path import aggregate_torch
from mosaic_fast.topology import GraphSource, fragments_for, read_assignment, read_edges


def csr(graphs: mf.Graphs) -> list[tuple[list[int], list[int]]]:
    return [tuple(a.tolist() for a in graphs.in_csr(k)) for k in range(graphs.n_fragments)]


def ring_of_cliques(round: int, fragment: int) -> np.ndarray:
    """3 cliques of 4 nodes; clique c's node (round + fragment) % 4 sends to the next clique's node 0."""
    edges = [(4 * c + i, 4 * c + j) for c in range(3) for i in range(4) for j in range(4) if i != j]
    edges += [(4 * c + (round + fragment) % 4, 4 * ((c + 1) % 3)) for c in range(3)]
    return np.array(edges)


def test_ring_of_cliques_callable_averages_as_a_numpy_reference() -> None:
    n, d, k = 12, 50, 3
    source = GraphSource.from_setting("el-oracle", n, k, 8, 0, user=ring_of_cliques)
    fragments = mf.FragmentMap.random(d, k, seed=4)
    x = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
    for round in (0, 1, 5):
        graphs = source.graphs(round)
        assert (graphs.round, graphs.n_fragments, graphs.mode) == (round, k, "edges")
        want = np.empty((n, d), np.float64)
        sent = np.zeros(n, np.int64)
        for fragment in range(k):
            # W[i, j] = 1 / (1 + in-degree of i) for j = i and each sender j of i
            adjacency = np.eye(n)
            for src, dst in ring_of_cliques(round, fragment):
                adjacency[dst, src] = 1
                sent[src] += fragments.fragment_sizes()[fragment]
            w = adjacency / adjacency.sum(axis=1, keepdims=True)
            cols = fragments.assignment() == fragment
            want[:, cols] = w @ x[:, cols].astype(np.float64)
        np.testing.assert_allclose(mf.aggregate(x, graphs, fragments), want, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(graphs.sent_params(fragments), sent)
        # the torch path (CUDA tensors) reads the same graphs
        fast = aggregate_torch(torch.from_numpy(x), graphs, fragments).numpy()
        np.testing.assert_allclose(fast, want, rtol=1e-5, atol=1e-5)
    # fragments and rounds get their own graphs: node 4 hears from node 0 (round 0, fragment 0)
    # and node 1 (round 0, fragment 1)
    first = source.graphs(0)
    assert 0 in first.in_neighbors(0)[4] and 1 not in first.in_neighbors(0)[4]
    assert 1 in first.in_neighbors(1)[4]


def test_a_static_edge_list_is_mode_edges_for_every_fragment_and_round() -> None:
    edges = np.array([[0, 1], [2, 1], [3, 0], [1, 3]])
    source = GraphSource.from_setting("ring", 4, 3, 2, 7, user=edges.tolist())
    for round in (0, 9):
        want = mf.sample_graphs(4, 3, 0, seed=7, round=round, mode="edges", edges=edges)
        got = source.graphs(round)
        assert csr(got) == csr(want)
        assert got.round == round
    assert source.label == "edge list"


def test_built_in_topologies_are_sample_graphs() -> None:
    source = GraphSource.from_setting("el-oracle", 16, 4, 3, 11)
    for round in (0, 3):
        want = mf.sample_graphs(16, 4, 3, seed=11, round=round, mode="el-oracle")
        assert csr(source.graphs(round)) == csr(want)


def write_graph_files(folder: Path) -> dict[str, Path]:
    """The same 5-node graph (0->1, 2->1, 4->0, 1->3) in every supported file format."""
    edges = np.array([[0, 1], [2, 1], [4, 0], [1, 3]])
    adjacency = np.zeros((5, 5), np.int8)
    adjacency[edges[:, 0], edges[:, 1]] = 1
    files = {name: folder / name for name in ("e.npy", "a.npy", "b.npy", "e.txt", "e.csv", "a.txt")}
    np.save(files["e.npy"], edges)
    np.save(files["a.npy"], adjacency)
    np.save(files["b.npy"], adjacency.astype(bool))
    files["e.txt"].write_text("# src dst\n0 1\n2\t1\n\n4 0  # into node 0\n1 3\n")
    files["e.csv"].write_text("0,1\n2,1\n4, 0\n1,3\n")
    files["a.txt"].write_text("\n".join(" ".join(map(str, row)) for row in adjacency) + "\n")
    return files


def test_edge_and_adjacency_files_give_the_same_graphs(tmp_path: Path) -> None:
    files = write_graph_files(tmp_path)
    want = csr(mf.sample_graphs(5, 2, 0, mode="edges", edges=[[0, 1], [2, 1], [4, 0], [1, 3]]))
    for path in files.values():
        assert sorted(read_edges(path, 5).tolist()) == [[0, 1], [1, 3], [2, 1], [4, 0]]
        assert csr(GraphSource.from_setting(f"edges:{path}", 5, 2, 0, 0).graphs(1)) == want
        assert csr(GraphSource.from_setting("", 5, 2, 0, 0, user=path).graphs(1)) == want
    # with two nodes a (2, 2) integer array is an edge list, a boolean one an adjacency matrix
    both = csr(mf.sample_graphs(2, 1, 0, mode="edges", edges=[[0, 1], [1, 0]]))
    assert csr(GraphSource.from_setting("", 2, 1, 0, 0, user=[[0, 1], [1, 0]]).graphs(0)) == both
    one_way = csr(mf.sample_graphs(2, 1, 0, mode="edges", edges=[[0, 1]]))
    adjacency = np.array([[False, True], [False, False]])
    assert csr(GraphSource.from_setting("", 2, 1, 0, 0, user=adjacency).graphs(0)) == one_way


def test_graphs_from_edges_differ_per_fragment() -> None:
    graphs = mf.Graphs.from_edges(
        4, [[[0, 1]], np.zeros((0, 2), np.int32), [[3, 2], [1, 2]]], round=6
    )
    assert (graphs.n_fragments, graphs.round, graphs.degree) == (3, 6, 0)
    assert graphs.in_neighbors(0)[1].tolist() == [0]
    assert graphs.in_degrees(1).tolist() == [0, 0, 0, 0]
    assert graphs.in_neighbors(2)[2].tolist() == [1, 3]
    fragments = mf.FragmentMap.from_assignment(np.array([0, 1, 1, 2, 2, 2]), 3)
    assert graphs.sent_params(fragments).tolist() == [1, 3, 0, 3]
    stacked = mf.Graphs.from_edges(4, np.array([[[0, 1]], [[1, 0]]]))
    assert stacked.in_neighbors(1)[0].tolist() == [1]


def boom(round: int, fragment: int) -> np.ndarray:
    raise RuntimeError("no graph\ntoday")


def my_graph(round: int, fragment: int) -> object:
    """Fine except in round 4, fragment 2: out-of-range, then other faults by round."""
    bad = {
        4: [[3, 17]],
        5: [[0, 1], [2, 3], [0, 1]],
        6: [[5, 5]],
        7: [[-2, 1]],
        8: np.zeros((3, 2), np.float32),
        9: np.zeros((4, 3), np.int64),
        10: None,
        11: [[0, 1], [2]],
        12: np.full((16, 16), 2),
        13: np.eye(16, dtype=bool),
        14: np.zeros((15, 15), bool),
    }
    return bad[round] if fragment == 2 and round in bad else [[0, 1]]


@pytest.mark.parametrize(
    "round,message",
    [
        (4, "returned edge (3, 17) for round 4, fragment 2: node 17 is out of range for 16 nodes"),
        (5, "returned edge (0, 1) for round 5, fragment 2: a duplicate edge (already at row 0)"),
        (6, "returned edge (5, 5) for round 6, fragment 2: a self loop"),
        (7, "returned edge (-2, 1) for round 7, fragment 2: node -2 is negative"),
        (
            8,
            "returned an array of dtype float32 for round 8, fragment 2; node ids must be integers",
        ),
        (9, "returned an array of shape (4, 3) for round 9, fragment 2; expected an (n_edges, 2)"),
        (
            10,
            "returned NoneType for round 10, fragment 2; expected an (n_edges, 2) integer edge list",
        ),
        (11, "returned a list that is not a rectangular array for round 11, fragment 2"),
        (12, "returned an adjacency matrix for round 12, fragment 2 with entry [0, 0] = 2"),
        (
            13,
            "returned an adjacency matrix for round 13, fragment 2 with entry [0, 0] set: a self loop",
        ),
        (14, "returned a boolean array of shape (15, 15) for round 14, fragment 2"),
    ],
)
def test_bad_callable_graphs_name_the_round_fragment_and_edge(round: int, message: str) -> None:
    source = GraphSource.from_setting("el-oracle", 16, 3, 2, 0, user=my_graph)
    source.graphs(3)  # other rounds are fine
    with pytest.raises(MosaicValueError) as info:
        source.graphs(round)
    assert f"topology callable my_graph {message}" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_raising_callable_is_one_line_naming_it() -> None:
    source = GraphSource.from_setting("el-oracle", 4, 2, 2, 0, user=boom)
    with pytest.raises(MosaicValueError) as info:
        source.graphs(3)
    assert str(info.value) == (
        "topology callable boom raised RuntimeError for round 3, fragment 0: no graph today"
    )


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "0 1\n1 9\n",
            "topology file {path} has edge (1, 9) at line 2: node 9 is out of range for 5 nodes",
        ),
        (
            "# a\n0 1\n\n0 1\n",
            "topology file {path} has edge (0, 1) at line 4: a duplicate edge (already at line 2)",
        ),
        ("2,2\n", "topology file {path} has edge (2, 2) at line 1: a self loop"),
        ("0 -1\n", "topology file {path} has edge (0, -1) at line 1: node -1 is negative"),
        ("0 1\n1 x\n", "topology file {path}, line 2: 'x' is not an integer (use # for comments)"),
        ("0 1\n1 2 3\n", "topology file {path}, line 2: 3 fields where line 1 has 2"),
        ("0 1.0\n", "topology file {path}, line 1: '1.0' is not an integer"),
    ],
)
def test_bad_text_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "g.txt"
    path.write_text(text)
    with pytest.raises(MosaicValueError) as info:
        GraphSource.from_setting(f"edges:{path}", 5, 2, 2, 0)
    assert message.format(path=path) in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_npy_files_and_static_lists(tmp_path: Path) -> None:
    path = tmp_path / "g.npy"
    np.save(path, np.array([[0, 1], [1, 7]], np.uint8))
    with pytest.raises(
        MosaicValueError, match=rf"file {path} has edge \(1, 7\) at row 1: node 7 is out"
    ):
        read_edges(path, 5)
    np.save(path, np.array([[0.0, 1.0]]))
    with pytest.raises(MosaicValueError, match="dtype float64"):
        read_edges(path, 5)
    path.write_bytes(b"not numpy")
    with pytest.raises(MosaicValueError, match=rf"cannot read topology file {path} as \.npy"):
        read_edges(path, 5)
    with pytest.raises(MosaicValueError, match="topology file .*missing.txt does not exist"):
        GraphSource.from_setting(f"edges:{tmp_path / 'missing.txt'}", 5, 2, 2, 0)
    with pytest.raises(
        MosaicValueError, match=r"topology edge list has edge \(0, 0\) at row 1: a self"
    ):
        GraphSource.from_setting("", 5, 2, 2, 0, user=[[0, 1], [0, 0]])
    # a huge unsigned id is out of range, not wrapped into a negative one
    with pytest.raises(MosaicValueError, match=f"node {2**64 - 1} is out of range for 5 nodes"):
        GraphSource.from_setting("", 5, 2, 2, 0, user=np.array([[0, 2**64 - 1]], np.uint64))


@pytest.mark.parametrize(
    "topology,error,message",
    [
        ("gossip", MosaicValueError, "unknown topology 'gossip'; choose one of el-oracle"),
        ("edges", MosaicValueError, "topology 'edges' needs its edges: use edges:FILE"),
        (3, MosaicTypeError, "topology=3 must be a mode name or edges:FILE"),
    ],
)
def test_bad_topology_settings(topology: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        GraphSource.from_setting(topology, 8, 2, 2, 0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "edges,error,message",
    [
        (
            [[[0, 1]], [[0, 4]]],
            MosaicValueError,
            "round 2, fragment 1: edge 0 = (0, 4) names a node outside 0..n_nodes=4",
        ),
        (
            [[[0, 1], [0, 1]]],
            MosaicValueError,
            "round 2, fragment 0: edge 1 = (0, 1) repeats edge 0",
        ),
        ([[[3, 3]]], MosaicValueError, "round 2, fragment 0: edge 0 = (3, 3) is a self loop"),
        (
            [[[-1, 3]]],
            MosaicValueError,
            "round 2, fragment 0: edge 0 = (-1, 3) has a negative node id",
        ),
        (
            [[[0.0, 1.0]]],
            MosaicTypeError,
            "round 2, fragment 0: edges must be integers, got dtype float64",
        ),
        ([[[0, 1], [2]]], MosaicValueError, "round 2, fragment 0: edges must be an integer array"),
        ([[0, 1, 2]], MosaicValueError, "round 2, fragment 0: edges must have shape (n_edges, 2)"),
        (
            np.zeros((3, 2), np.int64),
            MosaicValueError,
            "one per fragment, or an integer array of shape (K, n_edges, 2), got shape (3, 2)",
        ),
        (
            7,
            MosaicTypeError,
            "one per fragment, or an integer array of shape (K, n_edges, 2), got int",
        ),
        ([], MosaicValueError, "K=0"),
    ],
)
def test_graphs_from_edges_checks_every_edge(edges: object, error: type, message: str) -> None:
    with pytest.raises(error) as info:
        mf.Graphs.from_edges(4, edges, round=2)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_sample_graphs_edges_refuses_repeats() -> None:
    with pytest.raises(MosaicValueError, match=r"edge 2 = \(0, 1\) repeats edge 0"):
        mf.sample_graphs(3, 2, 0, mode="edges", edges=[[0, 1], [1, 2], [0, 1]])


_THREADS_SCRIPT = """
import json, numpy as np
import mosaic_fast as mf
from mosaic_fast.topology import GraphSource

def random_graph(round, fragment):
    rng = np.random.default_rng([round, fragment])
    pairs = rng.integers(0, 30, size=(200, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)

out = []
for source in (GraphSource.from_setting("el-oracle", 30, 6, 4, 3, user=random_graph),
               GraphSource.from_setting("shatter", 30, 6, 4, 3)):
    for round in range(3):
        g = source.graphs(round)
        out.append([g.in_csr(k)[1].tolist() for k in range(6)])
print(json.dumps(out))
"""


def test_graphs_do_not_depend_on_thread_count() -> None:
    results = set()
    for threads in ("1", "2"):
        env = {**os.environ, "MOSAIC_NUM_THREADS": threads}
        run = subprocess.run(
            [sys.executable, "-c", _THREADS_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        results.add(run.stdout)
    assert len(results) == 1


# --- fragments ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fragmenter", ["contiguous", "random", "blocks"])
def test_built_in_fragmenters_are_the_fragment_map_constructors(fragmenter: str) -> None:
    layers, d, k = [30, 70, 23], 123, 4
    want = {
        "contiguous": lambda: mf.FragmentMap.contiguous(d, k),
        "random": lambda: mf.FragmentMap.random(d, k, seed=5, layer_sizes=layers),
        "blocks": lambda: mf.FragmentMap.blocks(d, k, block_size=8, seed=5),
    }[fragmenter]()
    got = fragments_for(fragmenter, k, layers, d, 5, 8)
    assert got.kind == fragmenter
    np.testing.assert_array_equal(got.assignment(), want.assignment())


def test_assignment_arrays_and_files(tmp_path: Path) -> None:
    ids = np.array([2, 0, 1, 1, 0, 2, 2, 0], np.int16)
    np.save(tmp_path / "a.npy", ids)
    (tmp_path / "a.txt").write_text("# one id per coordinate\n2 0 1\n1,0\n\n2\n2 0  # last\n")
    maps = [
        fragments_for("contiguous", 3, [8], 8, 0, 4, user=ids),
        fragments_for("contiguous", 3, [8], 8, 0, 4, user=ids.tolist()),
        fragments_for(f"assignment:{tmp_path / 'a.npy'}", 3, [8], 8, 0, 4),
        fragments_for(f"assignment:{tmp_path / 'a.txt'}", 3, [8], 8, 0, 4),
        fragments_for("", 3, [8], 8, 0, 4, user=tmp_path / "a.txt"),
    ]
    for fragments in maps:
        assert fragments.kind == "assignment"
        assert fragments.assignment().tolist() == ids.tolist()
        assert fragments.fragment_sizes().tolist() == [3, 2, 3]
    given = mf.FragmentMap.contiguous(8, 3)
    assert fragments_for("random", 3, [8], 8, 0, 4, user=given) is given
    assert read_assignment(tmp_path / "a.txt").tolist() == ids.tolist()


@pytest.mark.parametrize(
    "assignment,k,message",
    [
        (
            np.zeros(5, np.int64),
            2,
            "fragment assignment has 5 fragment ids, but the model has n_params=6",
        ),
        (
            np.array([0, 1, 2, 0, 1, 0]),
            2,
            "fragment assignment: coordinate 2 has fragment id 2, outside 0..1 (K=2)",
        ),
        (np.array([0, 1, -1, 0, 1, 0]), 2, "coordinate 2 has fragment id -1, outside 0..1"),
        (
            np.array([0, 2, 2, 0, 0, 2]),
            3,
            "fragment assignment: fragment 1 of K=3 has no coordinate",
        ),
        (np.zeros(6), 2, "fragment assignment holds float64 values; fragment ids must be integers"),
        (np.zeros(6, bool), 2, "holds bool values"),
        (
            np.zeros((2, 3), np.int64),
            2,
            "fragment assignment has shape (2, 3); expected one fragment id per coordinate, shape (6,)",
        ),
        (np.arange(6), 7, "K=7 exceeds n_params=6: every fragment needs a coordinate"),
        ([[0, 1], [0]], 2, "fragment assignment is not an array of fragment ids"),
        (
            mf.FragmentMap.contiguous(6, 3),
            2,
            "the fragment map has n_params=6, K=3, but the run has n_params=6, K=2",
        ),
    ],
)
def test_bad_assignments(assignment: object, k: int, message: str) -> None:
    with pytest.raises(MosaicValueError) as info:
        fragments_for("contiguous", k, [6], 6, 0, 4, user=assignment)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_assignment_files_and_settings(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("0 1\n1 one\n")
    with pytest.raises(
        MosaicValueError, match=rf"assignment file {path}, line 2: 'one' is not an integer"
    ):
        fragments_for(f"assignment:{path}", 2, [4], 4, 0, 1)
    path.write_text("0 1 1\n")
    with pytest.raises(
        MosaicValueError,
        match=rf"assignment file {path} has 3 fragment ids, but the model has n_params=4",
    ):
        fragments_for(f"assignment:{path}", 2, [4], 4, 0, 1)
    with pytest.raises(MosaicValueError, match="assignment file .*nope.npy does not exist"):
        fragments_for(f"assignment:{tmp_path / 'nope.npy'}", 2, [4], 4, 0, 1)
    with pytest.raises(
        MosaicValueError, match="unknown fragmenter 'shuffle'; choose one of contiguous"
    ):
        fragments_for("shuffle", 2, [4], 4, 0, 1)
    with pytest.raises(MosaicValueError, match="K=5 exceeds n_params=4"):
        fragments_for("contiguous", 5, [4], 4, 0, 1)
    with pytest.raises(MosaicValueError, match="block_size=4"):
        fragments_for("blocks", 2, [4], 4, 0, 4)
