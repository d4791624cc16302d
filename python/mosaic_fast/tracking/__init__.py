"""Experiment trackers: TensorBoard, MLflow and Weights & Biases, behind one interface.

A run sends its resolved settings (as hyperparameters), every evaluation record (as scalars
against the round, ``sim_time_s`` among them where time is simulated), its status at the end
(``complete``, ``diverged``, ``interrupted`` or ``failed``) and its figures (as artifacts) to each
tracker it names::

    mosaic-fast run --tracker tensorboard,mlflow --out runs/demo
    mf.Experiment(..., trackers=["tensorboard", "wandb"]).run("runs/demo")

Each library is an optional extra (``pip install "mosaic-fast[tensorboard]"``, ``[mlflow]``,
``[wandb]``). Everything stays on the machine unless asked otherwise: TensorBoard event files in
``OUT/tracking/tensorboard``, MLflow in a local SQLite store (``mlflow.db`` in the sweep folder,
else in ``OUT/tracking``) unless ``mlflow_uri`` names another, W&B in offline mode unless the user
has logged in (or ``WANDB_MODE`` says otherwise).

The engine knows none of this: :class:`Tracking` is a :class:`~mosaic_fast.engine.experiment.RunObserver`
that the run calls at its start, after every evaluation and at its end. Trackers run on a
background thread, so the simulation never waits for them; one that raises is dropped with one
logged warning and the run goes on. What a tracker needs to continue the same tracked run after
``--resume`` (its run id) is kept in ``OUT/tracking/runs.json``; the figures sent at the end are
drawn into ``OUT/tracking/figures``.

The end of a run does not wait for the trackers either: drawing the figures (about a second) and
the trackers' final writes go on in the background after :meth:`Experiment.run` returns. The next
tracked run in the process waits for them before it starts (W&B and MLflow track one run at a
time), so does the interpreter at exit, and :func:`wait` waits for them on request.

Your own tracker: any object with the :class:`Tracker` methods, passed as
``Experiment(trackers=[MyTracker()])``.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import MosaicTypeError, MosaicValueError
from ..settings import tracker_names
from ..user_code import first_line

if TYPE_CHECKING:
    from ..engine.experiment import RunState
    from ..settings import ExperimentConfig

log = logging.getLogger(__name__)

TRACKING_DIR = "tracking"
"""The folder inside a run folder that belongs to the trackers."""
RUNS_FILE = "runs.json"
"""``OUT/tracking/runs.json``: per tracker name, what it needs to continue its tracked run."""
FIGURES_DIR = "figures"
# Seconds a wait for the trackers' queued writes lasts at most (then it goes on without them).
FLUSH_TIMEOUT_S = 120.0

# Workers of ended runs still drawing figures or writing; joined by wait().
_FINISHING: list[threading.Thread] = []
_FINISHING_LOCK = threading.Lock()


def wait(timeout: float = FLUSH_TIMEOUT_S) -> bool:
    """Wait until the trackers of every ended run have written everything (figures included).

    Returns False (with a logged warning) when some were still writing after ``timeout`` seconds;
    the runs' own folders are complete either way.
    """
    with _FINISHING_LOCK:
        workers, _FINISHING[:] = list(_FINISHING), []
    for worker in workers:
        worker.join(timeout)
    late = [w for w in workers if w.is_alive()]
    if late:
        log.warning(
            "trackers did not finish writing within %.0f s; the run's own files are complete",
            timeout,
        )
    return not late


atexit.register(wait)

# name -> (module, class) of the built-in trackers; the extra to install has the same name.
BUILT_IN = {
    "tensorboard": ("mosaic_fast.tracking.tensorboard", "TensorBoardTracker"),
    "mlflow": ("mosaic_fast.tracking.mlflow", "MLflowTracker"),
    "wandb": ("mosaic_fast.tracking.wandb", "WandbTracker"),
}


@dataclass(frozen=True)
class TrackingGroup:
    """Runs tracked together so their curves overlay: a sweep's cells, or the runs of
    ``mosaic-fast run --K 1,8``. ``root`` is the folder above their run folders; ``name`` its
    name (TensorBoard: one subfolder per run under it; MLflow: one parent run; W&B: one group)."""

    root: Path
    name: str

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> TrackingGroup:
        path = Path(root).resolve()
        return cls(path, path.name)


@dataclass
class TrackedRun:
    """What a tracker is told when a run starts.

    ``settings`` are the resolved settings (``ExperimentConfig.to_dict()``); ``folder`` the run
    folder (None for a run kept in memory) and ``tracking_dir`` its ``tracking/`` folder;
    ``history`` the evaluation records an earlier process of a resumed run wrote; ``resumed`` what
    this tracker's :meth:`Tracker.start` returned when the run first started (None: a new tracked
    run); ``metric`` the name of the run's metric (``accuracy``, ``rmse``).
    """

    name: str
    settings: dict[str, Any]
    folder: Path | None
    tracking_dir: Path | None
    group: TrackingGroup | None
    history: list[dict[str, Any]]
    resumed: dict[str, Any] | None
    metric: str


@runtime_checkable
class Tracker(Protocol):
    """One experiment tracker. Called from one background thread, in order: ``start`` once,
    ``log`` per evaluation, ``finish`` once. An exception from any of them drops the tracker
    for the rest of the run (with one warning); the run itself goes on."""

    name: str

    def start(self, run: TrackedRun) -> dict[str, Any] | None:
        """Open (or, when ``run.resumed`` is set, reopen) the tracked run and log the settings;
        return what is needed to reopen it after a resume (kept in ``tracking/runs.json``).
        A new tracked run of a resumed run (``run.resumed`` None but ``run.history`` not empty)
        should log ``run.history`` first."""
        ...

    def log(self, scalars: dict[str, float], step: int) -> None:
        """One evaluation: its numeric fields (``node_mean``, ``avg_model``, ...,
        ``sim_time_s``) at round ``step``."""
        ...

    def finish(self, status: str, figures: Sequence[Path]) -> None:
        """The run ended with ``status``; ``figures`` are PNG files of its curves."""
        ...


def scalars_of(record: dict[str, Any]) -> dict[str, float]:
    """The numeric fields of an evaluation record (``round`` is the step, not a scalar)."""
    return {
        k: float(v)
        for k, v in record.items()
        if k != "round" and isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def hyperparameters(settings: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """Settings as tracker hyperparameters: None becomes ``"none"`` (no tracker stores null)."""
    return {k: ("none" if v is None else v) for k, v in settings.items()}


def build_trackers(
    names: Sequence[str] | str | None, objects: Sequence[Any] = (), *, config: ExperimentConfig
) -> list[Tracker]:
    """The built-in trackers ``names`` plus the user's tracker ``objects``, each checked now, so
    that a missing extra or an unwritable ``mlflow_uri`` is one error line before the run starts.

    Raises:
        MosaicValueError: an unknown name, a missing extra (naming the ``pip install``), a bad
            ``mlflow_uri``.
        MosaicTypeError: an object that is not a :class:`Tracker`.
    """
    if isinstance(names, str) or names is None:
        names = tracker_names(names)
    trackers: list[Tracker] = []
    for name in names:
        module_name, class_name = BUILT_IN[name]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MosaicValueError(
                f'tracker {name!r} needs the {name} extra: pip install "mosaic-fast[{name}]" '
                f"({first_line(exc)})"
            ) from None
        trackers.append(getattr(module, class_name).from_config(config))
    for obj in objects:
        if not isinstance(obj, Tracker):
            raise MosaicTypeError(
                f"tracker {obj!r} lacks the Tracker methods (name, start, log, finish)"
            )
        trackers.append(obj)
    names_seen = [t.name for t in trackers]
    twice = sorted({n for n in names_seen if names_seen.count(n) > 1})
    if twice:
        raise MosaicValueError(f"tracker {twice[0]!r} is given twice")
    return trackers


class Tracking:
    """The run observer that feeds trackers, on one background thread.

    ``group``: the :class:`TrackingGroup` the run belongs to (None: on its own). ``figures``:
    draw the run's figures at the end (from its folder) and send them as artifacts.
    """

    def __init__(
        self,
        trackers: Sequence[Tracker],
        group: TrackingGroup | None = None,
        *,
        figures: bool = True,
    ) -> None:
        self.trackers = list(trackers)
        self.group = group
        self.figures = figures
        self.failures: list[str] = []
        self._live: list[Tracker] = []
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self._round = 0

    # -- RunObserver ----------------------------------------------------------------------

    def run_started(self, state: RunState, folder: Path | None) -> None:
        if not self.trackers or self._thread is not None:
            return
        wait()  # one tracked run at a time: an earlier run's trackers may still be finishing
        self._folder = folder
        self._live = list(self.trackers)
        self._round = state.round
        tracking_dir = folder / TRACKING_DIR if folder is not None else None
        stored = _read_runs(tracking_dir)
        settings = state.config.to_dict()
        name = folder.name if folder is not None else f"{settings['dataset']}-K{settings['K']}"
        history = [dict(r) for r in state.history]
        runs = {
            t.name: TrackedRun(
                name=name,
                settings=settings,
                folder=folder,
                tracking_dir=tracking_dir,
                group=self.group,
                history=history,
                resumed=stored.get(t.name),
                metric=state.simulation.metric_name,
            )
            for t in self.trackers
        }
        self._thread = threading.Thread(target=self._work, name="mosaic-trackers", daemon=True)
        self._thread.start()
        step = state.round
        self._jobs.put(lambda: self._start_all(runs, tracking_dir, stored, step))

    def evaluated(self, state: RunState, record: dict[str, Any]) -> None:
        if self._thread is None:
            return
        self._round = int(record["round"])
        step, scalars = int(record["round"]), scalars_of(record)
        self._jobs.put(lambda: self._each("log", lambda t: t.log(scalars, step), step))

    def run_ended(self, status: str) -> None:
        if self._thread is None:
            return
        self._jobs.put(lambda: self._finish_all(status, self._round))
        self._jobs.put(None)
        with _FINISHING_LOCK:  # finished in the background: see wait()
            _FINISHING.append(self._thread)
        self._thread = None

    # -- the worker -----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception as exc:  # runs.json or the figures' folder could not be written
                log.warning("the trackers' bookkeeping failed: %s", first_line(exc))

    def _each(self, what: str, call: Callable[[Tracker], Any], step: int) -> None:
        for tracker in list(self._live):
            try:
                call(tracker)
            except Exception as exc:  # a tracker's failure is never the run's
                self._live.remove(tracker)
                then = "the run goes on without it" if what != "finish" else "the run has ended"
                message = (
                    f"tracker {tracker.name} failed ({what}, round {step}): "
                    f"{first_line(exc)}; {then} (its own files are complete)"
                )
                self.failures.append(message)
                log.warning(message)

    def _start_all(
        self,
        runs: dict[str, TrackedRun],
        tracking_dir: Path | None,
        stored: dict[str, Any],
        step: int,
    ) -> None:
        started: dict[str, Any] = {}

        def start(tracker: Tracker) -> None:
            state = tracker.start(runs[tracker.name])
            if state is not None:
                started[tracker.name] = state

        self._each("start", start, step)
        if self.figures and self._folder is not None and self._live:
            # Imported now, while the run trains, so that the end only draws (~1 s less there).
            importlib.import_module("mosaic_fast.results.plots")
            importlib.import_module("matplotlib.backends.backend_agg")
        if (
            tracking_dir is not None
            and started
            and started != {k: v for k, v in stored.items() if k in started}
        ):
            _write_runs(tracking_dir, {**stored, **started})

    def _finish_all(self, status: str, step: int) -> None:
        figures: list[Path] = []
        if self.figures and self._folder is not None and self._live:
            figures = self._draw(self._folder)
        self._each("finish", lambda t: t.finish(status, figures), step)

    def _draw(self, folder: Path) -> list[Path]:
        from ..results.plots import plot_runs

        try:
            return plot_runs([folder], folder / TRACKING_DIR / FIGURES_DIR, formats=("png",))
        except Exception as exc:  # no figures is not worth a failed tracker
            log.warning("could not draw the run's figures for the trackers: %s", first_line(exc))
            return []


def _read_runs(tracking_dir: Path | None) -> dict[str, Any]:
    from ..results.layout import read_json

    if tracking_dir is None or not (tracking_dir / RUNS_FILE).is_file():
        return {}
    try:
        stored = read_json(tracking_dir / RUNS_FILE)
    except MosaicValueError as exc:
        log.warning("%s; the trackers start new tracked runs", exc)
        return {}
    return stored if isinstance(stored, dict) else {}


def _write_runs(tracking_dir: Path, runs: dict[str, Any]) -> None:
    from ..results.layout import write_json

    tracking_dir.mkdir(parents=True, exist_ok=True)
    write_json(tracking_dir / RUNS_FILE, runs)


def replayed(run: TrackedRun, log_record: Callable[[dict[str, float], int], None]) -> None:
    """Log the records of ``run.history`` (a resumed run whose tracked run is new or lost)."""
    for record in run.history:
        log_record(scalars_of(record), int(record["round"]))


__all__ = [
    "BUILT_IN",
    "RUNS_FILE",
    "TRACKING_DIR",
    "TrackedRun",
    "Tracker",
    "Tracking",
    "TrackingGroup",
    "build_trackers",
    "hyperparameters",
    "scalars_of",
    "wait",
]
