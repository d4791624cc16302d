"""MLflow: a local SQLite store unless ``mlflow_uri`` names another (``mlflow ui
--backend-store-uri sqlite:///OUT/tracking/mlflow.db``, or the sweep folder's ``mlflow.db``: one
parent run per sweep, one child run per cell)."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from ..data.locations import cache_dir
from ..errors import MosaicValueError
from . import TrackedRun, TrackingGroup, hyperparameters, replayed

if TYPE_CHECKING:
    from ..settings import ExperimentConfig

STORE = "mlflow.db"
ARTIFACTS = "mlartifacts"
# MLflow's run statuses for ours.
STATUSES = {"complete": "FINISHED", "diverged": "FAILED", "failed": "FAILED"}
GROUP_TAG = "mosaic_fast.group"
STATUS_TAG = "mosaic_fast.status"
_BATCH = 100  # MLflow takes at most 100 params (and 1000 metrics) per log_batch


def store_uri(uri_or_folder: str) -> str:
    """A tracking URI for ``mlflow_uri``: a URI as given; a plain path is a folder holding a
    SQLite store (``FOLDER/mlflow.db``)."""
    if "://" in uri_or_folder or uri_or_folder.startswith("file:"):
        return uri_or_folder
    folder = Path(uri_or_folder).expanduser().resolve()
    return f"sqlite:///{folder / STORE}"


def local_folder(uri: str) -> Path | None:
    """The folder a local store writes (SQLite file's folder, ``file:`` root), else None."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).parent
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    return None


def _empty_store() -> Path | None:
    """An empty SQLite store of this MLflow version, created once per machine (MLflow's table
    migrations take ~1.5 s of CPU per new store, in the process that runs the simulation)."""
    import mlflow

    cached = cache_dir() / "mlflow" / f"empty-{mlflow.__version__}.db"
    if cached.is_file():
        return cached
    name: str | None = None
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(suffix=".db", dir=cached.parent)
        os.close(fd)
        os.unlink(name)  # MLflow creates the file itself
        MlflowClient(tracking_uri=f"sqlite:///{name}").search_experiments(max_results=1)
        os.replace(name, cached)  # atomic: a concurrent process reads a whole store or none
    except (OSError, MlflowException):
        if name is not None:
            Path(name).unlink(missing_ok=True)  # no half-made store left in the cache
        return None  # no cache: the store is created in place, as MLflow does
    return cached


def seed_store(path: Path) -> None:
    """Start a new SQLite store at ``path`` as a copy of the cached empty store, its default
    experiment's artifacts beside it (``mlartifacts/0``, as ours); an existing store is kept."""
    if path.exists():
        return
    empty = _empty_store()
    if empty is None:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        shutil.copyfile(empty, partial)
        now = int(time.time() * 1000)
        with sqlite3.connect(partial) as db:
            db.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                "last_update_time = ? WHERE experiment_id = 0",
                ((path.parent / ARTIFACTS / "0").as_uri(), now, now),
            )
        db.close()
        if not path.exists():
            os.replace(partial, path)
    except (OSError, sqlite3.Error):
        pass  # MLflow creates the store in place
    finally:
        partial.unlink(missing_ok=True)


def check_writable(uri: str, setting: str = "mlflow_uri") -> None:
    """MosaicValueError (one line) when a local store's folder cannot be created or written."""
    folder = local_folder(uri)
    if folder is None:
        return  # a server: it answers for itself (a failure later is the tracker's, not the run's)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MosaicValueError(
            f"{setting}={uri!r}: cannot create {str(folder)!r}: {exc.strerror}"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MosaicValueError(f"{setting}={uri!r}: cannot write to {str(folder)!r}")


