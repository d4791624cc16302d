"""One Mosaic Learning network in memory: all node models in one (n, d) buffer, rounds, metrics, state."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import state_dicts as checked
from ..data import ClassificationData
from ..errors import MosaicTypeError, MosaicValueError
from ..kernel import empty_params
from ..models import ParamLayout
from ..models.module_model import ModuleModel
from ..network.clock import RoundClock, profile_step_time
from ..settings import MODELS, ExperimentConfig, is_reference
from ..tasks import ImageClassificationTask, task_for
from ..tasks.supervised import LossMetric, SupervisedNodeData, split, supervised_data
from ..topology import GraphSource, fragments_for
from ..user_code import first_line, import_reference
from .consensus import consensus_distance
from .memory import require_memory, sample_bytes
from .optim import optimizer_from_config
from .run_network import network_from_config
from .sampler import NodeSampler
from .trainer import best_time, make_trainer, synchronize


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``; MosaicValueError (one line) when CUDA is not
    available to torch or has no GPU ``N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device(name)
    if name != "cuda" and not re.fullmatch(r"cuda:\d+", name):
        raise MosaicValueError(f"unknown device {name!r}; choose cpu, cuda, cuda:N or auto")
    if not torch.cuda.is_available():
        raise MosaicValueError(
            f"device={name!r} but CUDA is not available to torch on this machine"
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        gpus = "GPU 0 only" if count == 1 else f"GPUs 0-{count - 1}"
        raise MosaicValueError(f"device={name!r} but this machine has {gpus}")
    return device


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Apply the ``deterministic`` setting for a run on ``device`` (process-wide, as torch's flags
    are). On CUDA, on: torch's deterministic algorithms (an operation without a deterministic
    CUDA implementation then fails in one line, see :func:`.trainer.nondeterministic_error`),
    cuDNN's deterministic convolutions without autotuning, no TF32 in matrix products and
    convolutions, and scatter-adds in a fixed order (:func:`mosaic_fast.device.add_rows_`); off: torch's
    defaults. On CPU nothing changes: every CPU result is already independent of scheduling."""
    if device.type != "cuda":
        return
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; read when its handle is created.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    # TF32 off for matrix products (torch's default) and for convolutions (not the default).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = not deterministic


@dataclass(frozen=True)
class UserCode:
    """Python objects from the public API that no setting can hold (see :class:`mosaic_fast.Experiment`).

    The matching settings hold their labels (``module:attr`` references or ``<name>``).
    """

    model: Callable[[], Any] | None = None
    train: Any = None
    test: Any = None
    loss: Callable | None = None
    metric: Any = None
    optimizer: Any = None
    topology: Any = None
    fragmenter: Any = None
    partition: Sequence[Any] | None = None


def load_data(cfg: ExperimentConfig) -> Any:
    from ..data import load_dataset

    return load_dataset(cfg.dataset, data_dir=cfg.data_dir, seed=cfg.seed)


def _user_data(cfg: ExperimentConfig, user: UserCode) -> tuple[Any, Any]:
    """(train, test) from the user's objects, or from the ``module:loader`` the dataset names."""
    if user.train is not None:
        return user.train, user.test
    loader = import_reference(cfg.dataset, "dataset")
    if not callable(loader):
        raise MosaicTypeError(
            f"dataset {cfg.dataset!r} is not callable; it must return (train, test)"
        )
    try:
        loaded = loader()
    except Exception as exc:
        raise MosaicValueError(f"dataset loader {cfg.dataset} raised {first_line(exc)}") from None
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
        raise MosaicTypeError(
            f"dataset loader {cfg.dataset} must return (train, test), got {type(loaded).__name__}"
        )
    return loaded[0], loaded[1]


def _builtin_images(data: Any, name: str) -> ClassificationData:
    """User images with one class each, as the container GN-LeNet's built-in task trains on."""
    sup = supervised_data(data[0], data[1], name)
    if sup.x_train.dim() != 4 or not sup.x_train.is_floating_point() or not sup.classification:
        raise MosaicValueError(
            "model='gn-lenet' needs float images (N, C, S, S) with integer class targets, got "
            f"inputs {tuple(sup.x_train.shape)} {sup.x_train.dtype}, targets {sup.y_train.dtype}"
        )
    classes = int(max(sup.y_train.max(), sup.y_test.max())) + 1
    return ClassificationData(
        name, sup.x_train, sup.y_train, sup.x_test, sup.y_test, classes, None, None
    )


