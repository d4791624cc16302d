"""``run_experiment``: a run's simulation built, driven round by round, its run folder written.

:func:`execute` opens the run folder (rank 0 alone, with ranks), finds what it holds (a complete
run, a checkpoint to resume), builds the simulation (:func:`.build.make_simulation`) and hands it
to the :class:`~.driver.Driver`, which runs the rounds, evaluations, callbacks, checkpoints and
stops (a non-finite loss or metric: :class:`RunDiverged`, ``summary.json`` says
``"status": "diverged"``; SIGINT/SIGTERM: :class:`RunInterrupted` after a checkpoint).

:class:`RunState`, :class:`Callbacks` and :class:`RunObserver` live in :mod:`.driver` and are
importable from here.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from .._version import __version__
from ..errors import MosaicError, MosaicValueError, RunDiverged, RunInterrupted
from ..launch import launch_problem
from ..results.folder import RunFolder
from ..results.layout import COMPLETE, DIVERGED, config_of
from ..settings import RESUMABLE_SETTINGS, ExperimentConfig
from ..user_code import first_line
from .build import make_simulation
from .distributed import Ranks
from .driver import Callbacks, Driver, RunObserver, RunState, _checkpoint_cost
from .inputs import UserCode, resolve_device
from .progress import _clock, _postfix
from .state import NetworkState

__all__ = [
    "Callbacks",
    "Outcome",
    "RunObserver",
    "RunState",
    "_checkpoint_cost",
    "_clock",
    "_postfix",
    "execute",
    "resume_experiment",
    "run_experiment",
    "summarize",
    "time_to_target",
]


@dataclass
class Outcome:
    """What :func:`execute` returns: the summary, the records and the network (None when a
    complete folder was only read back)."""

    summary: dict[str, Any]
    history: list[dict[str, Any]]
    simulation: NetworkState | None


def _versions() -> dict[str, str]:
    return {
        "mosaic_fast": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        # torch's CPU kernels round differently per instruction set and per thread count: a run
        # reproduces bit for bit with the same capability (or ATEN_CPU_CAPABILITY) and threads.
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_num_threads": torch.get_num_threads(),
    }


def summarize(
    cfg: ExperimentConfig, history: list[dict[str, Any]], lower_is_better: bool
) -> dict[str, Any]:
    pick = min if lower_is_better else max
    best = pick(history, key=lambda r: r["node_mean"])
    return {
        "status": COMPLETE,
        "complete": True,
        "rounds": cfg.rounds,
        "final": history[-1],
        "best_node_mean": best["node_mean"],
        "best_node_mean_round": best["round"],
        "best_avg_model": pick(r["avg_model"] for r in history),
        "wall_time_s": history[-1]["wall_time_s"],
        "sim_time_s": history[-1].get("sim_time_s"),
        "time_to_target_s": time_to_target(cfg, history, lower_is_better),
    }


def time_to_target(
    cfg: ExperimentConfig, history: list[dict[str, Any]], lower_is_better: bool
) -> float | None:
    """The first simulated time at which the node-average metric reached ``cfg.target`` (None:
    no target, or never reached)."""
    if cfg.target is None:
        return None
    for rec in history:
        value = rec["node_mean"]
        if (value <= cfg.target) if lower_is_better else (value >= cfg.target):
            return rec.get("sim_time_s")
    return None


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg_dict.items() if k not in RESUMABLE_SETTINGS}


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path | None,
    *,
    quiet: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Run one experiment of built-in parts and return its summary (see :func:`execute`)."""
    return execute(config, out_dir, quiet=quiet, resume=resume).summary


