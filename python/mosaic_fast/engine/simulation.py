"""One Mosaic Learning network in memory: all node models in one (n, d) buffer, rounds, metrics, state."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..config import ExperimentConfig
from ..errors import MosaicValueError
from ..kernel import empty_params
from ..tasks import task_for
from . import state as checked
from .sampler import NodeSampler
from .trainer import SGDConfig, make_trainer


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` (MosaicValueError when CUDA is not available) or ``auto``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MosaicValueError("device='cuda' but CUDA is not available to torch on this machine")
    if name not in ("cpu", "cuda"):
        raise MosaicValueError(f"unknown device {name!r}; choose cpu, cuda or auto")
    return torch.device(name)


def load_data(cfg: ExperimentConfig) -> Any:
    from ..data import load_dataset

    return load_dataset(cfg.dataset, data_dir=cfg.data_dir, seed=cfg.seed)


def build_fragments(cfg: ExperimentConfig, layer_sizes: list[int], n_params: int) -> Any:
    from .. import FragmentMap

    if cfg.fragmenter == "contiguous":
        return FragmentMap.contiguous(n_params, cfg.K)
    if cfg.fragmenter == "random":
        return FragmentMap.random(n_params, cfg.K, seed=cfg.seed, layer_sizes=layer_sizes)
    return FragmentMap.blocks(n_params, cfg.K, block_size=cfg.block_size, seed=cfg.seed)


class Simulation:
    """State of a run. ``X`` (float32 (n, d), contiguous) holds the live models; ``rounds_done`` counts rounds.

    Gossip writes into a second buffer of the same shape; the two are then swapped, so no round
    copies ``X`` (the trainers take views of whichever buffer is live at each step).
    """

    def __init__(self, cfg: ExperimentConfig, device: torch.device, data: Any = None) -> None:
        self.cfg, self.device = cfg, device
        data = load_data(cfg) if data is None else data
        self.task = task_for(data)
        self.spec = self.task.model_spec(cfg)
        parts = self.task.partition(cfg)
        strategy = self.task.trainer_strategy(cfg.trainer, device)
        self.trainer = make_trainer(
            self.spec,
            cfg.nodes,
            SGDConfig(cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov),
            device,
            strategy,
        )
        self.node_data = self.task.node_data(cfg, self.spec, parts, device, strategy)
        self.sampler = NodeSampler(parts, cfg.seed)
        d = self.spec.n_params
        self.fragments = build_fragments(cfg, self.spec.layout.layer_sizes(), d)
        # Both gossip buffers from empty_params: huge pages on CPU make the kernel ~15% faster.
        self.X = empty_params(cfg.nodes, d, device=device)
        self.X.copy_(self.spec.init_params(cfg.seed).to(device).expand(cfg.nodes, d))
        self._spare = empty_params(cfg.nodes, d, device=device)
        self.rounds_done = 0
        self.last_loss: float | None = None
        self.last_sent = 0.0
        self.train_seconds = 0.0

    @property
    def n_params(self) -> int:
        return self.spec.n_params

    def train_round(self, t: int) -> None:
        """Round ``t`` (0-based): H local steps on every node, then fragment-wise gossip."""
        from .. import aggregate, sample_graphs

        cfg = self.cfg
        start = time.perf_counter()
        total = torch.zeros(cfg.nodes, device=self.device)
        for _ in range(cfg.local_steps):
            batch = self.node_data.batch(self.sampler.next(cfg.batch_size))
            total += self.trainer.step(self.X, batch)
        graphs = sample_graphs(
            cfg.nodes, cfg.K, cfg.degree, seed=cfg.seed, round=t, mode=cfg.topology
        )
        aggregate(self.X, graphs, self.fragments, out=self._spare)
        self.X, self._spare = self._spare, self.X
        self.last_loss = float(total.double().mean() / cfg.local_steps)
        self.last_sent = float(np.mean(graphs.sent_params(self.fragments)))
        self.rounds_done = t + 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.train_seconds += time.perf_counter() - start

    @torch.no_grad()
    def metrics(self) -> dict[str, Any]:
        """The evaluation record of the current state (see the run folder contract)."""
        scores = self.node_data.evaluate(self.X)
        Xd = self.X.double()
        consensus = torch.linalg.vector_norm(Xd - Xd.mean(0, keepdim=True), dim=1).mean()
        return {
            "round": self.rounds_done,
            "metric": self.spec.metric,
            "node_mean": float(np.mean(scores.per_node)),
            "node_std": float(np.std(scores.per_node)),
            "avg_model": scores.avg_model,
            "consensus_distance": float(consensus),
            "sent_params_per_node": self.last_sent if self.rounds_done else 0.0,
            "sent_bytes_per_node": 4.0 * self.last_sent if self.rounds_done else 0.0,
            "train_loss": self.last_loss if self.rounds_done else None,
            "wall_time_s": self.train_seconds,
        }

    def state_dict(self) -> dict[str, Any]:
        """A CPU snapshot of the run: tensors and plain Python values only.

        ``torch.load(path, weights_only=True)`` reads it back. Neither torch's nor numpy's global
        RNG is part of it: nothing in a run draws from them (every stream is seeded).
        """
        return {
            "rounds_done": self.rounds_done,
            "X": self.X.detach().to("cpu", copy=True),
            "trainer": self.trainer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "last_loss": self.last_loss,
            "last_sent": self.last_sent,
            "train_seconds": self.train_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`. Every entry is checked first: a malformed one is a
        MosaicValueError naming it, and then nothing has changed."""
        state = checked.entries(state, "simulation", _STATE_KEYS)
        X = checked.tensor(state["X"], "X", torch.float32, tuple(self.X.shape))
        rounds_done = checked.integer(state["rounds_done"], "rounds_done")
        last_loss = checked.number(state["last_loss"], "last_loss", optional=True)
        last_sent = checked.number(state["last_sent"], "last_sent")
        train_seconds = checked.number(state["train_seconds"], "train_seconds")
        # Restored into a new sampler, so that a malformed trainer state leaves this one as it was.
        sampler = NodeSampler(self.sampler.parts, self.cfg.seed)
        sampler.load_state_dict(state["sampler"])
        self.trainer.load_state_dict(state["trainer"])
        self.sampler = sampler
        self.X.copy_(X)
        self.rounds_done, self.last_loss = rounds_done, last_loss
        self.last_sent, self.train_seconds = last_sent, train_seconds


_STATE_KEYS = (
    "rounds_done",
    "X",
    "trainer",
    "sampler",
    "last_loss",
    "last_sent",
    "train_seconds",
)