def per_node_seed(seed: int, node: int) -> int:
    """The seed of node ``node``'s initial model under ``init='per-node'``: distinct from the
    shared draw's ``seed`` and from every other run's nodes."""
    return (seed + 1) * 1_000_003 + node


class Simulation:
    """State of a run. ``X`` (float32 (n, d), contiguous) holds the live models; ``rounds_done`` counts rounds.

    Gossip writes into a second buffer of the same shape; the two are then swapped, so no round
    copies ``X`` (the trainers take views of whichever buffer is live at each step).
    """

    ALGORITHMS = ("mosaic",)

    def __init__(
        self,
        cfg: ExperimentConfig,
        device: torch.device,
        data: Any = None,
        user: UserCode | None = None,
        strategy: str | None = None,
        step_time_s: float | None = None,
    ) -> None:
        """``data``: a loaded built-in dataset (else loaded by ``cfg``); ``user``: the public API's
        objects; ``strategy``: the trainer strategy a resumed run chose (else ``cfg.trainer``);
        ``step_time_s``: the step time a resumed run measured (else measured here when needed)."""
        self.cfg, self.device = cfg, device
        configure_determinism(cfg.deterministic, device)
        if cfg.algorithm not in self.ALGORITHMS:
            raise MosaicValueError(
                f"algorithm={cfg.algorithm!r} is not simulated by {type(self).__name__}; "
                "build the run's simulation with make_simulation"
            )
        user = user if user is not None else UserCode()
        self.module_model: ModuleModel | None = None
        factory = user.model
        if factory is None and is_reference(cfg.model):
            factory = import_reference(cfg.model, "model")
        if factory is None and cfg.model not in MODELS:
            import_reference(cfg.model, "model")  # an object label: one line saying so
        builtin_data = user.train is None and not is_reference(cfg.dataset)
        if data is None and builtin_data and cfg.dataset.startswith("<"):
            import_reference(cfg.dataset, "dataset")  # an object label: one line saying so
        if data is None:
            data = load_data(cfg) if builtin_data else _user_data(cfg, user)
        if factory is None:
            layout, initial = self._builtin_model(cfg, device, data, user, strategy or cfg.trainer)
        else:
            layout, initial = self._module_model(
                cfg, device, data, factory, user, strategy or cfg.trainer
            )
        d = layout.n_params
        self.fragments = fragments_for(
            cfg.fragmenter,
            cfg.K,
            layout.layer_sizes(),
            d,
            cfg.seed,
            cfg.block_size,
            user.fragmenter,
        )
        topology = user.topology
        if topology is None and is_reference(cfg.topology):
            topology = import_reference(cfg.topology, "topology")
        self.graph_source = GraphSource.from_setting(
            cfg.topology, cfg.nodes, cfg.K, cfg.degree, cfg.seed, topology
        )
        # Both gossip buffers from empty_params: huge pages on CPU make the kernel ~15% faster.
        self.X = empty_params(cfg.nodes, d, device=device)
        self.X.copy_(initial.to(device).expand(cfg.nodes, d))
        if cfg.init == "per-node":
            self._draw_per_node_init()
        self._spare = empty_params(cfg.nodes, d, device=device)
        self.measured_step_time_s: float | None = None
        if cfg.step_time is None and cfg.network is None:
            self.measured_step_time_s = step_time_s or self._measure_step_time()
        network = network_from_config(cfg, measured_step_time_s=self.measured_step_time_s)
        self.clock = RoundClock(network, cfg.local_steps, bandwidth_sharing=cfg.bandwidth_sharing)
        self.sim_time_s = 0.0
        self.rounds_done = 0
        self.last_loss = None
        self.last_sent = 0.0
        self.train_seconds = 0.0
        self.eval_seconds = 0.0

    def _builtin_model(
        self, cfg, device, data, user: UserCode, requested: str
    ) -> tuple[ParamLayout, torch.Tensor]:
        """Set up a built-in model's task; returns its row layout and initial row."""
        if isinstance(data, tuple):  # user data for a built-in model: only images for GN-LeNet
            if cfg.model != "gn-lenet":
                raise MosaicValueError(
                    f"model={cfg.model!r} is built for its own dataset "
                    f"({'shakespeare' if cfg.model == 'lstm' else 'movielens'}); "
                    "pass a torch.nn.Module factory as the model for your data"
                )
            data = _builtin_images(data, cfg.dataset)
            self.task = ImageClassificationTask(data)
        else:
            self.task = task_for(data)
        self.spec = self.task.model_spec(cfg)
        if self.spec.name != cfg.model:
            raise MosaicValueError(
                f"model={cfg.model!r} does not fit {cfg.dataset} (its model is {self.spec.name!r}); "
                "pass a torch.nn.Module factory to train another model on it"
            )
        require_memory(cfg, self.spec.layout.n_params, device, sample_bytes(data))
        parts = self.task.partition(cfg)
        self.strategy = self.task.trainer_strategy(requested, device)
        self.trainer = make_trainer(
            self.spec,
            cfg.nodes,
            optimizer_from_config(cfg, user.optimizer),
            device,
            self.strategy,
        )
        self.node_data = self.task.node_data(cfg, self.spec, parts, device, self.strategy)
        self.sampler = NodeSampler(parts, cfg.seed)
        self.metric_name = self.spec.metric
        self.lower_is_better = self.spec.lower_is_better
        return self.spec.layout, self.spec.init_params(cfg.seed)

    def _module_model(
        self, cfg, device, data, factory, user: UserCode, requested: str
    ) -> tuple[ParamLayout, torch.Tensor]:
        """Set up a user's module on (inputs, targets) data; returns its row layout and initial row."""
        from .module_trainer import make_module_trainer

        if not isinstance(data, tuple):
            data = (data, None)
        sup = supervised_data(data[0], data[1], cfg.dataset)
        model = ModuleModel(factory, cfg.seed, cfg.nodes, device, gossip_buffers=cfg.gossip_buffers)
        require_memory(cfg, model.layout.n_params, device, sample_bytes(sup))
        scoring = LossMetric(sup, user.loss, user.metric)
        parts = split(
            sup,
            user.partition if user.partition is not None else cfg.partition,
            cfg.nodes,
            alpha=cfg.alpha,
            shards_per_node=cfg.shards_per_node,
            seed=cfg.seed,
        )
        self.module_model, self.spec = model, None
        self.node_data = SupervisedNodeData(sup, model, scoring, device, cfg.test_samples)
        self.sampler = NodeSampler(parts, cfg.seed)
        self.trainer = make_module_trainer(
            model,
            scoring.loss,
            cfg.nodes,
            optimizer_from_config(cfg, user.optimizer),
            device,
            requested,
            self._first_batch(),
        )
        self.strategy = self.trainer.strategy
        self.metric_name = scoring.name
        self.lower_is_better = scoring.lower_is_better
        return model.layout, model.init_params()

    def _draw_per_node_init(self) -> None:
        """Node i's row from its own seeded draw of the model (``init='per-node'``)."""
        seeded_row = (
            self.spec.init_params if self.module_model is None else self.module_model.init_params
        )
        for i in range(self.cfg.nodes):
            self.X[i].copy_(seeded_row(per_node_seed(self.cfg.seed, i)))
        if torch.equal(self.X[0], self.X[1]):
            raise MosaicValueError(
                "init='per-node': nodes 0 and 1 drew the same initial model, so the model factory "
                "ignores torch's seed (does it seed itself?); use init='shared' or draw from torch's RNG"
            )

    @property
    def n_params(self) -> int:
        return int(self.X.shape[1])

    @property
    def model_name(self) -> str:
        return self.spec.name if self.module_model is None else self.module_model.name

    def node_model(self, i: int) -> torch.nn.Module:
        """Node ``i``'s model as a standalone ``nn.Module`` (CPU, eval mode)."""
        if not 0 <= i < self.cfg.nodes:
            raise MosaicValueError(f"node {i} is out of range for {self.cfg.nodes} nodes")
        X = self.params()
        if self.module_model is not None:
            return self.module_model.node_module(X, i)
        module = self.spec.module(0)
        views = self.spec.layout.row_views(X[i].detach().to("cpu", copy=True))
        module.load_state_dict(views, strict=False)
        return module.eval()

    def params(self) -> torch.Tensor:
        """The live (n, d) buffer, every row current (a distributed run first fetches the rows
        other ranks hold: every rank calls it at the same point)."""
        return self.X

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank (one process: ``flag``)."""
        return flag

    def evaluation_times(self, t: int) -> tuple[list[float], bool]:
        """Simulated times inside round ``t`` to evaluate at, and whether its end is one: none
        (rounds are indivisible here; the driver evaluates at the first round end after each
        multiple of ``eval_every_s``)."""
        return [], False

    def advance_to(self, until: float) -> None:
        """Nodes on their own clocks stop at any time (AsyncSimulation); rounds here cannot."""
        raise MosaicValueError("synchronous rounds cannot stop inside a round")

    def train_round(self, t: int) -> None:
        """Round ``t`` (0-based): H local steps on every node, then fragment-wise gossip."""
        from ..kernel import aggregate

        start = time.perf_counter()
        graphs = self.graph_source.graphs(t)
        total = self._local_steps(t, graphs)
        aggregate(self.X, graphs, self.fragments, out=self._spare)
        self.sim_time_s += self.clock.round_seconds(graphs, self.fragments)
        self.X, self._spare = self._spare, self.X
        self._loss_total = total  # on the device until someone reads last_loss
        self.last_sent = float(np.mean(graphs.sent_params(self.fragments)))
        self.rounds_done = t + 1
        synchronize(self.device)  # the round's one wait for the device: its wall time is measured
        self.train_seconds += time.perf_counter() - start

    def _local_steps(self, t: int, graphs: Any) -> torch.Tensor:
        """Round ``t``'s local steps of every node (before gossip over ``graphs``); returns each
        node's summed losses (n,)."""
        cfg = self.cfg
        total = torch.zeros(cfg.nodes, device=self.device)
        # The round's sample indices in one copy that does not block the host; each step's are
        # a view of them, so the steps queue on the device without a sync.
        idx = self.node_data.indices(self.sampler.next_steps(cfg.local_steps, cfg.batch_size))
        with self._seeded_randomness(t):
            for step in range(cfg.local_steps):
                batch = self.node_data.batch(idx[step])
                total += self.trainer.step(self.X, batch)
        return total

    @property
    def last_loss(self) -> float | None:
        """Mean training loss of the last round over its steps and nodes (None before one). The
        round leaves the per-node sums on the device; reading this copies them to the host."""
        if self._loss_total is not None:
            total, self._loss_total = self._loss_total, None
            self._last_loss = float(total.double().mean() / self.cfg.local_steps)
        return self._last_loss

    @last_loss.setter
    def last_loss(self, value: float | None) -> None:
        self._last_loss, self._loss_total = value, None

    def _first_batch(self) -> tuple[torch.Tensor, ...]:
        """Every node's first minibatch, from a fresh sampler: trials run on it, the run's own
        sampler is left alone."""
        cfg = self.cfg
        return self.node_data.batch(NodeSampler(self.sampler.parts, cfg.seed).next(cfg.batch_size))

    def _measure_step_time(self) -> float:
        """Seconds one node's local step takes: with ``device_profile`` ``measured``, a network
        step on copies timed here, over n (the nodes' steps run one after another on this
        machine's cores); else from the step's FLOPs and the profile (:func:`.clock.
        profile_step_time`: the same in every run)."""
        trainer, X, batch = self.trainer, self.X.clone(), self._first_batch()
        saved = self.module_model.state_dict() if self.module_model is not None else None
        optimizer_state = trainer.state_dict()  # the trial steps must leave no trace
        try:
            with self._seeded_randomness(0):
                if self.cfg.device_profile != "measured":
                    return profile_step_time(
                        lambda: trainer.step(X, batch), self.cfg.device_profile, self.cfg.nodes
                    )
                elapsed = best_time(lambda: trainer.step(X, batch), self.device, repeats=1)
        finally:
            trainer.load_state_dict(optimizer_state)
            if saved is not None:
                self.module_model.load_state_dict(saved)
        return max(elapsed, 1e-9) / self.cfg.nodes

    @contextmanager
    def _seeded_randomness(self, t: int):
        """A user model may draw random numbers (dropout): from torch's RNG seeded by (seed, round),
        so that a run and its resumption draw the same; the caller's RNG state is left alone."""
        if self.module_model is None:  # built-in models draw nothing
            yield
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_ROUND_SEED * self.cfg.seed + t)
            yield

    @torch.no_grad()
    def metrics(self) -> dict[str, Any]:
        """The evaluation record of the current state (see the run folder contract)."""
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
        RNG is part of it: nothing in a run draws from them (every stream is seeded).
        """
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
        if self.module_model is not None:
            state["buffers"] = self.module_model.state_dict()
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
            self.module_model.load_state_dict(state["buffers"])
        self.trainer.load_state_dict(state["trainer"])
        self.sampler = sampler
        self.X.copy_(X)
        self.rounds_done, self.last_loss = rounds_done, last_loss
        self.last_sent, self.train_seconds = last_sent, train_seconds
        self.eval_seconds = eval_seconds
        self.sim_time_s = sim_time_s


_ROUND_SEED = 1_000_003  # seeds of the rounds of different run seeds do not collide
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
