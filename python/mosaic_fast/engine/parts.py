"""A run's settings and user code made into the parts that run it (see :mod:`.build`).

:func:`build_parts` is the one place that builds: data, the model world and its trainer, the
sampler and node data, fragments, graphs, the parameter buffers, the measured step time and the
network. The simulations (:mod:`.rounds`, :mod:`.events`) only run what it built.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypedDict, cast

import torch

from ..errors import MosaicValueError
from ..kernel import empty_params
from ..network.clock import profile_step_time
from ..network.readers import is_csv
from ..network.spec import NetworkSpec, read_fedscale_network, read_network_csv, straggler_nodes
from ..network.units import parse_bandwidth, parse_duration
from ..settings import ExperimentConfig
from ..tasks import ImageClassificationTask, Task, task_for
from ..tasks.supervised import LossMetric, SupervisedNodeData, split, supervised_data
from ..topology import GraphSource, fragments_for
from ..user_code import Builtin, Object, decode, user_object
from .inputs import UserCode, builtin_images, configure_determinism, load_data, user_data
from .memory import require_memory, sample_bytes
from .model import BuiltinModel, UserModule, draw_per_node_init
from .optim import optimizer_from_config
from .sampler import NodeSampler
from .trainer import best_time, make_trainer

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's from Python 3.11

__all__ = [
    "BuildOptions",
    "Parts",
    "UserCode",
    "World",
    "build_parts",
    "load_data",
    "network_from_config",
]


@dataclass
class World:
    """A model world with the parts its kind of model sets up (before the buffers exist)."""

    model: BuiltinModel
    trainer: Any
    strategy: str
    node_data: Any
    sampler: NodeSampler
    metric_name: str
    lower_is_better: bool


@dataclass
class Parts(World):
    """What a run is made of, built from its settings and user code (see :func:`build_parts`):
    its :class:`World` and the rest.

    ``X`` and ``spare`` are the two float32 (n, d) gossip buffers (``X`` holds the initial models);
    ``measured_step_time_s`` is None when a setting or network file gives the step time.
    """

    cfg: ExperimentConfig
    device: torch.device
    fragments: Any
    graph_source: GraphSource
    X: torch.Tensor
    spare: torch.Tensor
    measured_step_time_s: float | None
    network: NetworkSpec


class BuildOptions(TypedDict, total=False):
    """What :func:`build_parts` takes beside the settings and the device (the simulations'
    constructors take the same)."""

    data: Any
    user: UserCode | None
    strategy: str | None
    step_time_s: float | None


def build_parts(
    cfg: ExperimentConfig, device: torch.device, **options: Unpack[BuildOptions]
) -> Parts:
    """The parts of ``cfg``'s run on ``device``. ``data``: a loaded built-in dataset (else loaded
    by ``cfg``); ``user``: the public API's objects; ``strategy``: the trainer strategy a resumed
    run chose (else ``cfg.trainer``); ``step_time_s``: the step time a resumed run measured (else
    measured here when needed)."""
    configure_determinism(cfg.deterministic, device)
    data, strategy, user = options.get("data"), options.get("strategy"), options.get("user")
    user = user if user is not None else UserCode()
    factory = _model_factory(cfg, user)
    dataset = decode("dataset", cfg.dataset)
    if data is None and user.train is None and isinstance(dataset, Object):
        dataset.load()  # an object label: one line saying so
    if data is None:
        builtin_data = user.train is None and isinstance(dataset, Builtin)
        data = load_data(cfg) if builtin_data else user_data(cfg, user)
    requested = strategy or cfg.trainer
    if factory is None:
        world = _builtin_world(cfg, device, data, user, requested)
    else:
        world = _module_world(cfg, device, data, factory, user, requested)
    layout = world.model.layout
    d = layout.n_params
    fragments = fragments_for(
        cfg.fragmenter, cfg.K, layout.layer_sizes(), d, cfg.seed, cfg.block_size, user.fragmenter
    )
    graph_source = GraphSource.from_setting(
        cfg.topology, cfg.nodes, cfg.K, cfg.degree, cfg.seed, _topology(cfg, user)
    )
    # Both gossip buffers from empty_params: huge pages on CPU make the kernel ~15% faster.
    X = empty_params(cfg.nodes, d, device=device)
    X.copy_(world.model.shared_row(cfg.seed).to(device).expand(cfg.nodes, d))
    if cfg.init == "per-node":
        draw_per_node_init(X, world.model, cfg.seed)
    spare = empty_params(cfg.nodes, d, device=device)
    measured = None
    if cfg.step_time is None and cfg.network is None:
        measured = options.get("step_time_s") or _measure_step_time(cfg, device, world, X)
    network = network_from_config(cfg, measured_step_time_s=measured)
    return Parts(
        **{f.name: getattr(world, f.name) for f in fields(World)},
        cfg=cfg, device=device, fragments=fragments, graph_source=graph_source, X=X, spare=spare,
        measured_step_time_s=measured, network=network,
    )  # fmt: skip


def _model_factory(cfg: ExperimentConfig, user: UserCode) -> Callable[[], Any] | None:
    """The user's model factory (an object or a ``module:attr`` reference), None for a built-in."""
    if user.model is not None:
        return user.model
    assert cfg.model is not None  # the engine reads resolved configs
    return cast("Callable[[], Any] | None", user_object("model", cfg.model))  # user code