def execute(
    config: ExperimentConfig,
    out_dir: str | os.PathLike[str] | None,
    *,
    quiet: bool = False,
    resume: bool = False,
    user: UserCode | None = None,
    callbacks: Callbacks | None = None,
) -> Outcome:
    """Run one experiment and return its summary (the run folder contract: see ``runfolder``).

    ``out_dir`` None keeps everything in memory. A folder that already holds metrics is refused
    unless ``resume`` is set; ``resume`` continues from the folder's checkpoint (or starts over
    when there is none yet) and returns the stored summary of a complete run.

    ``user`` holds the public API's Python objects; ``callbacks`` the functions called per round
    and per evaluation.

    Raises:
        RunDiverged: non-finite loss or parameters (the folder's summary records it).
        CallbackError: a callback raised; the records written so far stay, and a checkpoint of
            the round is written.
        RunInterrupted: SIGINT/SIGTERM; the round finished and a checkpoint was written.
        RunFolderInUse: another live process is writing ``out_dir``.
        DiskFull: the disk of ``out_dir`` filled up; the folder stays resumable.
        MosaicValueError: bad settings, a run too large for the memory available, a checkpoint
            that does not match its digest (``checkpoint.pt.sha256``) or has none.
    """
    cfg = config.resolved()
    device = resolve_device(cfg.device)
    problem = launch_problem(cfg.distributed)
    if problem is not None:
        raise MosaicValueError(problem)
    ranks = Ranks.start(cfg.nodes, device.type, cfg.dist_timeout) if cfg.distributed else None
    run = functools.partial(
        _observed,
        cfg,
        device if ranks is None else ranks.device(device),
        quiet=quiet,
        resume=resume,
        user=user,
        callbacks=callbacks or Callbacks(),
        ranks=ranks,
    )
    if ranks is None:
        folder = RunFolder(out_dir) if out_dir is not None else None
        with folder if folder is not None else nullcontext():
            return run(folder)
    try:
        outcome = _on_ranks(ranks, out_dir, run)
        ranks.barrier()  # no rank leaves (and tears down its connections) while others talk
        return outcome
    except RuntimeError as exc:
        if not _lost_contact(exc):
            raise
        raise MosaicValueError(
            f"lost contact with the other ranks (one failed, was killed, or stalled past "
            f"dist_timeout={cfg.dist_timeout:g} s, which --dist-timeout sets): {first_line(exc)}"
        ) from None


def _on_ranks(
    ranks: Ranks,
    out_dir: str | os.PathLike[str] | None,
    run: Callable[[RunFolder | None], Outcome],
) -> Outcome:
    """``run`` on this rank: rank 0 alone opens the folder and says whether it could."""
    if not ranks.is_root:
        _raise_if_failed(ranks.share(None))
        return run(None)
    entered = False
    try:
        folder = RunFolder(out_dir) if out_dir is not None else None
        with folder if folder is not None else nullcontext():
            entered = True
            ranks.share(None)
            return run(folder)
    except MosaicError as exc:
        if not entered:
            ranks.share(first_line(exc))
        raise


def _lost_contact(exc: RuntimeError) -> bool:
    """Whether ``exc`` is a collective that failed because another rank is gone or timed out
    (gloo raises plain RuntimeErrors naming itself)."""
    return isinstance(exc, torch.distributed.DistError) or any(
        word in str(exc) for word in ("gloo", "NCCL", "Connection reset", "Connection closed")
    )


def _raise_if_failed(problem: str | None) -> None:
    """Raise what rank 0 reported (one line), if anything."""
    if problem is not None:
        raise MosaicValueError(f"rank 0 stopped: {problem}")


def resume_experiment(out_dir: str | Path, *, quiet: bool = False) -> dict[str, Any]:
    """Continue the run in ``out_dir`` with the settings it was started with."""
    return run_experiment(config_of(out_dir), out_dir, quiet=quiet, resume=True)


def _run_in(
    cfg: ExperimentConfig,
    device: torch.device,
    folder: RunFolder | None,
    *,
    quiet: bool,
    resume: bool,
    user: UserCode | None,
    callbacks: Callbacks,
    ranks: Ranks | None = None,
) -> Outcome:
    """The run in ``folder`` (None: in memory) on this process: opened (or found complete),
    restored from its checkpoint, driven to the end, summarized."""
    root = ranks is None or ranks.is_root
    if ranks is None or root:
        opened = _open_root(cfg, device, folder, resume, user, ranks)
    else:
        opened = _open_other(cfg, device, folder, resume, user, ranks)
    if isinstance(opened, Outcome):
        return opened
    sim, checkpoint = opened
    history: list[dict[str, Any]] = []
    if checkpoint is not None:
        sim.load_state_dict(checkpoint["simulation"])
        history = list(checkpoint["history"])
        if sim.rounds_done > cfg.rounds:
            raise MosaicValueError(
                f"checkpoint is at round {sim.rounds_done}, beyond rounds={cfg.rounds}"
            )
    if folder is not None:
        if checkpoint is None or not folder.has_config():
            folder.write_config(_meta(cfg, sim, ranks))
        # Drop records written after the checkpoint (or by an earlier attempt without one).
        folder.restart_metrics(history)
    Driver(
        cfg,
        sim,
        history,
        folder,
        callbacks,
        observers=callbacks.observers if root else (),  # rank 0 reports the run
        checkpoints=folder is not None or ranks is not None,
        quiet=quiet or not root,  # one progress bar: rank 0's
    ).run()
    summary = summarize(cfg, history, sim.lower_is_better)
    if folder is not None:
        folder.finish(summary)
    return Outcome(summary, history, sim)


