"""What every simulation holds: the parts of a run and the counters of what it did.

:class:`NetworkState` is the common ground of the synchronous rounds (:mod:`.rounds`) and the
event loop (:mod:`.events`): the live (n, d) buffer ``X``, the trainer, sampler and node data,
the model world, the evaluation record and the checkpoint entries every run writes.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np
import torch

from .. import state_dicts as checked
from ..errors import MosaicValueError
from .consensus import consensus_distance
from .parts import Parts
from .placement import OneProcess, Placement
from .protocols import Protocol
from .sampler import NodeSampler

_STATE_KEYS = (
    "rounds_done",
    "X",
    "trainer",
    "sampler",
    "last_loss",
    "last_sent",
    "train_seconds",
    "eval_seconds",
    "sim_time_s",
)


class NetworkState:
    """The state of a run. ``X`` (float32 (n, d), contiguous) holds the live models;
    ``rounds_done`` counts rounds; ``protocol`` is the algorithm and ``placement`` where the
    nodes' steps run (one process, or blocks on ranks)."""

    synchronous: ClassVar[bool]
    _loss_total: torch.Tensor | None  # the last round's per-node loss sums, until read
    _last_loss: float | None

    def _attach(self, parts: Parts, protocol: Protocol, placement: Placement | None = None) -> None:
        """Take the built ``parts`` (this builds nothing)."""
        self.cfg, self.device, self.protocol = parts.cfg, parts.device, protocol
        self.model = parts.model
        self.module_model, self.spec = parts.model.module_model, parts.model.spec
        self.trainer, self.strategy = parts.trainer, parts.strategy
        self.node_data, self.sampler = parts.node_data, parts.sampler
        self.metric_name, self.lower_is_better = parts.metric_name, parts.lower_is_better
        self.fragments, self.graph_source = parts.fragments, parts.graph_source
        self.X, self._spare = parts.X, parts.spare
        self.measured_step_time_s = parts.measured_step_time_s
        self.network_spec = parts.network
        self.placement = placement if placement is not None else OneProcess()
        self.sim_time_s = 0.0
        self.rounds_done = 0
        self.last_loss = None
        self.last_sent = 0.0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0

    def train_round(self, t: int) -> None:
        """Round ``t`` (0-based); each engine defines it."""
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return int(self.X.shape[1])

    @property
    def model_name(self) -> str:
        return self.model.name

    def node_model(self, i: int) -> torch.nn.Module:
        """Node ``i``'s model as a standalone ``nn.Module`` (CPU, eval mode)."""
        if not 0 <= i < self.cfg.nodes:
            raise MosaicValueError(f"node {i} is out of range for {self.cfg.nodes} nodes")
        return self.model.node_module(self.params(), i)

    def params(self) -> torch.Tensor:
        """The live (n, d) buffer, every row current (a distributed run first fetches the rows
        other ranks hold: every rank calls it at the same point)."""
        return self.placement.current(self.X)

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank (one process: ``flag``)."""
        return self.placement.any_rank(flag)

    def _seeded_randomness(self, t: int) -> Any:
        """A user model may draw random numbers (dropout): from torch's RNG seeded by (seed,
        ``t``), so that a run and its resumption draw the same."""
        return self.model.seeded(self.cfg.seed, t, self.device)

    @property
    def last_loss(self) -> float | None:
        """Mean training loss of the last round over its steps and nodes (None before one). The
        round leaves the per-node sums on the device; reading this copies them to the host."""
        if self._loss_total is not None:
            total, self._loss_total = self._loss_total, None
            assert self.cfg.local_steps is not None  # the engine reads resolved configs
            self._last_loss = float(total.double().mean() / self.cfg.local_steps)
        return self._last_loss

    @last_loss.setter
    def last_loss(self, value: float | None) -> None:
        self._last_loss, self._loss_total = value, None

    @torch.no_grad()
    def metrics(self) -> dict[str, Any]:
        """The evaluation record of the current state (see the run folder contract)."""
        return self.placement.evaluated(self, self._evaluate)

    def _evaluate(self) -> dict[str, Any]:
        start = time.perf_counter()
        scores = self.node_data.evaluate(self.X)
        consensus = consensus_distance(self.X)
        self.eval_seconds += time.perf_counter() - start
        return {
            "round": self.rounds_done,
            "metric": self.metric_name,
            "node_mean": float(np.mean(scores.per_node)),
            "node_std": float(np.std(scores.per_node)),
            "node_mean_se": scores.node_mean_se,
            "avg_model": scores.avg_model,
            "consensus_distance": float(consensus),
            "sent_params_per_node": self.last_sent if self.rounds_done else 0.0,
            "sent_bytes_per_node": 4.0 * self.last_sent if self.rounds_done else 0.0,
            "train_loss": self.last_loss if self.rounds_done else None,
            "wall_time_s": self.train_seconds,
            "eval_time_s": self.eval_seconds,
            "sim_time_s": self.sim_time_s,
        }

    def state_dict(self) -> dict[str, Any]:
        """A CPU snapshot of the run: tensors and plain Python values only.

        ``torch.load(path, weights_only=True)`` reads it back. Neither torch's nor numpy's global
        RNG is part of it: nothing in a run draws from them (every stream is seeded). A
        distributed run first gathers every block's state (a collective).
        """
        self.placement.gather_state(self)
        state = {
            "rounds_done": self.rounds_done,
            "X": self.X.detach().to("cpu", copy=True),
            "trainer": self.trainer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "last_loss": self.last_loss,
            "last_sent": self.last_sent,
            "train_seconds": self.train_seconds,
            "eval_seconds": self.eval_seconds,
            "sim_time_s": self.sim_time_s,
        }
        buffers = self.model.buffers_state()
        if buffers is not None:
            state["buffers"] = buffers
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. Every entry is checked first: a malformed one is a
        MosaicValueError naming it, and then nothing has changed."""
        keys = _STATE_KEYS + (("buffers",) if self.module_model is not None else ())
        if isinstance(state, dict) and "eval_seconds" not in state:
            state = {**state, "eval_seconds": 0.0}  # a checkpoint from before evaluation timing
        state = checked.entries(state, "simulation", keys)
        X = checked.tensor(state["X"], "X", torch.float32, tuple(self.X.shape))
        rounds_done = checked.integer(state["rounds_done"], "rounds_done")
        last_loss = checked.number(state["last_loss"], "last_loss", optional=True)
        last_sent = checked.number(state["last_sent"], "last_sent")
        train_seconds = checked.number(state["train_seconds"], "train_seconds")
        eval_seconds = checked.number(state["eval_seconds"], "eval_seconds")
        sim_time_s = checked.number(state["sim_time_s"], "sim_time_s")
        # Restored into a new sampler, so that a malformed trainer state leaves this one as it was.
        sampler = NodeSampler(self.sampler.parts, self.cfg.seed)
        sampler.load_state_dict(state["sampler"])
        if self.module_model is not None:
            self.model.load_buffers(state["buffers"])
        self.trainer.load_state_dict(state["trainer"])
        self.sampler = sampler
        self.X.copy_(X)
        self.rounds_done, self.last_loss = rounds_done, last_loss
        self.last_sent, self.train_seconds = last_sent, train_seconds
        self.eval_seconds = eval_seconds
        self.sim_time_s = sim_time_s