def _topology(cfg: ExperimentConfig, user: UserCode) -> Any:
    return user.topology if user.topology is not None else user_object("topology", cfg.topology)


def _builtin_world(
    cfg: ExperimentConfig, device: torch.device, data: Any, user: UserCode, requested: str
) -> World:
    """A built-in model's task set up on ``data``."""
    if isinstance(data, tuple):  # user data for a built-in model: only images for GN-LeNet
        if cfg.model != "gn-lenet":
            raise MosaicValueError(
                f"model={cfg.model!r} is built for its own dataset "
                f"({'shakespeare' if cfg.model == 'lstm' else 'movielens'}); "
                "pass a torch.nn.Module factory as the model for your data"
            )
        data = builtin_images(data, cfg.dataset)
        task: Task[Any] = ImageClassificationTask(data)
    else:
        task = task_for(data)
    spec = task.model_spec(cfg)
    if spec.name != cfg.model:
        raise MosaicValueError(
            f"model={cfg.model!r} does not fit {cfg.dataset} (its model is {spec.name!r}); "
            "pass a torch.nn.Module factory to train another model on it"
        )
    require_memory(cfg, spec.layout.n_params, device, sample_bytes(data))
    parts = task.partition(cfg)
    strategy = task.trainer_strategy(requested, device)
    optimizer = optimizer_from_config(cfg, user.optimizer)
    trainer = make_trainer(spec, cfg.nodes, optimizer, device, strategy)
    node_data = task.node_data(cfg, spec, parts, device, strategy)
    sampler = NodeSampler(parts, cfg.seed)
    return World(
        BuiltinModel(spec), trainer, strategy, node_data, sampler, spec.metric,
        spec.lower_is_better,
    )  # fmt: skip


def _module_world(
    cfg: ExperimentConfig,
    device: torch.device,
    data: Any,
    factory: Callable[[], Any],
    user: UserCode,
    requested: str,
) -> World:
    """A user's module set up on (inputs, targets) data."""
    from ..models.module_model import ModuleModel
    from .module_trainer import make_module_trainer

    if not isinstance(data, tuple):
        data = (data, None)
    sup = supervised_data(data[0], data[1], cfg.dataset)
    model = ModuleModel(factory, cfg.seed, cfg.nodes, device, gossip_buffers=cfg.gossip_buffers)
    require_memory(cfg, model.layout.n_params, device, sample_bytes(sup))
    scoring = LossMetric(sup, user.loss, user.metric)
    assert cfg.partition is not None  # the engine reads resolved configs
    parts = split(
        sup,
        user.partition if user.partition is not None else cfg.partition,
        cfg.nodes,
        alpha=cfg.alpha,
        shards_per_node=cfg.shards_per_node,
        seed=cfg.seed,
    )
    node_data = SupervisedNodeData(sup, model, scoring, device, cfg.test_samples)
    sampler = NodeSampler(parts, cfg.seed)
    optimizer = optimizer_from_config(cfg, user.optimizer)
    batch = first_batch(cfg, node_data, sampler)
    trainer = make_module_trainer(
        model, scoring.loss, cfg.nodes, optimizer, device, requested, batch
    )
    return World(
        UserModule(model), trainer, trainer.strategy, node_data, sampler, scoring.name,
        scoring.lower_is_better,
    )  # fmt: skip


