"""Every run folder under docs/results reproduces from its own config.json, bit for bit.

A folder's records are re-run from ``config.json``'s ``"config"`` (only ``data_dir`` is replaced by
the local copy of the dataset) and compared field by field, exactly, except ``wall_time_s``.
torch's CPU kernels round differently per instruction set, so the re-run happens in a subprocess
pinned, before torch is imported, to the instruction set that produced the folder (its
``versions.torch_cpu_capability``; folders written before that field existed were made on AVX2)
and to its torch thread count (``versions.torch_num_threads``; one where not recorded: the
reproduction script pinned one thread).

The default suite re-runs one MovieLens cell in full and a prefix of one Fashion-MNIST cell
(records do not depend on ``rounds``, so a shorter run reproduces the earlier records); ``-m slow``
re-runs every folder in full.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from data_helpers import SHARED_DATA

from mosaic_fast.data import locate_dataset
from mosaic_fast.runfolder import CLOCK_FIELDS

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
DATA_DIR = os.environ.get("MOSAIC_TEST_DATA") or (
    str(SHARED_DATA) if SHARED_DATA.is_dir() else None
)
# sim_time_s: the published folders predate the simulated clock, and without --step-time it is
# measured on the machine at hand, like wall_time_s.
TIMING_FIELDS = CLOCK_FIELDS | {"sim_time_s"}
# Instruction set -> (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, /proc/cpuinfo flags it needs).
ISA_PINS = {
    "AVX2": ("avx2", "AVX2", {"avx2", "fma"}),
    "AVX512": ("avx512", "AVX512_CORE", {"avx512f", "avx512bw", "avx512dq", "avx512vl"}),
}
ISA_BEFORE_RECORDING = "AVX2"
# Matrix factorisation re-runs bit for bit whatever the CPU kernels (checked on AVX2 and AVX512).
ISA_INDEPENDENT_DATASETS = frozenset({"movielens"})

RERUN_SCRIPT = """
import json, sys
from mosaic_fast.config import ExperimentConfig
from mosaic_fast.engine import run_experiment
config = json.loads(open(sys.argv[1]).read())
run_experiment(ExperimentConfig.from_dict(config), sys.argv[2], quiet=True)
"""

ALL_FOLDERS = sorted(p.parent for p in RESULTS.rglob("config.json"))


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def pinned_env(published: dict, dataset: str) -> dict[str, str]:
    """Environment of the re-run: the torch threads and CPU kernels that wrote the folder."""
    versions = published.get("versions", {})
    threads = str(versions.get("torch_num_threads", 1))
    env = {
        **os.environ,
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "MOSAIC_NUM_THREADS": "1",  # the kernel is thread-count invariant
    }
    isa = versions.get("torch_cpu_capability", ISA_BEFORE_RECORDING)
    if isa in ISA_PINS and ISA_PINS[isa][2] <= cpu_flags():
        aten, onednn, _ = ISA_PINS[isa]
        env.update(ATEN_CPU_CAPABILITY=aten, ONEDNN_MAX_CPU_ISA=onednn)
    elif dataset not in ISA_INDEPENDENT_DATASETS:
        pytest.skip(
            f"{dataset} results were made with torch's {isa} CPU kernels, which this "
            f"{platform.machine()} CPU cannot run; other kernels round differently"
        )
    return env


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rerun(folder: Path, tmp_path: Path, rounds: int | None = None) -> list[dict]:
    """Re-run ``folder``'s config (``rounds`` overrides its length) in a pinned subprocess."""
    published = json.loads((folder / "config.json").read_text())
    config = dict(published["config"])
    local = locate_dataset(config["dataset"], DATA_DIR)
    if local is None:
        pytest.skip(f"no local copy of {config['dataset']}")
    config["data_dir"] = str(local)
    if rounds is not None:
        config["rounds"] = rounds
    env = pinned_env(published, config["dataset"])
    config_path, out = tmp_path / "config.json", tmp_path / "run"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(
        [sys.executable, "-c", RERUN_SCRIPT, str(config_path), str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"re-run of {folder} failed:\n{proc.stderr[-3000:]}")
    return read_records(out / "metrics.jsonl")


def assert_reproduced(folder: Path, records: list[dict]) -> None:
    """Every published record up to the re-run's last round is in ``records``, equal but for timing."""
    last = records[-1]["round"]
    published = [r for r in read_records(folder / "metrics.jsonl") if r["round"] <= last]
    assert published, f"{folder} has no records up to round {last}"
    by_round = {r["round"]: r for r in records}
    for want in published:
        got = by_round.get(want["round"])
        assert got is not None, f"{folder}: the re-run has no record for round {want['round']}"
        # Compared as JSON text: exact for floats (repr round-trips) and NaN equals NaN.
        differ = {
            k: (v, got.get(k, "<missing>"))
            for k, v in want.items()
            if k not in TIMING_FIELDS and json.dumps(got.get(k, "<missing>")) != json.dumps(v)
        }
        assert not differ, f"{folder} round {want['round']}: (published, re-run) {differ}"


def test_movielens_cell_reproduces(tmp_path):
    folder = RESULTS / "movielens" / "K=8_seed=0"
    assert_reproduced(folder, rerun(folder, tmp_path))


def test_fashion_mnist_cell_prefix_reproduces(tmp_path):
    folder = RESULTS / "fmnist-alpha0.1" / "K=16_alpha=0.1_seed=0"
    records = rerun(folder, tmp_path, rounds=10)
    assert [r["round"] for r in records] == [0, 10]
    assert_reproduced(folder, records)


def test_published_folders_are_found():
    datasets = {
        json.loads((f / "config.json").read_text())["config"]["dataset"] for f in ALL_FOLDERS
    }
    assert {"movielens", "fashion-mnist", "shakespeare"} <= datasets
    assert all((f / "metrics.jsonl").is_file() for f in ALL_FOLDERS)


@pytest.mark.slow
@pytest.mark.parametrize(
    "folder", ALL_FOLDERS, ids=[str(f.relative_to(RESULTS)) for f in ALL_FOLDERS]
)
def test_published_folder_reproduces(folder, tmp_path):
    records = rerun(folder, tmp_path)
    published_rounds = [r["round"] for r in read_records(folder / "metrics.jsonl")]
    assert [r["round"] for r in records] == published_rounds
    assert_reproduced(folder, records)
