"""``run_experiment``: a Simulation driven round by round, writing its run folder.

The run stops loudly: a non-finite training loss, non-finite parameters at an evaluation, or an
evaluation whose metrics are not finite (the only sign of a last round gone wrong: no later round
computes its loss) ends it with :class:`RunDiverged` (``summary.json`` says ``"status": "diverged"``; the valid
metrics lines stay). SIGINT and SIGTERM let the current round finish, write a checkpoint, and
end it with :class:`RunInterrupted`.
"""

from __future__ import annotations

import functools
import math
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol
from warnings import warn

import numpy as np
import torch
from tqdm import tqdm

from .._version import __version__
from ..errors import (
    CallbackError,
    CheckpointCostWarning,
    MosaicError,
    MosaicValueError,
    RunDiverged,
    RunInterrupted,
)
from ..launch import launch_problem
from ..results.folder import COMPLETE, DIVERGED, RunFolder, config_of
from ..settings import RESUMABLE_SETTINGS, ExperimentConfig, evaluation_rounds
from ..user_code import describe, first_line
from .build import make_simulation
from .distributed import Ranks
from .simulation import Simulation, UserCode, resolve_device


@dataclass
class RunState:
    """What a callback sees: the run after ``round`` rounds.

    ``params`` is the live float32 (n, d) parameter buffer (read it; writing changes the run);
    ``history`` the evaluation records so far; ``config`` the resolved settings.
    """

    round: int
    params: Any
    history: list[dict[str, Any]]
    config: ExperimentConfig
    simulation: Simulation

    def node_model(self, i: int) -> Any:
        """Node ``i``'s model as a standalone ``torch.nn.Module`` (CPU, eval mode)."""
        return self.simulation.node_model(i)


class RunObserver(Protocol):
    """Something that watches a run without taking part in it (experiment trackers,
    :class:`mosaic_fast.tracking.Tracking`). Its methods must not raise: what fails inside an
    observer is its own business, never the run's. Only the process writing the run folder (rank
    0) calls them."""

    def run_started(self, state: RunState, folder: Path | None) -> None:
        """Before the first round of this process: ``state.history`` holds the records a resumed
        run had written before."""

    def evaluated(self, state: RunState, record: dict[str, Any]) -> None:
        """After every evaluation, once ``record`` is in ``metrics.jsonl``."""

    def run_ended(self, status: str) -> None:
        """Once, when the run stops: ``complete``, ``diverged``, ``interrupted`` or ``failed``
        (the folder's ``summary.json`` is written by then)."""


@dataclass
class Callbacks:
    """Functions called during a run. ``on_round_end(state)`` after every round (it returns None);
    ``on_evaluate(state, metrics)`` after every evaluation; a dict it returns (name -> number) adds
    extra metrics to the record, so they land in ``metrics.jsonl`` and the summary. ``observers``
    (:class:`RunObserver`) watch the run start, every evaluation and the end."""

    on_round_end: Sequence[Callable[[RunState], None]] = field(default_factory=list)
    on_evaluate: Sequence[Callable[[RunState, dict[str, Any]], Any]] = field(default_factory=list)
    observers: Sequence[RunObserver] = field(default_factory=list)


@dataclass
class Outcome:
    """What :func:`execute` returns: the summary, the records and the network (None when a
    complete folder was only read back)."""

    summary: dict[str, Any]
    history: list[dict[str, Any]]
    simulation: Simulation | None


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