def first_batch(
    cfg: ExperimentConfig, node_data: Any, sampler: NodeSampler
) -> tuple[torch.Tensor, ...]:
    """Every node's first minibatch, from a fresh sampler: trials run on it, the run's own
    sampler is left alone."""
    assert cfg.batch_size is not None  # the engine reads resolved configs
    return cast(  # the node data's batch: a tuple of tensors
        tuple[torch.Tensor, ...],
        node_data.batch(NodeSampler(sampler.parts, cfg.seed).next(cfg.batch_size)),
    )


def _measure_step_time(
    cfg: ExperimentConfig, device: torch.device, world: World, X: torch.Tensor
) -> float:
    """Seconds one node's local step takes: with ``device_profile`` ``measured``, a network
    step on copies timed here, over n (the nodes' steps run one after another on this
    machine's cores); else from the step's FLOPs and the profile (:func:`.clock.
    profile_step_time`: the same in every run)."""
    trainer, model = world.trainer, world.model
    X, batch = X.clone(), first_batch(cfg, world.node_data, world.sampler)
    saved = model.buffers_state()
    optimizer_state = trainer.state_dict()  # the trial steps must leave no trace
    try:
        with model.seeded(cfg.seed, 0, device):
            if cfg.device_profile != "measured":
                return profile_step_time(
                    lambda: trainer.step(X, batch), cfg.device_profile, cfg.nodes
                )
            elapsed = best_time(lambda: trainer.step(X, batch), device, repeats=1)
    finally:
        trainer.load_state_dict(optimizer_state)
        if saved is not None:
            model.load_buffers(saved)
    return max(elapsed, 1e-9) / cfg.nodes


def network_from_config(
    cfg: ExperimentConfig, *, measured_step_time_s: float | None = None
) -> NetworkSpec:
    """The NetworkSpec of a resolved config's ``network``, ``step_time``, ``bandwidth``,
    ``uplink``, ``downlink``, ``latency`` and straggler settings.

    ``measured_step_time_s`` is the step time to use when ``step_time`` is None and no network
    file gives it (the engine measures it from the model's batch cost); it is ignored otherwise.
    Missing bandwidths are unlimited (``inf``).
    """
    latency_s = parse_duration(cfg.latency, name="latency")
    if cfg.network is not None:
        spec = _network_file(cfg, cfg.network, latency_s)
    else:
        step_time_s = cfg.step_time if cfg.step_time is not None else measured_step_time_s
        if step_time_s is None:
            raise MosaicValueError(
                "step_time is None and no measured_step_time_s was given (seconds per local step)"
            )
        spec = NetworkSpec.uniform(
            cfg.nodes,
            step_time_s=step_time_s,
            uplink_Bps=_direction_Bps(cfg, "uplink"),
            downlink_Bps=_direction_Bps(cfg, "downlink"),
            latency_s=latency_s,
        )
    if cfg.stragglers > 0:
        nodes = straggler_nodes(cfg.nodes, cfg.stragglers, cfg.seed)
        spec = spec.with_stragglers(nodes, cfg.straggler_slowdown, cfg.straggler_kind)
    return spec


def _network_file(cfg: ExperimentConfig, network: str, latency_s: float) -> NetworkSpec:
    """The NetworkSpec of ``cfg.network``: a CSV of nodes or a FedScale pickle."""
    if is_csv(network):
        if latency_s != 0:
            raise MosaicValueError(
                f"latency={cfg.latency!r} conflicts with network file {network!r}, "
                "whose latency_s column sets every node's latency; leave latency at 0s"
            )
        return read_network_csv(network, cfg.nodes)
    if cfg.batch_size is None:
        raise MosaicValueError(
            "batch_size is None: resolve the config before reading a FedScale pickle"
        )
    return read_fedscale_network(
        network, cfg.nodes, seed=cfg.seed, batch_size=cfg.batch_size, latency_s=latency_s
    )


def _direction_Bps(cfg: ExperimentConfig, direction: str) -> float:
    """Bytes per second of ``uplink``/``downlink``, else ``bandwidth``, else unlimited."""
    for name in (direction, "bandwidth"):
        text = getattr(cfg, name)
        if text is not None:
            return parse_bandwidth(text, name=name)
    return math.inf
