"""Weights & Biases: offline (run files in ``OUT/tracking/wandb``, ``wandb sync`` uploads them)
unless the user has logged in or ``WANDB_MODE`` says otherwise; a sweep's cells are one group."""

from __future__ import annotations

import netrc
import os
import secrets
import shutil
import string
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import wandb

from . import TrackedRun, hyperparameters, replayed

if TYPE_CHECKING:
    from ..settings import ExperimentConfig

EXIT_CODES = {"complete": 0, "interrupted": 255}


def logged_in() -> bool:
    """Whether W&B has an API key here (``WANDB_API_KEY`` or ``wandb login``'s netrc entry);
    read locally, without asking the server."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def new_id() -> str:
    """A new W&B run id (8 characters of [a-z0-9], as W&B makes them)."""
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


class WandbTracker:
    """The settings as the run's config; the record's numeric fields per round (``step``);
    ``status`` in the summary (and the exit code: 0 complete, 1 diverged or failed); the figures
    as run files (``figures/``). Project: ``WANDB_PROJECT`` or ``mosaic-fast``; a resumed run continues the
    same W&B run id."""

    name = "wandb"

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode
        self.run: Any = None

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> WandbTracker:
        return cls()

    def start(self, run: TrackedRun) -> dict[str, Any]:
        mode = self.mode or os.environ.get("WANDB_MODE") or ("online" if logged_in() else "offline")
        folder = run.tracking_dir if run.tracking_dir is not None else Path.cwd()
        folder.mkdir(parents=True, exist_ok=True)
        run_id = (run.resumed or {}).get("id") or new_id()
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "mosaic-fast"),
            name=run.name,
            id=run_id,
            group=run.group.name if run.group is not None else None,
            config=hyperparameters(run.settings),
            dir=str(folder),
            resume="allow",
            reinit="create_new",
            settings=wandb.Settings(
                mode=mode,  # type: ignore[arg-type]  # any string: wandb checks it
                silent=True,
                console="off",
                disable_git=True,
                save_code=False,
                x_disable_stats=True,
                disable_job_creation=True,
            ),
        )
        if run.resumed is None:
            replayed(run, self.log)
        return {"id": run_id}

    def log(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(scalars, step=step)

    def finish(self, status: str, figures: Sequence[Path]) -> None:
        self.run.summary["status"] = status
        if figures:  # files in the run's folder are uploaded with it (wandb sync, offline)
            into = Path(self.run.dir) / "figures"
            into.mkdir(parents=True, exist_ok=True)
            for path in figures:
                shutil.copyfile(path, into / path.name)
        self.run.finish(exit_code=EXIT_CODES.get(status, 1))
