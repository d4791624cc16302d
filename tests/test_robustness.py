"""What a new user breaks: checkpoints changed on disk, full disks, last-round divergence, JSON
that only Python reads, runs too large for the machine, ranges of integer arguments, relative edge
files, costly checkpoints, repeated Ctrl-C. Each case is one line with its documented exit code,
and nothing written before is lost. Tiny synthetic data (no dataset needed)."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from data_helpers import (
    movielens_rows,
    synthetic_images,
    synthetic_ratings,
    write_ml_latest_small,
)

import mosaic_fast as mf
from mosaic_fast.cli import main
from mosaic_fast.engine import memory, run_experiment
from mosaic_fast.engine import parts as parts_module
from mosaic_fast.engine.consensus import CONSENSUS_BLOCK_BYTES
from mosaic_fast.errors import (
    CheckpointCostWarning,
    DiskFull,
    MosaicError,
    MosaicTypeError,
    MosaicValueError,
    RunDiverged,
)
from mosaic_fast.results import folder as runfolder
from mosaic_fast.results.folder import RunFolder
from mosaic_fast.results.layout import (
    CHECKPOINT,
    CLOCK_FIELDS,
    DIGEST,
    METRICS,
    RESUME,
    SUMMARY,
    run_status,
    to_json,
)
from mosaic_fast.settings import ExperimentConfig, is_reference


@pytest.fixture
def fake_data(monkeypatch):
    """Dataset loading replaced by the synthetic sets (by dataset name)."""
    sets = {"fashion-mnist": synthetic_images(), "movielens": synthetic_ratings()}
    monkeypatch.setattr(parts_module, "load_data", lambda cfg: sets[cfg.dataset])
    return sets


def ratings(**kw) -> ExperimentConfig:
    values = dict(
        dataset="movielens",
        K=2,
        nodes=6,
        degree=2,
        rounds=6,
        local_steps=2,
        batch_size=8,
        lr=0.05,
        eval_every=2,
        checkpoint_every=2,
        step_time=0.01,
    )
    return ExperimentConfig(**{**values, **kw})


def records(folder: Path) -> list[dict]:
    lines = (folder / METRICS).read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k not in CLOCK_FIELDS} for ln in lines]


def interrupted_run(folder: Path, **kw) -> None:
    """A run of ``ratings(**kw)`` as a crash during round 5 leaves it: a checkpoint of round 4,
    the records up to round 4, no summary."""

    def crash(state) -> None:
        if state.round == 5:
            raise KeyboardInterrupt  # not caught as a callback error: the process just ends

    with pytest.raises(KeyboardInterrupt):
        mf.Experiment.from_config(ratings(**kw), on_round_end=crash).run(folder, quiet=True)
    assert run_status(folder) == RESUME


def resume(folder: Path):
    return CliRunner().invoke(main, ["run", "--resume", str(folder), "--quiet"])


def one_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def strict_json(text: str):
    """json.loads refusing NaN and Infinity, as every JSON reader but Python's does."""

    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


# ------------------------------------------------------------------------------- checkpoints
def test_a_checkpoint_has_a_digest_that_sha256sum_checks(fake_data, tmp_path):
    out = tmp_path / "run"
    interrupted_run(out)
    assert (out / DIGEST).read_text() == f"{runfolder.sha256_of(out / CHECKPOINT)}  {CHECKPOINT}\n"
    assert run_status(out) == RESUME