def _open_root(
    cfg: ExperimentConfig,
    device: torch.device,
    folder: RunFolder | None,
    resume: bool,
    user: UserCode | None,
    ranks: Ranks | None,
) -> Outcome | tuple[NetworkState, dict[str, Any] | None]:
    """The outcome of a run found complete, else the simulation and the checkpoint to resume
    from; with ``ranks``, what it found goes to the other ranks."""
    try:
        done, checkpoint, strategy, step_time_s = _prologue(cfg, folder, resume)
        sim = None
        if done is None:
            sim = make_simulation(
                cfg, device, user=user, strategy=strategy, step_time_s=step_time_s, ranks=ranks
            )
    except MosaicError as exc:
        if ranks is not None:
            ranks.share(("failed", first_line(exc)))
        raise
    if ranks is not None:
        sim_facts = None if sim is None else (sim.strategy, sim.measured_step_time_s)
        ranks.share(("ok", done, checkpoint, sim_facts))
    if done is not None:
        return done
    assert sim is not None  # made above when no outcome was found
    return sim, checkpoint


def _open_other(
    cfg: ExperimentConfig,
    device: torch.device,
    folder: RunFolder | None,
    resume: bool,
    user: UserCode | None,
    ranks: Ranks,
) -> Outcome | tuple[NetworkState, dict[str, Any] | None]:
    """The other ranks: what rank 0 found, and the strategy and clock it settled."""
    kind, *shared = ranks.share(None)
    if kind == "failed":
        _raise_if_failed(shared[0])
    done, checkpoint, sim_facts = shared
    if done is not None:
        return cast(Outcome, done)  # rank 0's outcome, as it shared it
    strategy, step_time_s = sim_facts
    sim = make_simulation(
        cfg, device, user=user, strategy=strategy, step_time_s=step_time_s, ranks=ranks
    )
    return sim, checkpoint


def _meta(cfg: ExperimentConfig, sim: NetworkState, ranks: Ranks | None) -> dict[str, Any]:
    """The run folder's ``config.json``: the settings and what the run settled on."""
    return {
        "config": cfg.to_dict(),
        "versions": _versions(),
        "n_params": sim.n_params,
        "model_name": sim.model_name,
        "trainer_strategy": sim.strategy,
        "measured_step_time_s": sim.measured_step_time_s,
        "ranks": 1 if ranks is None else ranks.world,
        "metric": sim.metric_name,
        "lower_is_better": sim.lower_is_better,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _observed(cfg: ExperimentConfig, *args: Any, callbacks: Callbacks, **kwargs: Any) -> Outcome:
    """``_run_in``, then every observer hears how the run ended."""
    status = "failed"
    try:
        outcome = _run_in(cfg, *args, callbacks=callbacks, **kwargs)
        status = COMPLETE
        return outcome
    except RunDiverged:
        status = DIVERGED
        raise
    except RunInterrupted:
        status = "interrupted"
        raise
    finally:
        for observer in callbacks.observers:
            observer.run_ended(status)


def _prologue(
    cfg: ExperimentConfig, folder: RunFolder | None, resume: bool
) -> tuple[Outcome | None, dict[str, Any] | None, str | None, float | None]:
    """What the folder holds: (the outcome of a run complete before, else None; the checkpoint to
    resume from; the trainer strategy and measured step time the run started with)."""
    checkpoint, strategy, step_time_s = None, None, None
    if folder is None:
        return None, checkpoint, strategy, step_time_s
    status, summary = folder.status(), folder.summary()
    if resume and status == COMPLETE:
        assert summary is not None  # the status is read from summary.json
        return Outcome(summary, folder.history(), None), None, None, None
    if resume and status == DIVERGED:
        assert summary is not None  # the status is read from summary.json
        raise RunDiverged(summary.get("round", 0), summary.get("reason", "?"), cfg.lr)
    if resume:
        checkpoint = folder.load_checkpoint()
        # Read through from_dict: settings added since the checkpoint take their defaults.
        if checkpoint is not None and _comparable(
            ExperimentConfig.from_dict(checkpoint["config"]).resolved().to_dict()
        ) != _comparable(cfg.to_dict()):
            raise MosaicValueError(
                f"checkpoint in {str(folder.path)!r} was written by a different configuration"
            )
    elif folder.has_metrics():
        raise MosaicValueError(
            f"{str(folder.path)!r} already holds a run; continue it with --resume (resume=True "
            "in Python) or choose another folder"
        )
    if checkpoint is not None and folder.has_config():
        # The strategy auto chose: another could round differently after the restart.
        meta = folder.meta()
        strategy = meta.get("trainer_strategy")
        step_time_s = meta.get("measured_step_time_s")  # the clock the run started with
    return None, checkpoint, strategy, step_time_s
