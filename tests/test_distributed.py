"""torch.distributed runs (gloo ranks on localhost, started by torchrun): the same records as one
process, resumable with another number of ranks, and prompt one-line failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import SHARED_DATA

from mosaic_fast.engine.distributed import blocks
from mosaic_fast.engine.rounds import Simulation
from mosaic_fast.launch import launch_problem
from mosaic_fast.results.layout import CLOCK_FIELDS
from mosaic_fast.settings import ExperimentConfig
from mosaic_fast.topology import GraphSource

MOVIELENS = SHARED_DATA / "ml-latest-small"
FASHION = Path("/usr/share/datasets/fashion-mnist")
# Conv kernels round differently with other thread counts: every process gets one thread.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
    ENV.pop(name, None)

MF = [
    "--dataset", "movielens", "--data-dir", str(MOVIELENS), "--nodes", "7", "--degree", "2",
    "--K", "4", "--rounds", "4", "--local-steps", "2", "--eval-every", "2",
    "--momentum", "0.5", "--step-time", "0.01",
]  # fmt: skip
GN_LENET = [
    "--dataset", "fashion-mnist", "--nodes", "5", "--degree", "2", "--K", "4", "--rounds", "2",
    "--local-steps", "1", "--batch-size", "4", "--test-samples", "50", "--momentum", "0.9",
    "--step-time", "0.01",
]  # fmt: skip


def one_process(args: list[str], out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mosaic_fast", "run", *args, "--quiet", "--out", str(out)]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def torchrun(ranks: int, args: list[str], tag: str = "") -> subprocess.Popen:
    """torchrun with ``ranks`` gloo workers; ``tag`` marks their environment (to find them)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={ranks}", "-m", "mosaic_fast", "run", *args, "--quiet",
    ]  # fmt: skip
    env = {**ENV, "MOSAIC_TEST_TAG": tag}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def records(folder: Path) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in CLOCK_FIELDS} for line in lines]