def test_a_bit_flipped_checkpoint_is_refused_in_one_line_naming_it(fake_data, tmp_path):
    out = tmp_path / "run"
    interrupted_run(out)
    data = bytearray((out / CHECKPOINT).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    (out / CHECKPOINT).write_bytes(bytes(data))
    result = resume(out)
    assert result.exit_code == 2
    line = one_line(result)
    assert str(out / CHECKPOINT) in line and "does not match its digest" in line
    assert not (out / SUMMARY).exists()  # nothing was run from it


def test_a_single_flipped_bit_is_refused(fake_data, tmp_path):
    out = tmp_path / "run"
    interrupted_run(out)
    data = bytearray((out / CHECKPOINT).read_bytes())
    data[len(data) // 3] ^= 0x01
    (out / CHECKPOINT).write_bytes(bytes(data))
    with pytest.raises(MosaicValueError, match="does not match its digest"):
        run_experiment(ratings(), out, quiet=True, resume=True)


def test_a_deleted_digest_is_refused_and_says_how_to_continue(fake_data, tmp_path):
    out = tmp_path / "run"
    interrupted_run(out)
    (out / DIGEST).unlink()
    result = resume(out)
    assert result.exit_code == 2
    line = one_line(result)
    assert f"{DIGEST} is missing" in line and "sha256sum" in line
    # Following its advice continues the run, exactly as an uninterrupted one.
    (out / DIGEST).write_text(f"{runfolder.sha256_of(out / CHECKPOINT)}  {CHECKPOINT}\n")
    run_experiment(ratings(), out, quiet=True, resume=True)
    reference = tmp_path / "reference"
    run_experiment(ratings(), reference, quiet=True)
    assert records(out) == records(reference)


def test_a_garbled_digest_file_is_refused(fake_data, tmp_path):
    out = tmp_path / "run"
    interrupted_run(out)
    (out / DIGEST).write_text("not a digest\n")
    with pytest.raises(MosaicValueError, match="holds no SHA-256 digest"):
        run_experiment(ratings(), out, quiet=True, resume=True)


def test_a_process_killed_between_the_two_renames_still_resumes(fake_data, tmp_path, monkeypatch):
    """The new digest is listed before the new checkpoint replaces the old: a death between the
    two leaves the old checkpoint with a digest file that still lists it."""
    out = tmp_path / "run"
    real_replace = os.replace

    def die_on_checkpoint(src, dst):
        if Path(dst).name == CHECKPOINT and Path(dst).exists():
            raise KeyboardInterrupt  # the process dies here (kill -9 leaves the same files)
        real_replace(src, dst)

    monkeypatch.setattr(runfolder.os, "replace", die_on_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(ratings(), out, quiet=True)
    monkeypatch.setattr(runfolder.os, "replace", real_replace)
    assert len((out / DIGEST).read_text().splitlines()) == 2
    run_experiment(ratings(), out, quiet=True, resume=True)
    reference = tmp_path / "reference"
    run_experiment(ratings(), reference, quiet=True)
    assert records(out) == records(reference)
    assert len((out / DIGEST).read_text().splitlines()) == 1  # the next save leaves one again


# ------------------------------------------------------------------------------- full disks
def test_a_full_disk_at_a_checkpoint_is_one_line_exit_4_and_the_run_resumes(
    fake_data, tmp_path, monkeypatch
):
    out = tmp_path / "run"
    interrupted_run(out)
    before = (out / CHECKPOINT).read_bytes(), (out / DIGEST).read_bytes()
    real_save = torch.save

    def full_disk(obj, fh, *args, **kwargs):
        fh.write(b"\0" * 4096)  # some of it went out before the disk filled up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    result = resume(out)
    assert result.exit_code == 4, result.output
    line = one_line(result)
    assert str(out) in line and "no space left" in line and "MB free" in line
    assert "--resume" in line
    # The previous checkpoint and its digest survived, and no temp file is left behind.
    assert ((out / CHECKPOINT).read_bytes(), (out / DIGEST).read_bytes()) == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(torch, "save", real_save)
    run_experiment(ratings(), out, quiet=True, resume=True)
    reference = tmp_path / "reference"
    run_experiment(ratings(), reference, quiet=True)
    assert records(out) == records(reference)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fds by /proc (Linux)")
def test_a_full_disk_while_appending_metrics_names_the_folder(fake_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_fsync = os.fsync

    def full(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(METRICS):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(runfolder.os, "fsync", full)
    with pytest.raises(DiskFull) as info:
        run_experiment(ratings(), out, quiet=True)
    assert info.value.exit_code == 4 and info.value.file == METRICS
    assert info.value.folder == str(out) and info.value.free_bytes is not None
    monkeypatch.setattr(runfolder.os, "fsync", real_fsync)
    run_experiment(ratings(), out, quiet=True, resume=True)  # starts over: no checkpoint yet
    reference = tmp_path / "reference"
    run_experiment(ratings(), reference, quiet=True)
    assert records(out) == records(reference)


def test_torch_save_failures_are_traced_to_the_disk(tmp_path):
    """torch.save reports ENOSPC as a RuntimeError raised while handling the OSError."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:671] . unexpected pos"
            ) from None
    except RuntimeError as exc:
        found = runfolder._os_error_in(exc)
    # ``from None`` hides the cause from tracebacks but keeps it as the context
    assert found is not None and found.errno == errno.ENOSPC
    folder = RunFolder(tmp_path / "r")
    with folder, pytest.raises(DiskFull, match="MB free"), folder._writing(CHECKPOINT):
        raise RuntimeError("file write failed") from OSError(errno.EDQUOT, "Disk quota exceeded")


# ------------------------------------------------------------------------------- divergence, JSON
def test_divergence_in_the_last_round_is_caught(fake_data, tmp_path):
    out = tmp_path / "run"
    cfg = ratings(rounds=1, local_steps=1, lr=1e30, checkpoint_every=0)
    with pytest.raises(RunDiverged) as info:
        run_experiment(cfg, out, quiet=True)
    assert info.value.round == 1 and "at its evaluation" in info.value.reason
    summary = strict_json((out / SUMMARY).read_text())
    assert summary["status"] == "diverged" and summary["last_valid"]["round"] == 0
    for line in (out / METRICS).read_text().splitlines():
        strict_json(line)
    result = CliRunner().invoke(
        main,
        ["run", "--dataset", "movielens", "--nodes", "6", "--degree", "2", "--K", "1"]
        + ["--rounds", "1", "--local-steps", "1", "--lr", "1e30", "--step-time", "0.01"]
        + ["--out", str(tmp_path / "cli"), "--quiet"],
    )
    assert result.exit_code == 3, result.output
    assert "diverged at round 1" in one_line(result)


def test_no_json_file_holds_nan_or_infinity(fake_data, tmp_path):
    out = tmp_path / "run"

    def odd(state, metrics):
        return {"nan_metric": math.nan, "inf_metric": math.inf}

    mf.Experiment.from_config(ratings(), on_evaluate=[odd]).run(out, quiet=True)
    for name in ("config.json", SUMMARY):
        strict_json((out / name).read_text())
    for line in (out / METRICS).read_text().splitlines():
        record = strict_json(line)
        assert record["nan_metric"] is None and record["inf_metric"] is None
    assert to_json({"a": [math.nan, -math.inf, 1.5]}) == '{"a": [null, null, 1.5]}'


# ------------------------------------------------------------------------------- memory
def test_a_run_too_large_for_the_machine_is_refused_before_allocating(
    fake_data, tmp_path, monkeypatch
):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 1 << 30)

    def no_buffers(*args, **kwargs):
        raise AssertionError("a parameter buffer was allocated")

    monkeypatch.setattr(parts_module, "empty_params", no_buffers)
    monkeypatch.setattr(parts_module, "make_trainer", no_buffers)
    result = CliRunner().invoke(
        main,
        ["run", "--dataset", "fashion-mnist", "--nodes", "50000", "--K", "1", "--rounds", "1"]
        + ["--step-time", "0.01", "--out", str(tmp_path / "big"), "--quiet"],
    )
    assert result.exit_code == 2, result.output
    line = one_line(result)
    assert "nodes=50000" in line and "GiB" in line and "available" in line
    result = CliRunner().invoke(
        main,
        ["run", "--dataset", "movielens", "--embedding-dim", "1000000", "--K", "1"]
        + ["--rounds", "1", "--step-time", "0.01", "--out", str(tmp_path / "wide"), "--quiet"],
    )
    assert result.exit_code == 2 and "GiB" in one_line(result)


def test_the_memory_estimate_counts_buffers_gradients_optimizer_and_batches():
    cfg = ExperimentConfig(dataset="movielens", nodes=10, batch_size=4, momentum=0.9).resolved()
    parts = memory.run_bytes(cfg, 1000, per_sample=8)
    assert parts["parameter buffers"] == 2 * 4 * 10 * 1000
    assert parts["gradients"] == 4 * 10 * 1000
    assert parts["optimizer state"] == 4 * 10 * 1000
    assert parts["minibatches"] == 10 * 4 * 8
    assert parts["evaluation"] == 2 * 8 * 10 * 1000  # two float64 copies of X
    wide = memory.run_bytes(cfg, 10**9, per_sample=8)  # the consensus goes by blocks
    assert wide["evaluation"] == 2 * CONSENSUS_BLOCK_BYTES
    adam = ExperimentConfig(dataset="movielens", optimizer="adam").resolved()
    assert memory.optimizer_floats(adam) == 2
    assert memory.sample_bytes(synthetic_images()) == 4 * 64


# ------------------------------------------------------------------------------- kernel ranges
@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: mf.FragmentMap.random(10, 2, seed=2**64), "seed=18446744073709551616"),
        (lambda: mf.FragmentMap.blocks(10, 2, block_size=1, seed=2**64), "seed="),
        (lambda: mf.FragmentMap.contiguous(2**63, 2), "n_params=9223372036854775808"),
        (lambda: mf.FragmentMap.contiguous(10, 2**70), "K=1180591620717411303424"),
        (lambda: mf.FragmentMap.contiguous(-1, 2), "n_params=-1 must be non-negative"),
        (lambda: mf.sample_graphs(4, 1, 2, seed=2**64), "seed="),
        (lambda: mf.sample_graphs(4, 1, 2, round=-(2**70)), "round="),
        (lambda: mf.FragmentMap.random(10, 2, seed=0, layer_sizes=[2**65, 1]), "layer_sizes[0]"),
    ],
)
def test_integer_arguments_out_of_range_are_named(make, words):
    with pytest.raises(MosaicValueError) as info:
        make()
    assert words in str(info.value)


def test_a_non_integer_argument_is_a_type_error_naming_it():
    with pytest.raises(MosaicTypeError, match="K must be an int, got float"):
        mf.FragmentMap.contiguous(10, 2.5)


# The memory checks read Linux's MemAvailable; elsewhere these maps would really be allocated.
needs_meminfo = pytest.mark.skipif(
    not Path("/proc/meminfo").is_file(), reason="memory checks read /proc/meminfo (Linux)"
)


@needs_meminfo
@pytest.mark.parametrize("kind", ["contiguous", "random", "blocks"])
def test_a_fragment_map_larger_than_memory_is_refused_not_aborted(kind):
    """2**38 - 64 coordinates are in range but need 1 TiB: refused in one line before the map is
    allocated (the interpreter used to abort on the failed allocation)."""
    n = 274_877_906_880
    make = {
        "contiguous": lambda: mf.FragmentMap.contiguous(n, 2),
        "random": lambda: mf.FragmentMap.random(n, 2, seed=1),
        "blocks": lambda: mf.FragmentMap.blocks(n, 2, block_size=10, seed=1),
    }[kind]
    with pytest.raises(MosaicValueError, match=f"a fragment map of n_params={n}, K=2 needs"):
        make()


@needs_meminfo
def test_ten_billion_parameters_is_refused_in_a_subprocess_or_fits():
    """The issue's own case, in a child process so that a machine that can hold 40 GB does not
    hold it in the test process: exit 0 with one line either way, never an abort."""
    script = (
        "import mosaic_fast as mf\n"
        "try:\n"
        "    mf.FragmentMap.contiguous(10**10, 2)\n"
        "    print('fits')\n"
        "except mf.MosaicValueError as exc:\n"
        "    print(exc)\n"
    )
    if (memory.available_bytes(torch.device("cpu")) or 0) > (36 << 30):
        pytest.skip("this machine could hold the 37 GiB map; not allocating it in a test")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "needs 37.3 GiB" in proc.stdout


# ------------------------------------------------------------------------------- settings, messages
def test_an_edges_file_with_a_dot_is_a_file_not_a_module(fake_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = 6
    Path("ring.edges").write_text("".join(f"{i} {(i + 1) % n}\n" for i in range(n)))
    assert not is_reference("edges:ring.edges")
    assert is_reference("my_graphs:ring")
    cfg = ratings(topology="edges:ring.edges", rounds=2, checkpoint_every=0).resolved()
    run_experiment(cfg, tmp_path / "run", quiet=True)
    result = CliRunner().invoke(
        main,
        ["run", "--dataset", "movielens", "--nodes", "6", "--K", "2", "--rounds", "2"]
        + ["--topology", "edges:ring.edges", "--step-time", "0.01", "--out", "cli", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main,
        ["sweep", "--dataset", "movielens", "--nodes", "6", "--K", "1,2", "--rounds", "2"]
        + ["--topology", "edges:ring.edges", "--step-time", "0.01", "--out", "sw", "--quiet"],
    )
    assert result.exit_code == 0, result.output


def test_messages_name_the_flag_and_the_allowed_values(fake_data, tmp_path):
    result = CliRunner().invoke(main, ["run", "--resume", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "does not exist" in one_line(result)
    result = CliRunner().invoke(main, ["run", "--test-samples", "-1", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "at least 1, or 0" in one_line(result)
    out = tmp_path / "run"
    run_experiment(ratings(rounds=2), out, quiet=True)
    with pytest.raises(MosaicValueError, match="continue it with --resume"):
        run_experiment(ratings(rounds=2), out, quiet=True)
    with pytest.raises(MosaicValueError, match="does not exist"):
        mf.Experiment.resume(tmp_path / "nowhere")
    result = CliRunner().invoke(main, ["run", "--dist-timeout", "0.5", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "dist_timeout=0.5 must be at least 1" in one_line(result)


def test_costly_checkpoints_are_told_once_with_their_size(fake_data, tmp_path, monkeypatch):
    real_save = RunFolder.save_checkpoint

    def slow_save(self, state):
        real_save(self, state)
        time.sleep(0.3)  # a large model on a slow disk

    monkeypatch.setattr(RunFolder, "save_checkpoint", slow_save)
    with pytest.warns(CheckpointCostWarning) as caught:
        run_experiment(ratings(checkpoint_every=1), tmp_path / "run", quiet=True)
    notes = [w for w in caught if issubclass(w.category, CheckpointCostWarning)]
    assert len(notes) == 1
    assert "checkpoint_every=1" in str(notes[0].message) and " MB " in str(notes[0].message)


def test_cheap_checkpoints_are_not_told():
    from mosaic_fast.engine.experiment import _checkpoint_cost

    cfg = ratings(checkpoint_every=10)
    assert _checkpoint_cost(cfg, 0.05, 10**6, round_seconds=0.1) is None
    note = _checkpoint_cost(cfg, 2.0, 13_800_000, round_seconds=0.1)
    assert note is not None and "13.8 MB" in note and "2.0x" in note
    assert _checkpoint_cost(ratings(checkpoint_every=0), 2.0, 1, 0.1) is None


# ------------------------------------------------------------------------------- Ctrl-C
# "ready" is printed once console() has set its handler (before it, a Ctrl-C is Python's own
# KeyboardInterrupt, as for any program still starting); torch is not imported yet then.
CTRL_C_SCRIPT = """
import sys
import mosaic_fast.cli as cli
command = cli.main
def main(*args, **kwargs):
    print("ready", flush=True)
    return command(*args, **kwargs)
cli.main = main
sys.argv = ["mosaic-fast", *sys.argv[1:]]
cli.console()
"""


@pytest.fixture(scope="module")
def small_movielens(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "ml-latest-small"
    write_ml_latest_small(folder, movielens_rows(n_users=20))
    return folder


@pytest.mark.parametrize("wait_s", [0.0, 0.3, 0.8, 1.5, 3.0])
def test_ctrl_c_three_times_is_one_line_and_no_traceback(tmp_path, small_movielens, wait_s):
    """Three SIGINTs 30 ms apart, at moments from torch's import (the command imports it) to the
    rounds: one error line, exit 130, no traceback (not even from torch's exit handlers)."""
    args = ["run", "--dataset", "movielens", "--data-dir", str(small_movielens), "--nodes", "8"]
    args += ["--degree", "2", "--K", "2", "--rounds", "100000", "--step-time", "0.01"]
    args += ["--quiet", "--checkpoint-every", "50", "--out", str(tmp_path / "run")]
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(wait_s)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.03)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err and "Aborted!" not in err, err
    assert proc.returncode == 130, err
    errors = [ln for ln in err.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1, err
    assert errors[0] == "Error: interrupted" or "stopped by SIGINT" in errors[0]


DEFERRED_CTRL_C_SCRIPT = """
import signal, sys, time
from mosaic_fast.cli import _Interrupted, _interrupt_once
signal.signal(signal.SIGINT, _interrupt_once)
try:
    import torch  # the stand-in below: Ctrl-C lands mid-import
    print("import finished", flush=True)
    time.sleep(5)
    print("never interrupted", flush=True)
except _Interrupted:
    print("interrupted", flush=True)
"""


def test_a_ctrl_c_during_torchs_import_waits_for_its_end(tmp_path):
    """torch's C++ runs Python while it imports; an exception raised there aborts the process
    ("terminate called after throwing ..."), so the Ctrl-C is raised once the import is over."""
    fake = tmp_path / "torch"
    fake.mkdir()
    fake.joinpath("__init__.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.3)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED_CTRL_C_SCRIPT], env=env, capture_output=True, text=True
    )
    assert done.stdout.split() == ["import", "finished", "interrupted"], done.stdout + done.stderr


def test_a_full_disk_is_a_mosaic_error_with_its_own_exit_code():
    assert issubclass(DiskFull, MosaicError) and DiskFull.exit_code == 4


# ------------------------------------------------------------------------------- plots, wheel check
def test_bands_of_few_seeds_stay_within_what_the_quantity_can_take():
    from mosaic_fast.results.plot_parts import band

    mean, half = np.array([0.02, 0.5, 0.99]), np.array([0.1, 0.1, 0.1])
    low, high = band(mean, half, "node_mean", "accuracy")
    assert low.min() >= 0 and high.max() <= 1
    assert list(low) == pytest.approx([0.0, 0.4, 0.89])
    low, _ = band(np.array([0.01]), np.array([0.2]), "node_std", "my_metric")
    assert low[0] == 0.0
    low, high = band(np.array([-3.0]), np.array([1.0]), "node_mean", "my_metric")
    assert (low[0], high[0]) == (-4.0, -2.0)  # a user's metric may be negative


def test_the_wheel_checks_venv_does_not_see_a_development_install(tmp_path):
    """.ci/wheel's venv shares the base environment's packages; its sitecustomize hides the
    source tree that a development install (a .pth file) puts on sys.path."""
    if Path(mf.__file__).parents[1].name in ("site-packages", "dist-packages"):
        pytest.skip("mosaic-fast is not a development install here")
    script = (Path(__file__).parents[1] / ".ci" / "wheel").read_text()
    start = script.index('"""Written by .ci/wheel')
    code = script[start : script.index("\nPY\n", start)]
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    python = str(venv / "bin" / "python")
    probe = (
        "import importlib.util\n"
        "print(importlib.util.find_spec('mosaic_fast') is None, "
        "importlib.util.find_spec('numpy') is not None)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(code: str) -> str:
        return subprocess.run(
            [python, "-c", code], capture_output=True, text=True, env=env, check=True
        ).stdout.strip()

    assert run(probe) == "False True"  # without it, the venv sees the source tree
    purelib = run("import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(purelib) / "sitecustomize.py").write_text(code + "\n")
    assert run(probe) == "True True"  # mosaic_fast gone, the base's numpy still there
