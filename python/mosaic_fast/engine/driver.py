"""The run loop: rounds, the evaluation schedule, callbacks, signals, checkpoints and divergence.

:class:`Driver` drives a built simulation to ``cfg.rounds`` and writes what it finds into the
run folder (when there is one). The run stops loudly: a non-finite training loss, non-finite
parameters at an evaluation, or an evaluation whose metrics are not finite ends it with
:class:`RunDiverged`; SIGINT and SIGTERM let the current round finish, write a checkpoint, and
end it with :class:`RunInterrupted`.
"""

from __future__ import annotations

import functools
import math
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol
from warnings import warn

import numpy as np
import torch

from ..errors import CallbackError, CheckpointCostWarning, RunDiverged, RunInterrupted
from ..results.folder import RunFolder
from ..results.layout import DIVERGED
from ..settings import ExperimentConfig, evaluation_rounds
from ..user_code import describe, first_line
from .events import AsyncSimulation
from .progress import Progress
from .state import NetworkState


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
    simulation: NetworkState

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


class Driver:
    """One process's part of a run: ``sim`` from its ``rounds_done`` to ``cfg.rounds``.

    ``history`` holds the records so far (a resumed run's); ``folder`` is written when given;
    ``observers`` hear the start and every evaluation; ``checkpoints``: whether to write them
    (a distributed run's ranks take part in every checkpoint, whether or not they write it)."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        sim: NetworkState,
        history: list[dict[str, Any]],
        folder: RunFolder | None,
        callbacks: Callbacks,
        *,
        observers: Sequence[RunObserver],
        checkpoints: bool,
        quiet: bool,
    ) -> None:
        self.cfg, self.sim, self.history, self.folder = cfg, sim, history, folder
        self.callbacks, self.observers = callbacks, observers
        self.checkpoints, self.quiet = checkpoints, quiet
        self._cost_told = False  # the checkpoints' cost is told once

    def state(self) -> RunState:
        sim = self.sim
        return RunState(sim.rounds_done, sim.params(), self.history, self.cfg, sim)

    def run(self) -> None:
        """Every round left; the folder's summary records a divergence."""
        cfg, sim, folder, history = self.cfg, self.sim, self.folder, self.history
        for observer in self.observers:
            observer.run_started(self.state(), folder.path if folder is not None else None)
        try:
            with _StopSignals().installed() as stop:
                # A fresh run, or a checkpoint of a round whose evaluation did not finish (a
                # callback raised): evaluate the state it holds first.
                if not history or (
                    history[-1]["round"] < sim.rounds_done and _evaluates(cfg, sim.rounds_done)
                ):
                    self.log(sim.metrics())
                self._loop(stop)
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
            if self.checkpoints and sim.rounds_done:  # the rounds done so far are not lost
                self.save_checkpoint()
            raise

    def _loop(self, stop: _StopSignals) -> None:
        progress = Progress(self.cfg, self.sim.rounds_done, self.quiet)
        progress.evaluated(self.history[-1], self.sim.rounds_done)
        try:
            for t in range(self.sim.rounds_done, self.cfg.rounds):
                if self._round(t, stop, progress):
                    return
        finally:
            progress.close()

    def _round(self, t: int, stop: _StopSignals, progress: Progress) -> bool:
        """Round ``t`` with its evaluations, callbacks and checkpoint; whether the run stops
        here (the time budget ran out)."""
        cfg, sim = self.cfg, self.sim
        before = sim.sim_time_s
        at_end = False
        if not sim.synchronous:  # nodes on their own clocks evaluate at the times themselves
            assert isinstance(sim, AsyncSimulation)  # the one engine that is not synchronous
            inside, at_end = sim.evaluation_times(t)
            for at in inside:
                sim.advance_to(at)
                _check_finite(sim, cfg, params=True)
                self.log(sim.metrics())
                progress.evaluated(self.history[-1], sim.rounds_done)
        sim.train_round(t)
        done = t + 1
        out_of_time = cfg.time_budget is not None and sim.sim_time_s >= cfg.time_budget
        evaluate = _evaluates(cfg, done) or out_of_time or at_end
        evaluate = evaluate or _crossed(cfg, sim, before, sim.sim_time_s)
        _check_finite(sim, cfg, params=evaluate)
        self.round_end()
        if evaluate:
            self.log(sim.metrics())
            progress.evaluated(self.history[-1], done)
        progress.update()
        periodic = cfg.checkpoint_every and done % cfg.checkpoint_every == 0
        stopping = sim.any_rank(stop.received is not None)  # ranks stop together
        if self.checkpoints and (periodic or stopping):
            self.save_checkpoint()
        if stopping and done < cfg.rounds:
            raise RunInterrupted(stop.received or signal.SIGTERM, None)
        return out_of_time  # the summary's final record says where the budget ran out

    def log(self, rec: dict[str, Any]) -> None:
        """An evaluation record: checked, extended by the callbacks, kept and written."""
        _check_record(rec, self.cfg)
        for fn in self.callbacks.on_evaluate:
            extra = _called(fn, "on_evaluate", self.sim, self.state(), rec)
            rec.update(_extra_metrics(fn, extra, rec))
        self.history.append(rec)
        if self.folder is not None:
            self.folder.append_metrics(rec)
        for observer in self.observers:
            observer.evaluated(self.state(), rec)

    def round_end(self) -> None:
        for fn in self.callbacks.on_round_end:
            if _called(fn, "on_round_end", self.sim, self.state()) is not None:
                raise CallbackError(
                    f"on_round_end callback {describe(fn)} returned a value; it must return None "
                    "(extra metrics come from on_evaluate)"
                )

    def save_checkpoint(self) -> None:
        """Distributed: a collective on every rank (the state of every block); rank 0 writes it."""
        cfg, sim, folder = self.cfg, self.sim, self.folder
        start = perf_counter()
        state = {"config": cfg.to_dict(), "simulation": sim.state_dict(), "history": self.history}
        if folder is None:
            return
        folder.save_checkpoint(state)
        note = _checkpoint_cost(
            cfg, perf_counter() - start, folder.checkpoint_bytes(), _round_seconds(sim)
        )
        periodic = cfg.checkpoint_every and sim.rounds_done % cfg.checkpoint_every == 0
        if note is not None and periodic and not self._cost_told:  # not a signal's one-off
            self._cost_told = True
            warn(note, CheckpointCostWarning, stacklevel=2)


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
    def installed(self) -> Iterator[_StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach only the main thread; nothing to catch here
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _round_seconds(sim: NetworkState) -> float | None:
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


def _check_finite(sim: NetworkState, cfg: ExperimentConfig, *, params: bool) -> None:
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


def _called(fn: Callable[..., Any], hook: str, sim: NetworkState, *args: Any) -> Any:
    """``fn(*args)``; anything it raises becomes a CallbackError naming it and the round."""
    try:
        return fn(*args)
    except Exception as exc:
        raise CallbackError(
            f"{hook} callback {describe(fn)} raised {first_line(exc)} "
            f"(after round {sim.rounds_done})"
        ) from exc


def _extra_metrics(fn: Callable[..., Any], extra: Any, rec: dict[str, Any]) -> dict[str, float]:
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


def _crossed(cfg: ExperimentConfig, sim: NetworkState, before: float, after: float) -> bool:
    """Whether the round from simulated time ``before`` to ``after`` passed a multiple of
    ``eval_every_s`` (synchronous runs evaluate at the first round boundary after it; nodes on
    their own clocks evaluate at the multiples themselves, ``AsyncSimulation.evaluation_times``)."""
    if cfg.eval_every_s is None or not sim.synchronous:
        return False
    return math.floor(after / cfg.eval_every_s) > math.floor(before / cfg.eval_every_s)
