"""A run's life through its folder, tested with real processes on real MovieLens (fast: matrix
factorisation rounds take milliseconds): kill -9 and resume, a second writer, SIGINT/SIGTERM,
divergence, tampered checkpoints, folders that are not runs."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from data_helpers import SHARED_DATA

from mosaic_fast.cli import main
from mosaic_fast.engine import run_experiment
from mosaic_fast.errors import RunDiverged, RunInterrupted
from mosaic_fast.results.folder import RunFolder, sha256_of
from mosaic_fast.results.layout import (
    CHECKPOINT,
    CLOCK_FIELDS,
    DIGEST,
    DIVERGED,
    METRICS,
    SUMMARY,
    run_status,
)
from mosaic_fast.settings import ExperimentConfig

MOVIELENS = SHARED_DATA / "ml-latest-small"
pytestmark = pytest.mark.skipif(
    not (MOVIELENS / "ratings.csv").is_file(), reason="real MovieLens not found beside the checkout"
)
# Small and quick, but long enough (a few seconds) to be interrupted from outside.
ARGS = [
    "--dataset", "movielens", "--data-dir", str(MOVIELENS), "--K", "4", "--local-steps", "2",
    "--step-time", "0.01",
    "--eval-every", "5", "--checkpoint-every", "7",
]  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mosaic_fast", "run", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MOSAIC_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **(env or {})},
    )


def records(folder: Path) -> list[dict]:
    lines = (folder / METRICS).read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k not in CLOCK_FIELDS} for ln in lines]


def wait_for_lines(folder: Path, count: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (folder / METRICS).is_file() and len(
            (folder / METRICS).read_text().splitlines()
        ) >= count:
            return
        if proc.poll() is not None:
            raise AssertionError(f"run ended early: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError(f"no {count} metrics lines in {timeout} s")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = cli(*ARGS, "--rounds", "200", "--out", str(out))
    assert proc.wait(timeout=300) == 0, proc.communicate()
    return records(out)


def test_kill_9_at_any_moment_then_resume_equals_the_uninterrupted_run(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = cli(*ARGS, "--rounds", "200", "--out", str(out))
    wait_for_lines(out, 9, proc)  # past the checkpoints of rounds 7..35
    proc.kill()
    proc.wait()
    assert not (out / SUMMARY).exists() and (out / CHECKPOINT).exists()
    resumed = cli("--resume", str(out))
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    assert records(out) == uninterrupted


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_round_checkpoints_and_says_how_to_resume(
    tmp_path, uninterrupted, signum, code
):
    out = tmp_path / "run"
    proc = cli(*ARGS, "--rounds", "200", "--out", str(out))
    wait_for_lines(out, 1, proc)  # round 0 is written: the first round is under way
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1].endswith(f"resume with: mosaic-fast run --resume {out}")
    assert len(err.strip().splitlines()) == 1
    assert (out / CHECKPOINT).exists() and not (out / SUMMARY).exists()
    resumed = cli("--resume", str(out))
    assert resumed.wait(timeout=300) == 0, resumed.communicate()
    assert records(out) == uninterrupted


def test_a_second_process_on_a_folder_in_use_exits_2_naming_folder_and_pid(tmp_path):
    out = tmp_path / "run"
    first = cli(*ARGS, "--rounds", "100000", "--out", str(out))
    try:
        wait_for_lines(out, 2, first)
        lines_before = (out / METRICS).read_text()
        second = cli("--resume", str(out))
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert err.strip() == f"Error: run folder {str(out)!r} is in use by process {first.pid}"
        assert (out / METRICS).read_text().startswith(lines_before)  # nothing rewritten
    finally:
        first.kill()
        first.wait()


def test_lock_is_released_when_the_holder_leaves(tmp_path):
    with RunFolder(tmp_path / "r"):
        pass
    with RunFolder(tmp_path / "r"):
        pass


def tiny(**kw) -> ExperimentConfig:
    values = dict(
        dataset="movielens",
        data_dir=str(MOVIELENS),
        K=2,
        rounds=30,
        local_steps=2,
        eval_every=5,
        checkpoint_every=5,
        step_time=0.01,
    )
    return ExperimentConfig(**{**values, **kw})


def test_divergence_stops_the_run_keeps_valid_lines_and_is_recorded(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunDiverged, match=r"^run diverged at round \d+ \(training loss (nan|inf)\); try a smaller --lr \(now 50\.0\)$"):  # fmt: skip
        run_experiment(tiny(lr=50.0), out, quiet=True)
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["status"] == DIVERGED and summary["complete"] is False
    assert summary["round"] >= 1 and summary["reason"].startswith("training loss ")
    lines = records(out)
    assert lines and all(r["round"] < summary["round"] for r in lines)
    assert all(r["node_mean"] == r["node_mean"] for r in lines)  # no NaN was written
    assert run_status(out) == DIVERGED


def test_diverged_run_exits_3_and_resuming_it_says_so(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", *ARGS, "--rounds", "30", "--lr", "50", "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 3, result.output
    assert result.output.strip().startswith("Error: run diverged at round ")
    assert result.output.strip().endswith("try a smaller --lr (now 50.0)")
    again = CliRunner().invoke(main, ["run", "--resume", str(out), "--quiet"])
    assert again.exit_code == 3 and again.output.startswith("Error: run diverged at round ")


def test_signal_during_an_evaluation_or_a_checkpoint_write_finishes_them_first(
    tmp_path, monkeypatch
):
    from mosaic_fast.engine import rounds as simulation

    original_metrics = simulation.Simulation.metrics
    calls = []

    def metrics_interrupted(self):
        calls.append(self.rounds_done)
        if self.rounds_done == 10:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of this evaluation
        return original_metrics(self)

    monkeypatch.setattr(simulation.Simulation, "metrics", metrics_interrupted)
    out = tmp_path / "eval"
    with pytest.raises(RunInterrupted) as info:
        run_experiment(tiny(), out, quiet=True)
    assert info.value.exit_code == 130
    assert [r["round"] for r in records(out)] == [0, 5, 10]  # the evaluation was written
    assert run_status(out) == "resume"

    original_save = RunFolder.save_checkpoint

    def save_interrupted(self, state):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the checkpoint is being written
        original_save(self, state)

    monkeypatch.setattr(simulation.Simulation, "metrics", original_metrics)
    monkeypatch.setattr(RunFolder, "save_checkpoint", save_interrupted)
    out = tmp_path / "ckpt"
    with pytest.raises(RunInterrupted) as info:
        run_experiment(tiny(), out, quiet=True)
    assert info.value.exit_code == 143
    monkeypatch.setattr(RunFolder, "save_checkpoint", original_save)
    run_experiment(tiny(), out, quiet=True, resume=True)
    reference = tmp_path / "ref"
    run_experiment(tiny(), reference, quiet=True)
    assert records(out) == records(reference)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_tampered_checkpoint_is_refused_in_one_line_and_never_executed(tmp_path):
    out = tmp_path / "run"
    run_experiment(tiny(rounds=5), out, quiet=True)
    (out / SUMMARY).unlink()
    marker = tmp_path / "pwned"
    (out / CHECKPOINT).write_bytes(pickle.dumps({"config": _Exploit(marker)}))
    result = CliRunner().invoke(main, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "does not match its digest" in line
    # With a digest that matches (someone rewrote both), the unpickler still refuses it.
    (out / DIGEST).write_text(f"{sha256_of(out / CHECKPOINT)}  {CHECKPOINT}\n")
    result = CliRunner().invoke(main, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "is not a valid mosaic-fast checkpoint" in line
    assert not marker.exists()
    (out / CHECKPOINT).write_bytes(b"garbage")
    (out / DIGEST).write_text(f"{sha256_of(out / CHECKPOINT)}  {CHECKPOINT}\n")
    result = CliRunner().invoke(main, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 2 and "is not a valid mosaic-fast checkpoint" in result.output


def test_resume_of_a_finished_run_returns_its_table(tmp_path):
    out = tmp_path / "run"
    run_experiment(tiny(rounds=5), out, quiet=True)
    before = (out / METRICS).read_text()
    result = CliRunner().invoke(main, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (out / METRICS).read_text() == before


def test_resume_of_a_run_written_by_another_version_is_one_line(tmp_path):
    out = tmp_path / "run"
    run_experiment(tiny(rounds=5), out, quiet=True)
    head = json.loads((out / "config.json").read_text())
    head["config"]["gossip_warp"] = 3
    head["versions"]["mosaic_fast"] = "9.9.9"
    (out / "config.json").write_text(json.dumps(head))
    result = CliRunner().invoke(main, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "written by mosaic-fast 9.9.9" in result.output and "gossip_warp" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_folder_holding_something_else_is_refused(tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    result = CliRunner().invoke(main, ["run", *ARGS, "--rounds", "2", "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 2
    assert "holds files that are not part of a mosaic-fast run (chapter1.tex)" in result.output
    assert (out / "chapter1.tex").read_text() == "precious"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["run", *ARGS, "--rounds", "2", "--out", str(blocker / "r"), "--quiet"])  # fmt: skip
    assert result.exit_code == 2 and "cannot create run folder" in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_one_line(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        result = CliRunner().invoke(main, ["run", *ARGS, "--rounds", "2", "--out", str(parent / "r"), "--quiet"])  # fmt: skip
        assert result.exit_code == 2 and "Permission denied" in result.output
    finally:
        parent.chmod(0o755)


def test_a_sweep_records_diverged_cells_and_does_not_retry_them(tmp_path, monkeypatch):
    from mosaic_fast import sweep as sw

    out = tmp_path / "sweep"
    grid = sw.SweepGrid(K=(1, 2))
    base = tiny(lr=50.0, rounds=10)
    with pytest.warns(sw.DivergedCellsWarning, match="2 cell"):
        table = sw.run_sweep(grid, out, base=base, quiet=True)
    assert list(table["n_diverged"]) == [1, 1] and list(table["n_seeds"]) == [0, 0]
    assert "| diverged |" in (out / "summary.md").read_text()
    ran = []
    monkeypatch.setattr(sw, "run_experiment", lambda *a, **k: ran.append(a))
    with pytest.warns(sw.DivergedCellsWarning):
        sw.run_sweep(grid, out, base=base, quiet=True)
    assert ran == []


def test_a_k_list_runs_every_k_even_when_one_diverges_and_exits_3(tmp_path):
    out = tmp_path / "runs"
    args = ["run", *ARGS, "--K", "1,2", "--rounds", "30", "--lr", "50", "--out", str(out), "--quiet"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    assert result.output.count("diverged at round") == 3  # two table rows, one error line
    assert run_status(out / "K=1") == DIVERGED and run_status(out / "K=2") == DIVERGED


def test_discard_unstarted_removes_only_a_dead_runs_own_files(tmp_path):
    from mosaic_fast.results.folder import discard_unstarted

    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / "config.json").write_text("{}")
    (dead / "metrics.jsonl").write_text('{"round": 0}\n')
    (dead / ".checkpoint.pt.x1.tmp").write_bytes(b"half")
    discard_unstarted(dead)
    assert not dead.exists()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "metrics.jsonl").write_text("")
    (mixed / "notes.txt").write_text("mine")
    discard_unstarted(mixed)
    assert (mixed / "notes.txt").exists()
    resumable = tmp_path / "resumable"
    resumable.mkdir()
    (resumable / "checkpoint.pt").write_bytes(b"x")
    discard_unstarted(resumable)
    assert (resumable / "checkpoint.pt").exists()


def test_discard_unstarted_leaves_a_live_run_before_its_first_checkpoint_alone(tmp_path):
    from mosaic_fast.results.folder import discard_unstarted

    live = tmp_path / "live"
    with RunFolder(live):  # held as a running process holds it (flock: per open file)
        (live / "config.json").write_text("{}")
        (live / "metrics.jsonl").write_text('{"round": 0}\n')
        discard_unstarted(live)
        assert (live / "metrics.jsonl").exists()
    discard_unstarted(live)  # the lock released: now a dead run's leftovers
    assert not live.exists()


def test_bad_input_found_in_the_open_folder_leaves_no_folder_behind(tmp_path):
    # A network file is read once the run folder is open: the folder this run created goes,
    # one the user made stays as it was.
    network = tmp_path / "net.csv"
    rows = ["node,step_time_s,uplink_bps,downlink_bps,latency_s", "0,0.01,0,1e6,0.001"]
    rows += [f"{i},0.01,1e6,1e6,0.001" for i in range(1, 4)]
    network.write_text("\n".join(rows) + "\n")
    args = ["--dataset", "movielens", "--data-dir", str(MOVIELENS), "--nodes", "4", "--degree", "2"]
    args += ["--rounds", "2", "--quiet", "--algorithm", "divshare", "--network", str(network)]
    out = tmp_path / "new"
    result = CliRunner().invoke(main, ["run", *args, "--out", str(out)])
    assert result.exit_code == 2 and "uplink_bps=0 must be positive" in result.output
    assert not out.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    result = CliRunner().invoke(main, ["run", *args, "--out", str(mine)])
    assert result.exit_code == 2 and mine.is_dir()