def _postfix(rec: dict[str, Any]) -> str:
    """The bar's text for the last evaluation, with its round: the bar moves on every round, the
    metrics only at evaluations."""
    return (
        f"{rec['metric']}={rec['node_mean']:.4f} avg={rec['avg_model']:.4f} "
        f"cons={rec['consensus_distance']:.3g} (round {rec['round']})"
    )


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class _Progress:
    """What the run shows on standard error: the tqdm bar on a terminal; elsewhere (a file, a CI
    log) one plain line per evaluation (round, metrics, elapsed, ETA), since the bar's refreshes
    would run together into one endless line; nothing when ``quiet``."""

    def __init__(self, cfg: ExperimentConfig, done: int, quiet: bool) -> None:
        self.desc, self.total, self.first = f"{cfg.dataset} K={cfg.K}", cfg.rounds, done
        self.start = time.perf_counter()
        self.lines = not quiet and not _is_terminal(sys.stderr)
        self.bar = tqdm(
            total=cfg.rounds,
            initial=done,
            disable=quiet or self.lines,
            desc=self.desc,
            unit="round",
            dynamic_ncols=True,
        )

    def evaluated(self, rec: dict[str, Any], done: int) -> None:
        if self.lines:
            elapsed = time.perf_counter() - self.start
            ran = done - self.first
            eta = _clock(elapsed / ran * (self.total - done)) if ran > 0 else "?"
            sim = rec.get("sim_time_s")
            sim_text = f" sim {sim:.4g}s" if isinstance(sim, (int, float)) else ""
            print(
                f"{self.desc} round {rec['round']}/{self.total}: {rec['metric']} "
                f"{rec['node_mean']:.4f} (avg model {rec['avg_model']:.4f}, consensus "
                f"{rec['consensus_distance']:.3g}){sim_text} elapsed {_clock(elapsed)} eta {eta}",
                file=sys.stderr,
                flush=True,
            )
        else:
            self.bar.set_postfix_str(_postfix(rec))

    def update(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


class _StopSignals:
    """Remembers SIGINT/SIGTERM instead of dying mid-round; a second signal acts at once."""

    def __init__(self) -> None:
        self.received: int | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # asked twice: stop now (the last checkpoint stays valid)
            for s in (signal.SIGINT, signal.SIGTERM):  # a third one must not break the unwinding
                signal.signal(s, signal.SIG_IGN)
            raise RunInterrupted(self.received, None)
        self.received = signum

    @contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach only the main thread; nothing to catch here
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _round_seconds(sim: Simulation) -> float | None:
    """Mean training seconds of a round so far (None before one)."""
    return sim.train_seconds / sim.rounds_done if sim.rounds_done else None


def _checkpoint_cost(
    cfg: ExperimentConfig, seconds: float, size: int, round_seconds: float | None
) -> str | None:
    """A note when writing a checkpoint (``size`` bytes in ``seconds``) takes more than half
    the training time of the ``checkpoint_every`` rounds between two checkpoints (and at least
    0.1 s: a tiny run's fsync is not worth a word), else None."""
    every = cfg.checkpoint_every
    if not every or round_seconds is None:
        return None
    between = every * round_seconds
    if seconds <= 0.5 * between or seconds < 0.1:
        return None
    return (
        f"checkpoint_every={every}: each checkpoint writes {size / 1e6:.1f} MB and took "
        f"{seconds:.2f} s, {seconds / max(between, 1e-9):.1f}x the training of the {every} "
        f"round(s) between two ({between:.3f} s); a larger --checkpoint-every makes the run faster"
    )


def _check_finite(sim: Simulation, cfg: ExperimentConfig, *, params: bool) -> None:
    """RunDiverged when the last training loss (or, at evaluations, any parameter) is not finite."""
    loss = sim.last_loss
    if loss is not None and not math.isfinite(loss):
        raise RunDiverged(sim.rounds_done, f"training loss {loss}", cfg.lr)
    if params and not bool(torch.isfinite(sim.params()).all()):
        raise RunDiverged(sim.rounds_done, "non-finite parameters", cfg.lr)


# Evaluation fields that are finite for any model that has not diverged.
_FINITE_METRICS = ("node_mean", "node_std", "avg_model", "consensus_distance")


def _check_record(rec: dict[str, Any], cfg: ExperimentConfig) -> None:
    """RunDiverged when an evaluation's metrics are not finite (parameters can stay finite while
    the model's outputs overflow, and after the last round no training loss is computed)."""
    for name in _FINITE_METRICS:
        value = rec.get(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise RunDiverged(rec["round"], f"{name} {value} at its evaluation", cfg.lr)


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
    out_dir: str | Path | None,
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
        if not ranks.is_root:  # rank 0 alone writes the folder; it says whether it could
            _raise_if_failed(ranks.share(None))
            outcome = run(None)
        else:
            entered = False
            try:
                folder = RunFolder(out_dir) if out_dir is not None else None
                with folder if folder is not None else nullcontext():
                    entered = True
                    ranks.share(None)
                    outcome = run(folder)
            except MosaicError as exc:
                if not entered:
                    ranks.share(first_line(exc))
                raise
        ranks.barrier()  # no rank leaves (and tears down its connections) while others talk
        return outcome
    except RuntimeError as exc:
        if not _lost_contact(exc):
            raise
        raise MosaicValueError(
            f"lost contact with the other ranks (one failed, was killed, or stalled past "
            f"dist_timeout={cfg.dist_timeout:g} s, which --dist-timeout sets): {first_line(exc)}"
        ) from None


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
    if ranks is None or ranks.is_root:
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
        observers = callbacks.observers
    else:  # the other ranks: what rank 0 found, and the strategy and clock it settled
        kind, *shared = ranks.share(None)
        if kind == "failed":
            _raise_if_failed(shared[0])
        done, checkpoint, sim_facts = shared
        if done is not None:
            return done
        strategy, step_time_s = sim_facts
        sim = make_simulation(
            cfg, device, user=user, strategy=strategy, step_time_s=step_time_s, ranks=ranks
        )
        quiet = True  # one progress bar: rank 0's
        observers = ()  # rank 0 reports the run
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
            folder.write_config(
                {
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
            )
        # Drop records written after the checkpoint (or by an earlier attempt without one).
        folder.restart_metrics(history)

    def state() -> RunState:
        return RunState(sim.rounds_done, sim.params(), history, cfg, sim)

    for observer in observers:
        observer.run_started(state(), folder.path if folder is not None else None)

    def log(rec: dict[str, Any]) -> None:
        _check_record(rec, cfg)
        for fn in callbacks.on_evaluate:
            rec.update(_extra_metrics(fn, _called(fn, "on_evaluate", sim, state(), rec), rec))
        history.append(rec)
        if folder is not None:
            folder.append_metrics(rec)
        for observer in observers:
            observer.evaluated(state(), rec)

    def round_end() -> None:
        for fn in callbacks.on_round_end:
            if _called(fn, "on_round_end", sim, state()) is not None:
                raise CallbackError(
                    f"on_round_end callback {describe(fn)} returned a value; it must return None "
                    "(extra metrics come from on_evaluate)"
                )

    cost_told = []  # the checkpoints' cost is told once

    def save_checkpoint() -> None:
        # Distributed: a collective on every rank (the state of every block); rank 0 writes it.
        start = perf_counter()
        state = {"config": cfg.to_dict(), "simulation": sim.state_dict(), "history": history}
        if folder is not None:
            folder.save_checkpoint(state)
            note = _checkpoint_cost(
                cfg, perf_counter() - start, folder.checkpoint_bytes(), _round_seconds(sim)
            )
            periodic = cfg.checkpoint_every and sim.rounds_done % cfg.checkpoint_every == 0
            if note is not None and periodic and not cost_told:  # not a signal's one-off
                cost_told.append(note)
                warn(note, CheckpointCostWarning, stacklevel=2)

    checkpoints = folder is not None or ranks is not None

    try:
        with _StopSignals().installed() as stop:
            # A fresh run, or a checkpoint of a round whose evaluation did not finish (a callback
            # raised): evaluate the state it holds first.
            if not history or (
                history[-1]["round"] < sim.rounds_done and _evaluates(cfg, sim.rounds_done)
            ):
                log(sim.metrics())
            saver = save_checkpoint if checkpoints else None
            _train(cfg, sim, history, log, round_end, saver, stop, quiet)
    except RunDiverged as exc:
        if folder is not None:
            folder.finish(
                {
                    "status": DIVERGED,
                    "complete": False,
                    "round": exc.round,
                    "reason": exc.reason,
                    "rounds": cfg.rounds,
                    "last_valid": history[-1] if history else None,
                }
            )
        raise
    except RunInterrupted as exc:
        command = f"mosaic-fast run --resume {folder.path}" if folder is not None else None
        raise RunInterrupted(exc.signum, command) from None
    except CallbackError:
        if checkpoints and sim.rounds_done:  # the rounds done so far are not lost
            save_checkpoint()
        raise

    summary = summarize(cfg, history, sim.lower_is_better)
    if folder is not None:
        folder.finish(summary)
    return Outcome(summary, history, sim)


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
        return Outcome(summary, folder.history(), None), None, None, None
    if resume and status == DIVERGED:
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


def _called(fn: Callable, hook: str, sim: Simulation, *args: Any) -> Any:
    """``fn(*args)``; anything it raises becomes a CallbackError naming it and the round."""
    try:
        return fn(*args)
    except Exception as exc:
        raise CallbackError(
            f"{hook} callback {describe(fn)} raised {first_line(exc)} "
            f"(after round {sim.rounds_done})"
        ) from exc


def _extra_metrics(fn: Callable, extra: Any, rec: dict[str, Any]) -> dict[str, float]:
    """The extra metrics ``fn`` returned (None: none), checked to be numbers under names the
    record ``rec`` does not hold yet (so no built-in field, nor another callback's, is replaced)."""
    if extra is None:
        return {}
    where = f"on_evaluate callback {describe(fn)}"
    if not isinstance(extra, dict):
        raise CallbackError(f"{where} returned {type(extra).__name__}; return a dict or None")
    out = {}
    for name, value in extra.items():
        if not isinstance(name, str) or name in rec:
            raise CallbackError(f"{where} returned metric name {name!r}: names must be new strings")
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise CallbackError(f"{where} returned {name}={value!r}; metrics must be numbers")
        out[name] = float(value)
    return out


def _evaluates(cfg: ExperimentConfig, done: int) -> bool:
    """Whether the state after ``done`` rounds is evaluated: round 0, the last, and the rounds of
    ``eval_at`` (else every ``eval_every`` rounds) unless ``eval_every_s`` sets a schedule in
    simulated time instead."""
    if done in (0, cfg.rounds):
        return True
    if cfg.eval_every_s is not None:
        return False
    if cfg.eval_at is not None:
        return done in _scheduled_rounds(cfg.eval_at, cfg.rounds)
    return done % cfg.eval_every == 0


@functools.lru_cache(maxsize=8)
def _scheduled_rounds(eval_at: str, rounds: int) -> frozenset[int]:
    return frozenset(evaluation_rounds(eval_at, rounds))


def _crossed(cfg: ExperimentConfig, before: float, after: float) -> bool:
    """Whether the round from simulated time ``before`` to ``after`` passed a multiple of
    ``eval_every_s`` (synchronous runs evaluate at the first round boundary after it;
    asynchronous ones evaluate at the multiples themselves, ``Simulation.evaluation_times``)."""
    if cfg.eval_every_s is None or cfg.algorithm not in Simulation.ALGORITHMS:
        return False
    return math.floor(after / cfg.eval_every_s) > math.floor(before / cfg.eval_every_s)


def _train(cfg, sim, history, log, round_end, save_checkpoint, stop, quiet) -> None:
    progress = _Progress(cfg, sim.rounds_done, quiet)
    progress.evaluated(history[-1], sim.rounds_done)
    try:
        for t in range(sim.rounds_done, cfg.rounds):
            before = sim.sim_time_s
            inside, at_end = sim.evaluation_times(t)
            for at in inside:  # asynchronous runs evaluate at the times themselves
                sim.advance_to(at)
                _check_finite(sim, cfg, params=True)
                log(sim.metrics())
                progress.evaluated(history[-1], sim.rounds_done)
            sim.train_round(t)
            done = t + 1
            out_of_time = cfg.time_budget is not None and sim.sim_time_s >= cfg.time_budget
            evaluate = _evaluates(cfg, done) or out_of_time or at_end
            evaluate = evaluate or _crossed(cfg, before, sim.sim_time_s)
            _check_finite(sim, cfg, params=evaluate)
            round_end()
            if evaluate:
                log(sim.metrics())
                progress.evaluated(history[-1], done)
            progress.update()
            periodic = cfg.checkpoint_every and done % cfg.checkpoint_every == 0
            stopping = sim.any_rank(stop.received is not None)  # ranks stop together
            if save_checkpoint is not None and (periodic or stopping):
                save_checkpoint()
            if stopping and done < cfg.rounds:
                raise RunInterrupted(stop.received or signal.SIGTERM, None)
            if out_of_time:  # the summary's final record says where the budget ran out
                return
    finally:
        progress.close()
