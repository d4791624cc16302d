"""Distributed overhead on one machine: 2 gloo ranks x 1 thread against 1 process x 2 threads.

Samples per second of the fastest round after the first (``wall_time_s`` of the records: local
steps, the row exchange and aggregation; evaluation excluded) for MF and GN-LeNet at n = 64. Target: the two ranks reach at
least 0.8x the single process. Runs as a smoke test (tiny, 2 rounds) with --benchmark-disable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mosaic_fast.data import locate_dataset

from .conftest import SUMMARY

SETTINGS = {
    "mf": ["--dataset", "movielens", "--local-steps", "10"],
    "gn-lenet": ["--dataset", "fashion-mnist", "--local-steps", "2", "--batch-size", "16"],
}


def _env(threads: int) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        env.pop(name, None)
    return env


def _samples_per_s(out: Path) -> float:
    """Samples per second of the fastest round after the first (which pays one-time costs:
    first touches of the buffers, thread pools, kernel selection), from the records' training
    time ``wall_time_s`` (local steps, row exchange, aggregation; evaluation excluded)."""
    config = json.loads((out / "config.json").read_text())["config"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    wall = [json.loads(line)["wall_time_s"] for line in lines]  # one record per round
    fastest = min(b - a for a, b in zip(wall[1:-1], wall[2:], strict=True))
    return config["nodes"] * config["local_steps"] * config["batch_size"] / fastest


@pytest.mark.parametrize("model", ["mf", "gn-lenet"])
def test_two_ranks_against_one_process(tmp_path, full_size, model):
    if locate_dataset(SETTINGS[model][1]) is None:  # $MOSAIC_DATA, system folders, the cache
        pytest.skip(f"no local copy of {SETTINGS[model][1]} (set MOSAIC_DATA)")
    nodes, rounds = (64, 20) if full_size else (4, 3)
    args = [
        *SETTINGS[model], "--nodes", str(nodes), "--degree", "2" if nodes < 8 else "8",
        "--rounds", str(rounds), "--eval-every", "1", "--test-samples", "100",
        "--step-time", "0.01", "--quiet",
    ]  # fmt: skip
    single = [sys.executable, "-m", "mosaic_fast", "run", *args, "--out", str(tmp_path / "one")]
    subprocess.run(single, env=_env(2), check=True, capture_output=True, timeout=1800)
    ranks = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "mosaic_fast", "run", *args, "--distributed", "--out", str(tmp_path / "two"),
    ]  # fmt: skip
    subprocess.run(ranks, env=_env(1), check=True, capture_output=True, timeout=1800)
    one, two = _samples_per_s(tmp_path / "one"), _samples_per_s(tmp_path / "two")
    row = {
        "bench": f"distributed-{model}",
        "nodes": nodes,
        "one_process_2_threads_samples_per_s": f"{one:.0f}",
        "two_ranks_1_thread_samples_per_s": f"{two:.0f}",
        "ratio": f"{two / one:.2f}",
    }
    SUMMARY.append(row)
    records = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(records[-1])["bytes_between_ranks"] > 0
