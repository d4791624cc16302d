"""Experiment trackers with the real libraries, read back from what they wrote: TensorBoard's
event reader, the MLflow client, W&B's offline run file. Values equal ``metrics.jsonl``; sweeps
group their cells; resume continues the same tracked run; a failing or missing tracker is one
line and loses nothing."""

from __future__ import annotations

import json
import logging
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from data_helpers import synthetic_images
from torch import nn

import mosaic_fast as mf
from mosaic_fast.cli import main
from mosaic_fast.errors import CallbackError, MosaicTypeError, MosaicValueError
from mosaic_fast.results.layout import read_metrics
from mosaic_fast.tracking import RUNS_FILE, TRACKING_DIR, build_trackers, wait

IMAGES = synthetic_images()
TRAIN = (IMAGES.x_train, IMAGES.y_train)
TEST = (IMAGES.x_test, IMAGES.y_test)
SMALL = dict(nodes=4, K=2, degree=2, rounds=4, eval_every=1, local_steps=2, batch_size=8)
SCALARS = ("node_mean", "node_std", "avg_model", "consensus_distance", "sim_time_s")


@pytest.fixture(autouse=True)
def trackers_finished():
    """No test leaves trackers writing into the next one."""
    yield
    assert wait()


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))


@pytest.fixture(scope="session")
def cache_home(tmp_path_factory) -> Path:
    """One cache folder for the session (MLflow's empty store is made once there)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path, cache_home):
    """W&B offline, never logged in; MLflow's experiment name fixed; caches in the session's."""
    monkeypatch.setenv("MOSAIC_CACHE", str(cache_home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)


def experiment(trackers, **kw) -> mf.Experiment:
    return mf.Experiment(model=mlp, train=TRAIN, test=TEST, trackers=trackers, **{**SMALL, **kw})


# -- readers of what each library wrote -------------------------------------------------------


def tensorboard_scalars(logdir: Path) -> dict[str, dict[int, float]]:
    wait()  # the trackers finish in the background after the run returns
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}


def tensorboard_text(logdir: Path, tag: str) -> list[str]:
    wait()  # the trackers finish in the background after the run returns
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    return [e.tensor_proto.string_val[0].decode() for e in acc.Tensors(f"{tag}/text_summary")]


def wandb_records(run_dir: Path) -> list:
    wait()  # the trackers finish in the background after the run returns
    """The records of an offline run's ``run-<id>.wandb`` file (W&B's LevelDB-style log of
    protobuf records: a 7-byte header, then 32 KiB blocks of chunks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = run_dir.glob("run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf, out = 7, 32768, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            out.append(record)
    return out


def wandb_history(run_dir: Path) -> dict[int, dict]:
    rows = {}
    for r in wandb_records(run_dir):
        if r.WhichOneof("record_type") == "history":
            row = {
                i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item
            }
            rows[row["_step"]] = row
    return rows


def wandb_run(run_dir: Path):
    return next(r.run for r in wandb_records(run_dir) if r.WhichOneof("record_type") == "run")


def wandb_summary(run_dir: Path) -> dict:
    out = {}
    for r in wandb_records(run_dir):
        if r.WhichOneof("record_type") == "summary":
            for i in r.summary.update:
                out[i.key or "/".join(i.nested_key)] = json.loads(i.value_json)
    return out


def mlflow_client(out: Path):
    wait()  # the trackers finish in the background after the run returns
    from mlflow import MlflowClient

    runs = json.loads((out / TRACKING_DIR / RUNS_FILE).read_text())
    return MlflowClient(tracking_uri=runs["mlflow"]["uri"]), runs["mlflow"]["run_id"]


# -- what every tracker receives --------------------------------------------------------------


def test_every_tracker_gets_settings_records_status_and_figures(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    out = tmp_path / "run"
    experiment("tensorboard,mlflow,wandb").run(out, quiet=True)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2, 3, 4]

    board = tensorboard_scalars(out / TRACKING_DIR / "tensorboard")
    for key in SCALARS:
        assert board[key] == {r["round"]: np.float32(r[key]) for r in records}, key
    assert tensorboard_text(out / TRACKING_DIR / "tensorboard", "status") == ["complete"]

    client, run_id = mlflow_client(out)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mosaic_fast.status"] == "complete"
    assert run.data.params["K"] == "2" and run.data.params["nodes"] == "4"
    for key in SCALARS:
        history = client.get_metric_history(run_id, key)
        assert {m.step: m.value for m in history} == {r["round"]: r[key] for r in records}, key
    figures = [f.path for f in client.list_artifacts(run_id, "figures")]
    assert figures and all(p.endswith(".png") for p in figures)

    (wandb_dir,) = (out / TRACKING_DIR / "wandb").glob("offline-run-*")
    rows = wandb_history(wandb_dir)
    for key in SCALARS:
        assert {s: row[key] for s, row in rows.items()} == {r["round"]: r[key] for r in records}
    config = {u.key: json.loads(u.value_json) for u in wandb_run(wandb_dir).config.update}
    assert config["K"] == 2 and config["dataset"] == "<data>"
    assert wandb_summary(wandb_dir)["status"] == "complete"
    assert list((wandb_dir / "files" / "figures").glob("*.png"))


def test_sweep_cells_are_grouped(tmp_path):
    """A sweep's cells: TensorBoard one subfolder per cell under the sweep folder, MLflow one
    parent run, W&B one group."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    sweep = tmp_path / "sweep"
    for k in (1, 2):
        experiment("tensorboard,mlflow,wandb", K=k).run(sweep / f"K={k}", quiet=True, group=sweep)
    wait()
    logdirs = sorted(p.parent.relative_to(sweep) for p in sweep.rglob("events.out.tfevents.*"))
    assert [str(p) for p in logdirs] == ["K=1/tracking/tensorboard", "K=2/tracking/tensorboard"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{sweep / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mosaic-fast").experiment_id])
    parents = [r for r in runs if r.data.tags.get("mosaic_fast.parent") == "true"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.run_name == "sweep"
    assert sorted(r.info.run_name for r in children) == ["K=1", "K=2"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}

    for k in (1, 2):
        (wandb_dir,) = (sweep / f"K={k}" / TRACKING_DIR / "wandb").glob("offline-run-*")
        assert wandb_run(wandb_dir).run_group == "sweep"


def test_the_sweep_command_groups_its_cells(tmp_path):
    pytest.importorskip("tensorboard")
    result = CliRunner().invoke(
        main,
        ["sweep", "--dataset", "test_tracking:tiny_data", "--model", "test_tracking:mlp",
         "--K", "1,2", "--nodes", "4", "--degree", "2", "--rounds", "2", "--eval-every", "1",
         "--local-steps", "1", "--batch-size", "8", "--tracker", "tensorboard",
         "--out", str(tmp_path / "s"), "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "s").rglob("events.out.tfevents.*"))) == 2


def tiny_data():
    return TRAIN, TEST


# -- resume -------------------------------------------------------------------------------------


def stop_after(round_: int):
    def on_round_end(state):
        if state.round == round_:
            raise RuntimeError("stop here")

    return on_round_end


def test_resume_continues_the_same_tracked_run(tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    out = tmp_path / "run"
    with pytest.raises(CallbackError):
        experiment("tensorboard,mlflow,wandb", on_round_end=stop_after(2)).run(out, quiet=True)
    wait()
    ids = json.loads((out / TRACKING_DIR / RUNS_FILE).read_text())
    client, run_id = mlflow_client(out)
    assert client.get_run(run_id).info.status == "FAILED"
    mf.Experiment.resume(out, quiet=True, model=mlp, train=TRAIN, test=TEST)
    wait()
    assert json.loads((out / TRACKING_DIR / RUNS_FILE).read_text()) == ids
    records = read_metrics(out / "metrics.jsonl")
    assert [r["round"] for r in records] == [0, 1, 2, 3, 4]

    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mosaic_fast.status"] == "complete"
    assert len(client.search_runs([run.info.experiment_id])) == 1
    history = client.get_metric_history(run_id, "node_mean")
    assert {m.step: m.value for m in history} == {r["round"]: r["node_mean"] for r in records}

    board = tensorboard_scalars(out / TRACKING_DIR / "tensorboard")
    assert board["node_mean"] == {r["round"]: np.float32(r["node_mean"]) for r in records}

    wandb_dirs = sorted((out / TRACKING_DIR / "wandb").glob("offline-run-*"))
    assert {wandb_run(d).run_id for d in wandb_dirs} == {ids["wandb"]["id"]}
    rows = {}
    for d in wandb_dirs:  # wandb sync merges the two offline segments of the one run
        rows.update(wandb_history(d))
    assert {s: row["node_mean"] for s, row in rows.items()} == {
        r["round"]: r["node_mean"] for r in records
    }


def test_resume_after_the_event_files_were_deleted_writes_them_again(tmp_path, caplog):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    with pytest.raises(CallbackError):
        experiment("tensorboard", on_round_end=stop_after(2)).run(out, quiet=True)
    wait()
    for events in (out / TRACKING_DIR / "tensorboard").glob("events.out.tfevents.*"):
        events.unlink()
    with caplog.at_level(logging.WARNING, logger="mosaic_fast"):
        mf.Experiment.resume(out, quiet=True, model=mlp, train=TRAIN, test=TEST)
        wait()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "event files" in warnings[0], warnings
    records = read_metrics(out / "metrics.jsonl")
    board = tensorboard_scalars(out / TRACKING_DIR / "tensorboard")
    assert board["node_mean"] == {r["round"]: np.float32(r["node_mean"]) for r in records}


# -- bad input and failing trackers ------------------------------------------------------------


class Flaky:
    """A tracker that raises at its second record."""

    name = "flaky"

    def __init__(self) -> None:
        self.logged: list[int] = []

    def start(self, run):
        return None

    def log(self, scalars, step):
        if step == 1:
            raise ConnectionError("server went away")
        self.logged.append(step)

    def finish(self, status, figures):
        self.logged.append(status)


def test_a_tracker_that_raises_mid_run_is_dropped_once_and_the_run_finishes(tmp_path, caplog):
    pytest.importorskip("tensorboard")
    flaky = Flaky()
    with caplog.at_level(logging.WARNING, logger="mosaic_fast"):
        result = experiment(["tensorboard", flaky]).run(tmp_path / "run", quiet=True)
    assert result.summary["status"] == "complete"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "tracker flaky failed (log, round 1): ConnectionError: server went away; the run goes "
        "on without it (its own files are complete)"
    ]
    assert flaky.logged == [0]
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 5
    board = tensorboard_scalars(tmp_path / "run" / TRACKING_DIR / "tensorboard")
    assert sorted(board["node_mean"]) == [0, 1, 2, 3, 4]


def test_a_tracker_that_raises_under_the_cli_is_one_line_and_exit_0(tmp_path, monkeypatch, caplog):
    pytest.importorskip("tensorboard")
    from mosaic_fast.tracking import tensorboard as tb

    def broken(self, scalars, step):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tb.TensorBoardTracker, "log", broken)
    with caplog.at_level(logging.WARNING, logger="mosaic_fast"):
        result = CliRunner().invoke(main, [*tiny_run(tmp_path / "r"), "--tracker", "tensorboard"])
    assert result.exit_code == 0, result.output
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "tracker tensorboard failed (log, round 0): OSError: [Errno 28] No space left "
        "on device; the run goes on without it (its own files are complete)"
    ]
    assert len(read_metrics(tmp_path / "r" / "metrics.jsonl")) == 3


def tiny_run(out: Path) -> list[str]:
    return ["run", "--dataset", "test_tracking:tiny_data", "--model", "test_tracking:mlp",
            "--K", "2", "--nodes", "4", "--degree", "2", "--rounds", "2", "--eval-every", "1",
            "--local-steps", "1", "--batch-size", "8", "--quiet", "--out", str(out)]  # fmt: skip


def test_a_misspelt_tracker_is_one_line_exit_2(tmp_path):
    result = CliRunner().invoke(main, [*tiny_run(tmp_path / "r"), "--tracker", "tensorbord"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: tracker 'tensorbord' is not one of tensorboard, mlflow, wandb (did you mean "
        "tensorboard?)"
    ]
    assert not (tmp_path / "r").exists()


def test_a_missing_extra_is_one_line_naming_it_exit_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb now raises ImportError
    monkeypatch.delitem(sys.modules, "mosaic_fast.tracking.wandb", raising=False)
    result = CliRunner().invoke(main, [*tiny_run(tmp_path / "r"), "--tracker", "wandb"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith(
        "Error: tracker 'wandb' needs the wandb extra: pip install \"mosaic-fast[wandb]\""
    )
    assert not (tmp_path / "r").exists()


def test_an_unwritable_mlflow_uri_is_one_line_exit_2(tmp_path):
    pytest.importorskip("mlflow")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = CliRunner().invoke(
        main,
        [*tiny_run(tmp_path / "r"), "--tracker", "mlflow", "--mlflow-uri", str(blocked / "x")],
    )
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: mlflow_uri=") and "cannot create" in line, line
    assert not (tmp_path / "r").exists()


def test_tracker_objects_must_have_the_methods():
    with pytest.raises(MosaicTypeError, match="lacks the Tracker methods"):
        build_trackers((), [object()], config=experiment(None).config)
    with pytest.raises(MosaicValueError, match="given twice"):
        build_trackers((), [Flaky(), Flaky()], config=experiment(None).config)


def test_a_new_mlflow_store_is_a_copy_of_the_cached_empty_one(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    from mosaic_fast.tracking.mlflow import seed_store

    monkeypatch.setenv("MOSAIC_CACHE", str(tmp_path / "cache"))
    store = tmp_path / "out" / "mlflow.db"
    store.parent.mkdir()
    seed_store(store)
    cached = list((tmp_path / "cache" / "mlflow").glob("empty-*.db"))
    assert len(cached) == 1 and store.is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    default = client.get_experiment("0")
    assert default.artifact_location == (store.parent / "mlartifacts" / "0").as_uri()
    run = client.create_run(client.create_experiment("mine"))
    client.log_metric(run.info.run_id, "node_mean", 0.5, step=3)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "node_mean")] == [0.5]
    before = store.read_bytes()
    seed_store(store)  # an existing store is never replaced
    assert store.read_bytes() == before
    other = tmp_path / "other.db"
    seed_store(other)  # the second store comes from the cache: same tables, its own default
    assert MlflowClient(tracking_uri=f"sqlite:///{other}").get_experiment_by_name("mine") is None


def test_without_a_writable_cache_mlflow_creates_the_store_itself(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mosaic_fast.tracking.mlflow import seed_store

    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("MOSAIC_CACHE", str(blocked))  # a file: no folder can go under it
    store = tmp_path / "mlflow.db"
    seed_store(store)
    assert not store.exists()
    out = tmp_path / "run"
    experiment("mlflow").run(out, quiet=True)
    client, run_id = mlflow_client(out)
    assert client.get_run(run_id).info.status == "FINISHED"