class MLflowTracker:
    """Params: the settings; metrics: the record's numeric fields per round (step); tags: the
    status (``mosaic_fast.status``) and group; artifacts: the figures (``figures/``). The run ends FINISHED (complete), FAILED (diverged, failed) or
    KILLED (interrupted); a resumed run continues the same MLflow run."""

    name = "mlflow"

    def __init__(self, uri: str | None = None) -> None:
        self.uri = store_uri(uri) if uri is not None else None
        if self.uri is not None:
            check_writable(self.uri)
        self.client: MlflowClient | None = None
        self.run_id: str | None = None

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> MLflowTracker:
        return cls(config.mlflow_uri)

    def _default_uri(self, run: TrackedRun) -> str:
        if run.group is not None:
            return store_uri(str(run.group.root))
        if run.tracking_dir is not None:
            return store_uri(str(run.tracking_dir))
        return store_uri(os.getcwd())

    def start(self, run: TrackedRun) -> dict[str, Any]:
        resumed = run.resumed or {}
        uri = self.uri or resumed.get("uri") or self._default_uri(run)
        check_writable(uri)
        if uri.startswith("sqlite:"):  # creating a store logs its migrations at INFO
            for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
                logging.getLogger(name).setLevel(logging.WARNING)
        if uri.startswith("sqlite:///"):
            seed_store(Path(uri[len("sqlite:///") :]))
        self.client = MlflowClient(tracking_uri=uri)
        if resumed.get("run_id") and resumed.get("uri") == uri and self._reopen(resumed["run_id"]):
            return {"uri": uri, "run_id": self.run_id}
        experiment = self._experiment(uri)
        tags = {STATUS_TAG: "running"}
        if run.group is not None:
            tags["mlflow.parentRunId"] = self._parent(experiment, run.group)
            tags[GROUP_TAG] = str(run.group.root)
        created = self.client.create_run(experiment, run_name=run.name, tags=tags)
        self.run_id = created.info.run_id
        params = [Param(k, str(v)[:6000]) for k, v in hyperparameters(run.settings).items()]
        for i in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + _BATCH])
        replayed(run, self.log)
        return {"uri": uri, "run_id": self.run_id}

    def _client(self) -> MlflowClient:
        # start opens the client first; the group calls log and finish only on trackers whose
        # start succeeded.
        assert self.client is not None, "start opens the client"
        return self.client

    def _run(self) -> tuple[MlflowClient, str]:
        assert self.run_id is not None, "start creates or reopens the run"
        return self._client(), self.run_id

    def _reopen(self, run_id: str) -> bool:
        client = self._client()
        try:
            client.get_run(run_id)
        except MlflowException:
            return False  # the store lost it: a new run, with the records so far
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, STATUS_TAG, "running")
        self.run_id = run_id
        return True

    def _experiment(self, uri: str) -> str:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "mosaic-fast")
        client = self._client()
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        folder = local_folder(uri)
        location = (
            (folder / ARTIFACTS).as_uri()
            if folder is not None and uri.startswith("sqlite")
            else None
        )
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process created it meanwhile
            created = client.get_experiment_by_name(name)
            assert created is not None  # the creation failed because it exists
            return created.experiment_id

    def _parent(self, experiment: str, group: TrackingGroup) -> str:
        query = f"tags.`{GROUP_TAG}` = '{group.root}' and tags.`mosaic_fast.parent` = 'true'"
        client = self._client()
        found = client.search_runs([experiment], query, max_results=1)
        if found:
            return cast(str, found[0].info.run_id)  # mlflow's RunInfo leaves it untyped
        parent = client.create_run(
            experiment,
            run_name=group.name,
            tags={GROUP_TAG: str(group.root), "mosaic_fast.parent": "true"},
        )
        client.set_terminated(parent.info.run_id, "FINISHED")
        return cast(str, parent.info.run_id)

    def log(self, scalars: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in scalars.items()]
        client, run_id = self._run()
        client.log_batch(run_id, metrics=metrics)

    def finish(self, status: str, figures: Sequence[Path]) -> None:
        client, run_id = self._run()
        for path in figures:
            client.log_artifact(run_id, str(path), "figures")
        client.log_batch(run_id, tags=[RunTag(STATUS_TAG, status)])
        client.set_terminated(run_id, STATUSES.get(status, "KILLED"))