def finished(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def ranked_records(tmp_path: Path, args: list[str], ranks: int) -> tuple[list, list, dict]:
    """Run ``args`` in one process and on ``ranks`` ranks; check the records (without timing and
    ``bytes_between_ranks``) are the same; return the ranks' records, their bytes between
    ranks, and the ranks' config.json."""
    single = one_process(args, tmp_path / "one")
    assert single.returncode == 0, single.stderr
    code, output = finished(torchrun(ranks, [*args, "--distributed", "--out", str(tmp_path / "r")]))
    assert code == 0, output
    ours, theirs = records(tmp_path / "r"), records(tmp_path / "one")
    exchanged = [rec.pop("bytes_between_ranks") for rec in ours]
    assert ours == theirs
    return ours, exchanged, json.loads((tmp_path / "r" / "config.json").read_text())


def fragment_bytes(graphs, owner: np.ndarray, sizes: list[int]) -> int:
    """Bytes of every (sender, fragment) that a node of another rank receives, sent there once
    (DESIGN 4); ``owner[node]`` is the node's rank."""
    total = 0
    for k, size in enumerate(sizes):
        indptr, senders = graphs.in_csr(k)
        receivers = np.repeat(np.arange(len(owner)), np.diff(indptr))
        pairs = {(s, owner[r]) for s, r in zip(senders, receivers, strict=True)}
        total += sum(4 * size for s, dest in pairs if owner[s] != dest)
    return total


@pytest.mark.parametrize(
    "name, args, ranks",
    [("mf", MF, 2), ("mf", MF, 3), ("gn-lenet", GN_LENET, 2), ("gn-lenet", GN_LENET, 3)],
)
def test_ranks_write_the_records_of_one_process(tmp_path, name, args, ranks):
    if name == "mf" and not MOVIELENS.is_dir() or name == "gn-lenet" and not FASHION.is_dir():
        pytest.skip(f"no local copy of the {name} dataset")
    ours, exchanged, config = ranked_records(tmp_path, args, ranks)
    # Each round: every (sender, fragment) that a node of another rank receives goes there once
    # (DESIGN 4), and every node's loss reaches the other ranks.
    cfg = config["config"]
    assert config["ranks"] == ranks
    source = GraphSource.from_setting(
        cfg["topology"], cfg["nodes"], cfg["K"], cfg["degree"], cfg["seed"], None
    )
    # the run's own map (random within each layer by default): its fragment sizes
    resolved = ExperimentConfig.from_dict(cfg).resolved()
    sizes = Simulation(resolved, torch.device("cpu")).fragments.fragment_sizes()
    owner = np.repeat(np.arange(ranks), [hi - lo for lo, hi in blocks(cfg["nodes"], ranks)])
    for rec, sent in zip(ours, exchanged, strict=True):
        if rec["round"] == 0:
            assert sent == 0
            continue
        # every rank's losses (float64, padded to the widest block) reach every other rank
        widest = max(hi - lo for lo, hi in blocks(cfg["nodes"], ranks))
        graphs = source.graphs(rec["round"] - 1)
        expected = ranks * (ranks - 1) * widest * 8 + fragment_bytes(graphs, owner, sizes)
        assert sent == expected


@pytest.mark.skipif(not MOVIELENS.is_dir(), reason="no local MovieLens copy")
def test_sparse_steps_send_the_pieces_they_wrote_instead_of_fragments(tmp_path):
    # Plain SGD on MF writes only the batches' embedding rows: fewer bytes than the fragments.
    args = [*MF, "--momentum", "0", "--eval-every", "1"]
    ranks = 3
    ours, exchanged, config = ranked_records(tmp_path, args, ranks)
    # Replay one process; per round, the pieces (width w: X.view(-1, w) rows) its steps wrote
    # in each rank's block, and the bytes the fragments would take.
    cfg = ExperimentConfig.from_dict(config["config"]).resolved()
    simulation = Simulation(cfg, torch.device("cpu"))
    trainer, d = simulation.trainer, config["n_params"]
    assert trainer.write_widths == (20,)  # MF without biases: 20-wide embedding rows
    spans, pieces, fragments = blocks(cfg.nodes, ranks), [], []
    owner = np.repeat(np.arange(ranks), [hi - lo for lo, hi in spans])
    sizes = simulation.fragments.fragment_sizes()
    local_steps = simulation._local_steps

    def logged_local_steps(t, graphs):
        trainer.write_log = {}
        losses = local_steps(t, graphs)
        ids = torch.unique(torch.cat(trainer.write_log[20])).numpy()
        trainer.write_log = None
        pieces.append(np.bincount(owner[ids * 20 // d], minlength=ranks))
        fragments.append(fragment_bytes(graphs, owner, sizes))
        return losses

    simulation._local_steps = logged_local_steps
    for t in range(cfg.rounds):
        simulation.train_round(t)
    for rec, sent in zip(ours[1:], exchanged[1:], strict=True):
        t = rec["round"] - 1
        # every rank's pieces (int32 id, 20 float32 values; padded to the most) reach every
        # other rank, as do its piece count and losses (float64, padded to the widest block)
        shared = ranks * (ranks - 1) * int(pieces[t].max()) * (4 + 20 * 4)
        assert 0 < shared < fragments[t]
        widest = max(hi - lo for lo, hi in spans)
        assert sent == ranks * (ranks - 1) * (1 + widest) * 8 + shared


@pytest.mark.skipif(not MOVIELENS.is_dir(), reason="no local MovieLens copy")
@pytest.mark.parametrize("momentum", ["0.5", "0"])  # fragments; written pieces
def test_a_stopped_run_resumes_with_another_number_of_ranks(tmp_path, momentum):
    # Stopped after 3 records (round 20): 180 rounds of margin for the SIGTERM to land mid-run.
    args = [*MF, "--rounds", "200", "--eval-every", "10", "--checkpoint-every", "1"]
    args += ["--momentum", momentum]
    reference = one_process(args, tmp_path / "one")
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "r"
    process = torchrun(2, [*args, "--distributed", "--out", str(out)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    code, output = finished(process)
    assert code != 0 and "rank 0: stopped by SIGTERM; resume with" in output, output
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3",
        "-m", "mosaic_fast", "run", "--resume", str(out), "--quiet",
    ]  # fmt: skip
    resumed = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ours = records(out)
    for rec in ours:
        rec.pop("bytes_between_ranks")
    assert ours == records(tmp_path / "one")


@pytest.mark.skipif(not MOVIELENS.is_dir(), reason="no local MovieLens copy")
def test_a_killed_rank_stops_the_others_promptly_in_one_line(tmp_path):
    out = tmp_path / "r"
    args = [*MF, "--rounds", "100000", "--distributed", "--out", str(out)]
    process = torchrun(2, args, tag=str(tmp_path))
    deadline = time.monotonic() + 120
    while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    victim = _rank_pid(str(tmp_path), 1)
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    code, output = finished(process, timeout=120)
    assert time.monotonic() - killed < 60  # prompt: no collective waits out its timeout
    assert code != 0
    assert "Error: rank 0: lost contact with the other ranks" in output


def _rank_pid(tag: str, rank: int) -> int:
    """The pid of the worker with RANK=rank whose environment carries MOSAIC_TEST_TAG=tag."""
    wanted = {f"RANK={rank}".encode(), f"MOSAIC_TEST_TAG={tag}".encode()}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                environ = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if entry.name.isdigit() and wanted <= environ:
                return int(entry.name)
        time.sleep(0.2)
    raise AssertionError(f"no rank {rank} worker found")


def test_distributed_needs_torchrun_and_torchrun_needs_distributed(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert "needs processes started by torchrun" in launch_problem(True)
    assert launch_problem(False) is None
    for name, value in (
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("MASTER_ADDR", "x"),
        ("MASTER_PORT", "1"),
    ):
        monkeypatch.setenv(name, value)
    assert "add --distributed" in launch_problem(False)
    assert launch_problem(True) is None


def test_blocks_are_contiguous_and_balanced():
    assert blocks(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert blocks(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_more_ranks_than_nodes_is_one_line(tmp_path):
    if not MOVIELENS.is_dir():
        pytest.skip("no local MovieLens copy")
    args = [*MF, "--nodes", "2", "--degree", "1", "--distributed", "--out", str(tmp_path / "r")]
    code, output = finished(torchrun(3, args))
    assert code != 0
    assert "Error: rank 0: 3 ranks for nodes=2: every rank needs at least one node" in output


def test_asynchronous_algorithms_are_refused_with_distributed():
    from mosaic_fast.errors import MosaicValueError
    from mosaic_fast.settings import ExperimentConfig

    with pytest.raises(MosaicValueError, match="distributed=True shards synchronous rounds"):
        ExperimentConfig(algorithm="divshare", distributed=True, step_time=0.1).resolved()
