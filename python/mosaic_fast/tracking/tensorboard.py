"""TensorBoard: event files in ``OUT/tracking/tensorboard`` (``tensorboard --logdir OUT``, or
the sweep folder: one subfolder per cell, so the curves overlay)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from . import TrackedRun, hyperparameters, replayed

if TYPE_CHECKING:
    from ..settings import ExperimentConfig

log = logging.getLogger(__name__)

EVENTS_DIR = "tensorboard"


class TensorBoardTracker:
    """Scalars per round under the record's field names (``node_mean``, ``avg_model``,
    ``consensus_distance``, ``sim_time_s``, ...), the settings as hyperparameters (HPARAMS tab)
    and as text, the status as text, the figures as images."""

    name = "tensorboard"

    def __init__(self, logdir: str | Path | None = None) -> None:
        self.logdir = Path(logdir) if logdir is not None else None
        self.writer: SummaryWriter | None = None

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> TensorBoardTracker:
        return cls()

    def start(self, run: TrackedRun) -> dict[str, Any]:
        logdir = self.logdir
        if logdir is None:
            logdir = run.tracking_dir / EVENTS_DIR if run.tracking_dir else Path("runs") / run.name
        logdir.mkdir(parents=True, exist_ok=True)
        had_events = any(logdir.glob("events.out.tfevents.*"))
        replay = bool(run.history) and not (run.resumed is not None and had_events)
        if run.history and run.resumed is not None and not had_events:
            log.warning(
                "tensorboard: the event files in %s are gone; writing the %d earlier records "
                "from metrics.jsonl again",
                logdir,
                len(run.history),
            )
        # Resuming: drop what the interrupted process logged after the checkpoint (it is
        # computed again, identically).
        purge = run.history[-1]["round"] + 1 if run.history and not replay else None
        self.writer = writer = SummaryWriter(str(logdir), purge_step=purge, flush_secs=30)
        if run.resumed is None or replay:
            self._settings(run, writer)
        if replay:
            replayed(run, self.log)
        return {"logdir": str(logdir)}

    def _opened(self) -> SummaryWriter:
        # The group calls log and finish only on trackers whose start succeeded.
        assert self.writer is not None, "start opens the writer"
        return self.writer

    def _settings(self, run: TrackedRun, writer: SummaryWriter) -> None:
        params = hyperparameters(run.settings)
        # torch leaves both unannotated
        exp, ssi, sei = hparams(params, {"node_mean": 0.0})  # type: ignore[no-untyped-call]
        sink = writer._get_file_writer()  # type: ignore[no-untyped-call]
        for summary in (exp, ssi, sei):
            sink.add_summary(summary)
        writer.add_text("settings", "```\n" + json.dumps(run.settings, indent=2) + "\n```")

    def log(self, scalars: dict[str, float], step: int) -> None:
        writer = self._opened()
        for key, value in scalars.items():
            writer.add_scalar(key, value, step)

    def finish(self, status: str, figures: Sequence[Path]) -> None:
        writer = self._opened()
        if figures:
            from matplotlib.image import imread

            for path in figures:
                writer.add_image(f"figures/{path.stem}", imread(path), dataformats="HWC")
        writer.add_text("status", status)
        writer.close()
