"""Experiment configuration: every setting of a run declared once, as a field of a frozen dataclass.

A field's declaration, ``name: type = setting(default, help=..., ...)``, holds everything about the
setting: its type (the annotation), default, per-dataset defaults, help, choices, bounds, whether
it changes what a run computes, whether it may change when a run is resumed and whether a sweep may
vary it. The ``run`` and ``sweep`` options, TOML loading, ``--set KEY=VALUE``, validation and the
lists :data:`NON_RESULT_SETTINGS` and :data:`RESUMABLE_SETTINGS` are all generated from
:data:`SETTINGS`. Adding a setting is adding one field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MosaicValueError
from ..kernel import GRAPH_MODES
from ..network.scheduler import BANDWIDTH_SHARING
from ..network.spec import (
    DEVICE_PROFILES,
    STRAGGLER_KINDS,
    parse_bandwidth,
    parse_duration,
    straggler_count,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DATASETS = ("fashion-mnist", "movielens", "cifar10", "cifar100", "shakespeare")
MODELS = ("gn-lenet", "lstm", "mf")
OPTIMIZERS = ("sgd", "adam", "adamw")
PARTITIONS = ("iid", "dirichlet", "shards", "natural")
FRAGMENTERS = ("contiguous", "random", "blocks")
INITS = ("shared", "per-node")
# Every kernel graph mode except a user edge list, which has no config field.
TOPOLOGIES = tuple(mode for mode in GRAPH_MODES if mode != "edges")
DEVICES = ("cpu", "cuda", "auto")
# Experiment trackers (mosaic_fast.tracking), each behind an optional extra of the same name.
TRACKERS = ("tensorboard", "mlflow", "wandb")
# ``auto`` lets the task pick its fastest strategy (engine.trainer.STRATEGIES holds the others).
TRAINERS = ("auto", "loop", "vmap", "batched", "sparse")
# mosaic runs in rounds; the others are asynchronous, in simulated time (mosaic_fast.network.spec).
ALGORITHMS = ("mosaic", "divshare", "swift", "adpsgd")
# Asynchronous algorithms draw their peers uniformly per step, as el-oracle does per round.
_PEER_SAMPLING_ALGORITHMS = ("divshare", "swift", "adpsgd")
# They send whole models (K = 1).
_WHOLE_MODEL_ALGORITHMS = ("swift", "adpsgd")
# The asynchronous engine's rules: DivShare's code, or those of runs before (engine.async_sim).
ASYNC_SEMANTICS = ("divshare-code", "v1")

_IMAGE_DATASETS = ("fashion-mnist", "cifar10", "cifar100")
# per_dataset key of the value for a user's own data (a module:loader dataset or Python objects).
OTHER_DATA = "other data"
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "1": True}
_BOOL_WORDS |= {"false": False, "no": False, "off": False, "0": False}
_NONE_WORDS = ("none", "null")
# ``package.module:attribute``: user code that a setting may name instead of a built-in choice.
_REFERENCE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")

# Forms a setting may accept besides its choices: form -> (test, words for messages, metavar).
FORMS: dict[str, tuple[Any, str, str]] = {
    "reference": (
        lambda v: is_reference(v),
        "a module:attribute reference",
        "MODULE:ATTR",
    ),
    "edges-file": (lambda v: v.startswith("edges:") and len(v) > 6, "edges:FILE", "edges:FILE"),
    "object": (
        lambda v: v.startswith("<") and v.endswith(">"),
        "a Python object given to Experiment",
        "<OBJECT>",
    ),
    "cuda-index": (
        lambda v: bool(re.fullmatch(r"cuda:\d+", v)),
        "cuda:N (a GPU's index)",
        "cuda:N",
    ),
    "assignment-file": (
        lambda v: v.startswith("assignment:") and len(v) > 11,
        "assignment:FILE",
        "assignment:FILE",
    ),
}


# Prefixes of the file forms: ``edges:ring.txt`` names a file, not attribute ``ring.txt`` of a
# module ``edges``.
_FILE_PREFIXES = ("edges:", "assignment:")


def is_reference(value: Any) -> bool:
    """True for ``package.module:attribute`` text (user code to import); never for a file form
    (``edges:FILE``, ``assignment:FILE``)."""
    return (
        isinstance(value, str)
        and not value.startswith(_FILE_PREFIXES)
        and bool(_REFERENCE.fullmatch(value))
    )


@dataclass(frozen=True)
class Setting:
    """One setting's declaration. ``name``, ``kind``, ``nullable`` and ``default`` come from the
    dataclass field; everything else from :func:`setting`."""

    help: str
    # Value filled in by ExperimentConfig.resolved() when the field is None, by dataset.
    per_dataset: Mapping[str, Any] | None = None
    # (other setting, value): per_dataset applies only while that setting has that value.
    per_dataset_when: tuple[str, Any] | None = None
    choices: tuple[str, ...] | None = None
    # Forms accepted besides the choices (keys of FORMS): user code, files.
    also: tuple[str, ...] = ()
    # Bounds: value >= at_least, value > above, value < below. Floats must also be finite.
    at_least: float | None = None
    above: float | None = None
    below: float | None = None
    # What users write for None on the command line and in TOML (which has no null).
    none_alias: Any = None
    # False: runs differing only in this setting repeat one experiment (NON_RESULT_SETTINGS).
    changes_results: bool = True
    # True: may differ between an interrupted run and its resumption (RESUMABLE_SETTINGS).
    resumable: bool = False
    # True: a sweep takes a comma list of values for it, one cell per value.
    axis: bool = False
    name: str = ""
    kind: type = object
    nullable: bool = False
    default: Any = None

    @property
    def option(self) -> str:
        """The command-line flag: ``--local-steps`` for ``local_steps``."""
        return "--" + self.name.replace("_", "-")

    @property
    def expected(self) -> str:
        word = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        return word[self.kind]

    def coerce(self, value: Any) -> Any:
        """A value from TOML, JSON or Python, as this setting's type (ints become floats for
        float settings; ``none_alias`` becomes None). MosaicValueError names a wrong type."""
        if value is None and self.nullable:
            return None
        if self.none_alias is not None and _same(value, self.none_alias):
            return None
        if self.kind is float and _is_int(value):
            return float(value)
        if self._has_type(value):
            return value
        raise MosaicValueError(f"{self.name}={value!r} must be {self.expected}")

    def parse(self, text: str) -> Any:
        """A value from command-line text (``--set``, comma lists): ``none``/``null`` for None
        where allowed, ``true``/``false`` for booleans."""
        text = text.strip()
        if self.nullable and text.lower() in _NONE_WORDS:
            return None
        try:
            if self.kind is bool:
                return _BOOL_WORDS[text.lower()]
            if self.kind is str:
                return text
            return self.coerce(self.kind(text))
        except (KeyError, ValueError):
            raise MosaicValueError(f"{self.name}={text!r} must be {self.expected}") from None

    def check(self, value: Any) -> None:
        """MosaicValueError (one line, naming the value) unless ``value`` is valid on its own."""
        why = self.problem(value)
        if why is not None:
            raise MosaicValueError(f"{self.name}={value!r} {why}")

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid on its own (``must be at least 1``), or None."""
        if value is None and self.nullable:
            return None
        if not self._has_type(value):
            return f"must be {self.expected}"
        if self.choices is not None and value not in self.choices:
            if any(FORMS[form][0](value) for form in self.also):
                return None
            # Object labels come from the Python API only: not worth naming to CLI users.
            extra = "".join(f", or {FORMS[form][1]}" for form in self.also if form != "object")
            return f"is not one of {', '.join(self.choices)}{extra}"
        if self.kind is float and not math.isfinite(value):
            return "must be a finite number"
        if self.kind in (int, float) and not self._in_bounds(value):
            # A number standing for None (test_samples 0 = the whole test set) is allowed too.
            alias = self.none_alias
            also = f", or {alias}" if isinstance(alias, (int, float)) and self.nullable else ""
            return f"must be {self.bounds}{also}"
        return None

    def _has_type(self, value: Any) -> bool:
        if self.kind is float:
            return _is_int(value) or isinstance(value, float)
        return _is_int(value) if self.kind is int else type(value) is self.kind

    def _in_bounds(self, value: float) -> bool:
        return (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.below is None or value < self.below)
        )

    @property
    def bounds(self) -> str:
        """The bounds in words: ``at least 1``, ``positive``, ``in [0, 1)``."""
        if self.below is not None:
            low = f"[{self.at_least:g}" if self.at_least is not None else f"({self.above:g}"
            return f"in {low}, {self.below:g})"
        if self.above == 0:
            return "positive"
        if self.above is not None:
            return f"greater than {self.above:g}"
        return "non-negative" if self.at_least == 0 else f"at least {self.at_least:g}"

    def default_text(self) -> str:
        """The default for help texts, including per-dataset defaults."""
        if self.per_dataset:
            by_value: dict[Any, list[str]] = {}
            for dataset, value in self.per_dataset.items():
                by_value.setdefault(value, []).append(dataset)
            if len(by_value) == 1 and len(self.per_dataset) >= len(DATASETS):
                text = _shown(next(iter(by_value)))
            else:
                text = "; ".join(f"{_shown(v)} for {', '.join(ds)}" for v, ds in by_value.items())
            if self.per_dataset_when is not None:
                other, value = self.per_dataset_when
                text += f" when {other} is {value}"
            return text
        if self.kind is bool:
            return "on" if self.default else "off"
        return "" if self.default is None else _shown(self.default)


def setting(default: Any, *, help: str, **declaration: Any) -> Any:
    """Declare an ExperimentConfig field: its default plus the :class:`Setting` metadata."""
    return dataclasses.field(
        default=default, metadata={"setting": Setting(help=help, **declaration)}
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


@dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one Mosaic Learning run. Field names match the CLI options (``--local-steps`` -> ``local_steps``)."""

    dataset: str = setting(
        "fashion-mnist",
        help="Dataset, or module:loader (user code returning train and test data).",
        choices=DATASETS,
        also=("reference", "object"),
    )
    model: str | None = setting(
        None,
        help="Model, or module:factory (user code returning a torch.nn.Module).",
        per_dataset={
            **dict.fromkeys(_IMAGE_DATASETS, "gn-lenet"),
            "shakespeare": "lstm",
            "movielens": "mf",
        },
        choices=MODELS,
        also=("reference", "object"),
    )
    K: int = setting(
        8, help="Number of fragments K (1 = Epidemic Learning).", at_least=1, axis=True
    )
    nodes: int = setting(16, help="Number of nodes n.", at_least=2, axis=True)
    degree: int = setting(
        8,
        help="Out-degree s of every node's gossip graph per fragment (paper: 8).",
        at_least=1,
        axis=True,
    )
    rounds: int = setting(100, help="Communication rounds.", at_least=1, resumable=True)
    local_steps: int | None = setting(
        None,
        help="Local SGD steps H per round (asynchronous algorithms: per iteration, between two "
        "communications, as DivShare's 'rounds').",
        per_dataset={
            **dict.fromkeys((*_IMAGE_DATASETS, OTHER_DATA), 5),
            "shakespeare": 5,
            "movielens": 20,
        },
        at_least=1,
        axis=True,
    )
    batch_size: int | None = setting(
        None,
        help="Minibatch size per node and step.",
        per_dataset={
            **dict.fromkeys((*_IMAGE_DATASETS, OTHER_DATA), 32),
            "shakespeare": 16,
            "movielens": 64,
        },
        at_least=1,
        axis=True,
    )
    lr: float | None = setting(
        None,
        help="Learning rate.",
        # MovieLens: SGD on a user's embedding is stable while lr * 2 * share * eig_max(mean q q^T)
        # < 2, share = the user's part of its node's ratings: 1 at n = 610, where 0.5 diverges.
        per_dataset={
            **dict.fromkeys((*_IMAGE_DATASETS, OTHER_DATA), 0.05),
            "shakespeare": 0.5,
            "movielens": 0.2,
        },
        above=0,
        axis=True,
    )
    optimizer: str = setting(
        "sgd",
        help="Local optimizer (per-node state, never gossiped), or module:Class of an elementwise torch.optim optimizer.",
        choices=OPTIMIZERS,
        also=("reference", "object"),
        axis=True,
    )
    momentum: float = setting(
        0.0, help="SGD momentum (per-node buffers, never gossiped).", at_least=0, below=1, axis=True
    )
    nesterov: bool = setting(
        False,
        help="Nesterov momentum, as torch.optim.SGD(nesterov=True); no effect without --momentum.",
    )
    weight_decay: float = setting(
        0.0, help="Weight decay (decoupled for adamw).", at_least=0, axis=True
    )
    beta1: float = setting(
        0.9, help="Adam/AdamW first-moment decay.", at_least=0, below=1, axis=True
    )
    beta2: float = setting(
        0.999, help="Adam/AdamW second-moment decay.", at_least=0, below=1, axis=True
    )
    eps: float = setting(1e-8, help="Adam/AdamW denominator term.", above=0)
    partition: str | None = setting(
        None,
        help="Split of the training data over nodes.",
        also=("object",),
        per_dataset={
            **dict.fromkeys(_IMAGE_DATASETS, "dirichlet"),
            "shakespeare": "natural",
            "movielens": "natural",
            OTHER_DATA: "iid",
        },
        choices=PARTITIONS,
    )
    alpha: float | None = setting(
        None,
        help="Dirichlet concentration for --partition dirichlet (smaller = more label skew).",
        per_dataset=dict.fromkeys((*DATASETS, OTHER_DATA), 0.1),
        per_dataset_when=("partition", "dirichlet"),
        above=0,
        axis=True,
    )
    shards_per_node: int = setting(
        2, help="Label-sorted shards per node for --partition shards.", at_least=1, axis=True
    )
    fragmenter: str = setting(
        "random",
        help="How coordinates are split into fragments: random (balanced within each layer, seeded; "
        "as SHATTER's and DivShare's code), contiguous, blocks, or assignment:FILE (.npy or text: "
        "one fragment id per coordinate).",
        choices=FRAGMENTERS,
        also=("assignment-file", "object"),
        axis=True,
    )
    block_size: int = setting(
        1024, help="Block length for --fragmenter blocks.", at_least=1, axis=True
    )
    topology: str = setting(
        "el-oracle",
        help="Per-fragment gossip graphs, edges:FILE (a static edge list or adjacency matrix), or module:function (round, fragment) -> edges.",
        choices=TOPOLOGIES,
        also=("edges-file", "reference", "object"),
        axis=True,
    )
    seed: int = setting(
        0,
        help="Seed of the initial model, partition, data order and graphs.",
        at_least=0,
        axis=True,
    )
    init: str = setting(
        "shared",
        help="Initial models: shared (every node starts from one seeded model, as EL's code) or "
        "per-node (node i from its own seeded draw, the paper's random x_0^(i)).",
        choices=INITS,
        axis=True,
    )
    eval_every: int = setting(
        10,
        help="Evaluate every this many rounds (and at round 0 and the last round).",
        at_least=1,
    )
    eval_at: str | None = setting(
        None,
        help="Rounds to evaluate at instead of --eval-every, increasing: 5,10,20 or ranges "
        "FIRST:LAST:STEP, e.g. 5:100:5,125:300:25 (dense early, sparse later); round 0 and the "
        "last round always.",
    )
    test_samples: int | None = setting(
        2000,
        help="Test samples used for classification metrics (fixed subsample); 0 = the whole test set.",
        at_least=1,
        none_alias=0,
    )
    data_dir: str | None = setting(
        None,
        help="Folder holding local dataset copies (else $MOSAIC_DATA, system folders, the cache).",
        changes_results=False,
        resumable=True,
    )
    device: str = setting(
        "cpu",
        help="Torch device (cuda:N picks a GPU).",
        choices=DEVICES,
        also=("cuda-index",),
        changes_results=False,
        resumable=True,
    )
    deterministic: bool = setting(
        True,
        help="Deterministic device results: torch's deterministic algorithms, no TF32, no atomic "
        "scatter-adds (off: possibly faster on CUDA, rounding may vary from run to run).",
        changes_results=False,
        resumable=True,
    )
    distributed: bool = setting(
        False,
        help="Shard the nodes over the ranks torchrun started (gloo on CPU, NCCL on CUDA; "
        "torchrun --nproc-per-node R -m mosaic_fast run --distributed ...): same results.",
        changes_results=False,
        resumable=True,
    )
    dist_timeout: float = setting(
        600.0,
        help="Seconds a distributed collective may wait before the run fails (a rank died or hangs); "
        "it also bounds how long a stalled rank holds the others, and every wait for rank 0's "
        "evaluations and checkpoints.",
        at_least=1,
        changes_results=False,
        resumable=True,
    )
    checkpoint_every: int = setting(
        0,
        help="Write OUT/checkpoint.pt every this many rounds (0 = never).",
        at_least=0,
        changes_results=False,
        resumable=True,
    )
    tracker: str | None = setting(
        None,
        help="Experiment trackers to send the run to, a comma list of tensorboard, mlflow, wandb "
        '(each an optional extra: pip install "mosaic-fast[tensorboard]"); offline by default.',
        changes_results=False,
        resumable=True,
    )
    mlflow_uri: str | None = setting(
        None,
        help="MLflow tracking URI (sqlite:///FILE.db, http://HOST:PORT) or a folder for a local "
        "store (default: mlflow.db in the sweep folder or in OUT/tracking/).",
        changes_results=False,
        resumable=True,
    )
    embedding_dim: int = setting(
        20, help="Matrix factorisation embedding size.", at_least=1, axis=True
    )
    mf_biases: bool = setting(
        False, help="Matrix factorisation with user/item biases and the global mean."
    )
    gossip_buffers: bool = setting(
        False,
        help="Average model buffers (e.g. BatchNorm running statistics) too; off: they stay per node.",
    )
    trainer: str = setting(
        "auto",
        help="How local SGD runs over nodes (auto: the task's fastest).",
        choices=TRAINERS,
        axis=True,
    )
    # Time and network (mosaic_fast.network.spec holds the units, files and straggler draw).
    algorithm: str = setting(
        "mosaic",
        help="Algorithm: mosaic (synchronous rounds) or, in simulated time, divshare, swift or adpsgd.",
        choices=ALGORITHMS,
        axis=True,
    )
    step_time: float | None = setting(
        None,
        help="Simulated seconds per local SGD step (default: from the model's FLOPs per step and "
        "--device-profile).",
        above=0,
        below=1e9,
        axis=True,
    )
    device_profile: str = setting(
        "cpu",
        help="Device whose speed sets the default step time: cpu (1e11 FLOP/s, 0.1 ms a step), "
        "gpu (1e13 FLOP/s, 0.2 ms a step), or measured (one step timed on this machine; differs "
        "between runs). Recorded step time: config.json's measured_step_time_s.",
        choices=tuple(DEVICE_PROFILES),
        axis=True,
    )
    bandwidth: str | None = setting(
        None,
        help="Every node's uplink and downlink in bits per second: 60Mbit, 500kbit, 1Gbit (default: unlimited).",
        axis=True,
    )
    uplink: str | None = setting(
        None, help="Every node's uplink, in place of --bandwidth's: 10Mbit.", axis=True
    )
    downlink: str | None = setting(
        None, help="Every node's downlink, in place of --bandwidth's: 10Mbit.", axis=True
    )
    latency: str = setting("0s", help="Latency every message pays: 1ms, 200us, 0.5s.", axis=True)
    stragglers: float = setting(
        0.0,
        help="Fraction of nodes that are stragglers (fraction x nodes, rounded half up; drawn from the seed).",
        at_least=0,
        below=1,
        axis=True,
    )
    straggler_slowdown: float = setting(
        6.0,
        help="Stragglers' bandwidth is divided and/or step time multiplied (--straggler-kind) by this.",
        at_least=1,
        axis=True,
    )
    straggler_kind: str = setting(
        "comm",
        help="What stragglers are slow at: comm (bandwidth), compute (step time) or both.",
        choices=STRAGGLER_KINDS,
        axis=True,
    )
    network: str | None = setting(
        None,
        help="Per-node speeds FILE: a FedScale device capacity pickle (read with a restricted "
        "unpickler: dicts, strings, numbers only) or a .csv with columns "
        "node,step_time_s,uplink_bps,downlink_bps,latency_s.",
    )
    eval_every_s: float | None = setting(
        None, help="Evaluate every this many simulated seconds (instead of --eval-every).", above=0
    )
    time_budget: float | None = setting(
        None,
        help="Stop when the simulated time reaches this many seconds (--rounds still applies).",
        above=0,
    )
    drop_unsent: bool | None = setting(
        None,
        help="DivShare: drop every message of the previous iteration whose last byte has not left "
        "(queued or in transfer) when a node queues its next iteration's (default: on; Swift and "
        "AD-PSGD never drop: refused for them).",
    )
    bandwidth_sharing: str = setting(
        "max-min",
        help="How transfers share links: max-min (progressive filling, as TCP under Kollaps) or "
        "min-share (the smaller of a transfer's two equal shares, never handed on; runs before).",
        choices=BANDWIDTH_SHARING,
        axis=True,
    )
    async_semantics: str = setting(
        "divshare-code",
        help="Asynchronous rules: divshare-code (H local steps per iteration, a queue per peer, "
        "messages sent before averaging, drops in transfer, AD-PSGD J//2 peers with replacement) "
        "or v1 (runs before: one step per communication, one queue per sender, sent after "
        "averaging).",
        choices=ASYNC_SEMANTICS,
        axis=True,
    )
    target: float | None = setting(
        None,
        help="Node-mean metric value for time-to-target: the first simulated time reaching it.",
    )

    @property
    def v1_rules(self) -> bool:
        """Whether an asynchronous run follows the rules of runs before DivShare's code."""
        return self.async_semantics == "v1"

    def resolved(self) -> ExperimentConfig:
        """Fill dataset-specific defaults for options left as None and validate everything."""
        SETTINGS["dataset"].check(self.dataset)
        values = {s.name: s.coerce(getattr(self, s.name)) for s in SETTINGS.values()}
        for s in SETTINGS.values():  # declaration order: a condition's setting is filled first
            if values[s.name] is not None or not s.per_dataset:
                continue
            when = s.per_dataset_when
            if when is None or values[when[0]] == when[1]:
                fallback = s.per_dataset.get(OTHER_DATA)
                values[s.name] = s.per_dataset.get(self.dataset, fallback)
        if values["drop_unsent"] is None:
            values["drop_unsent"] = values["algorithm"] not in _WHOLE_MODEL_ALGORITHMS
        cfg = dataclasses.replace(self, **values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Every setting on its own (type, choices, bounds, finite), then the rules across settings."""
        for s in SETTINGS.values():
            s.check(getattr(self, s.name))
        sampled = self.topology in TOPOLOGIES and self.topology not in ("ring", "complete")
        if sampled and not self.degree < self.nodes:
            raise MosaicValueError(
                f"degree={self.degree} must satisfy 1 <= degree < nodes={self.nodes}"
            )
        if self.eval_at is not None:
            evaluation_rounds(self.eval_at, self.rounds)
            if self.eval_every_s is not None:
                raise MosaicValueError(
                    f"eval_at={self.eval_at!r} and eval_every_s={self.eval_every_s!r} are two "
                    "evaluation schedules: give one"
                )
        tracker_names(self.tracker)
        self._validate_time_and_network()

    def _validate_time_and_network(self) -> None:
        """Units, and the rules across the algorithm, topology, network and straggler settings."""
        for name in ("bandwidth", "uplink", "downlink"):
            if getattr(self, name) is not None:
                parse_bandwidth(getattr(self, name), name=name)
        parse_duration(self.latency, name="latency")
        if self.algorithm in _PEER_SAMPLING_ALGORITHMS and self.topology != "el-oracle":
            raise MosaicValueError(
                f"algorithm={self.algorithm!r} draws its peers uniformly at every step, as "
                f"el-oracle does; it needs topology 'el-oracle', not {self.topology!r}"
            )
        if self.distributed and self.algorithm not in ("mosaic",):
            raise MosaicValueError(
                f"distributed=True shards synchronous rounds; algorithm={self.algorithm!r} runs "
                "nodes on their own clocks in one process: drop --distributed"
            )
        # (v1 configs stored True for every algorithm, where it never applied.)
        if self.algorithm in _WHOLE_MODEL_ALGORITHMS and self.drop_unsent and not self.v1_rules:
            raise MosaicValueError(
                f"drop_unsent=True: algorithm={self.algorithm!r} never drops its messages (as "
                "DivShare's Swift and AD-PSGD code); drop --drop-unsent"
            )
        fastest = self.step_time  # stragglers only slow nodes down
        if self.algorithm != "mosaic" and None not in (self.eval_every_s, fastest):
            if self.eval_every_s < fastest:
                raise MosaicValueError(
                    f"eval_every_s={self.eval_every_s:g} is shorter than a step "
                    f"(step_time={fastest:g}): evaluations would outnumber steps; choose "
                    f"eval_every_s >= {fastest:g}"
                )
        if self.algorithm in _WHOLE_MODEL_ALGORITHMS and self.K != 1:
            raise MosaicValueError(
                f"algorithm={self.algorithm!r} sends whole models: it needs K=1, not K={self.K}"
            )
        speeds = [
            n
            for n in ("step_time", "bandwidth", "uplink", "downlink")
            if getattr(self, n) is not None
        ]
        if self.network is not None and speeds:
            raise MosaicValueError(
                f"network={self.network!r} gives every node's step time and bandwidth; "
                f"drop {speeds[0]}={getattr(self, speeds[0])!r}"
            )
        if self.stragglers == 0:
            return
        count = straggler_count(self.nodes, self.stragglers)
        if not 0 < count < self.nodes:
            raise MosaicValueError(
                f"stragglers={self.stragglers!r} makes {count} of the {self.nodes} nodes "
                f"stragglers (rounded half up); choose a fraction giving 1 to {self.nodes - 1}"
            )
        limited = self.network is not None or any((self.bandwidth, self.uplink, self.downlink))
        if self.straggler_kind != "compute" and not limited:
            raise MosaicValueError(
                f"straggler_kind={self.straggler_kind!r} slows bandwidth, which is unlimited: "
                "set bandwidth (or uplink, downlink, network), or straggler_kind='compute'"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ExperimentConfig:
        """The config of ``values`` (a ``to_dict()``, a run folder's ``config.json`` "config").

        Types are checked (one-line MosaicValueError naming the key); ranges are checked by
        :meth:`validate`. Run folders written before the ``trainer`` setting hold an ``extra``
        table: ``{}`` or ``{"trainer": ...}`` is read as the ``trainer`` setting.
        """
        values = dict(values)
        if _STORED_KEYS <= values.keys():
            # A stored config (a run folder's, a sweep's base) from before these settings: it
            # ran with their earlier behaviour, not today's default.
            values = {**_LEGACY_DEFAULTS, **values}
        extra = values.pop("extra", {})
        if not isinstance(extra, Mapping) or not set(extra) <= {"trainer"}:
            raise MosaicValueError(f"unknown configuration key extra={extra!r}")
        if "trainer" in extra:
            if "trainer" in values and values["trainer"] != extra["trainer"]:
                raise MosaicValueError(
                    f"trainer={values['trainer']!r} contradicts extra.trainer={extra['trainer']!r}"
                )
            values.setdefault("trainer", extra["trainer"])
        return cls(**coerce_settings(values))


# Every stored config (to_dict()) holds these keys; settings given by hand hardly all of them.
_STORED_KEYS = frozenset(
    (
        "K alpha batch_size block_size checkpoint_every data_dir dataset degree device "
        "embedding_dim eval_every fragmenter local_steps lr mf_biases momentum nodes partition "
        "rounds seed shards_per_node test_samples topology weight_decay"
    ).split()
)
# Settings added after runs were stored, with the behaviour a stored config without them ran with.
_LEGACY_DEFAULTS = {
    "bandwidth_sharing": "min-share",
    "async_semantics": "v1",
    "device_profile": "measured",
}


def evaluation_rounds(eval_at: str, rounds: int) -> tuple[int, ...]:
    """The rounds ``eval_at`` names (``5,10,20`` or ``FIRST:LAST:STEP`` ranges, comma-joined),
    strictly increasing, each in 1..``rounds``; MosaicValueError names a bad entry."""
    out: list[int] = []
    for item in eval_at.split(","):
        parts = item.strip().split(":")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 3) or min(numbers) < 1:
            raise MosaicValueError(
                f"eval_at={eval_at!r}: {item.strip()!r} is not a round (a positive integer) "
                "or a range FIRST:LAST:STEP"
            )
        if len(numbers) == 3 and numbers[1] < numbers[0]:
            raise MosaicValueError(
                f"eval_at={eval_at!r}: range {item.strip()!r} ends before it starts"
            )
        first, last, step = numbers if len(numbers) == 3 else (numbers[0], numbers[0], 1)
        for r in range(first, last + 1, step):
            if out and r <= out[-1]:
                raise MosaicValueError(
                    f"eval_at={eval_at!r} must increase: round {r} follows round {out[-1]}"
                )
            if r > rounds:
                raise MosaicValueError(
                    f"eval_at={eval_at!r} names round {r}, beyond rounds={rounds}"
                )
            out.append(r)
    return tuple(out)


def tracker_names(tracker: str | None) -> tuple[str, ...]:
    """The trackers of the ``tracker`` setting's comma list (``"tensorboard,mlflow"``), each
    once; MosaicValueError names an unknown one (and the nearest known name)."""
    if tracker is None:
        return ()
    names: list[str] = []
    for item in tracker.split(","):
        name = item.strip().lower()
        if name not in TRACKERS:
            near = difflib.get_close_matches(name, TRACKERS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise MosaicValueError(
                f"tracker {item.strip()!r} is not one of {', '.join(TRACKERS)}{hint}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)


def _declared_settings() -> dict[str, Setting]:
    hints = typing.get_type_hints(ExperimentConfig)
    out = {}
    for f in dataclasses.fields(ExperimentConfig):
        args = [a for a in typing.get_args(hints[f.name]) if a is not type(None)]
        kind = args[0] if args else hints[f.name]
        nullable = type(None) in typing.get_args(hints[f.name])
        if "setting" not in f.metadata or kind not in (int, float, str, bool):
            raise TypeError(
                f"ExperimentConfig.{f.name}: declare it as int/float/str/bool [| None] = setting(...)"
            )
        out[f.name] = dataclasses.replace(
            f.metadata["setting"], name=f.name, kind=kind, nullable=nullable, default=f.default
        )
    return out


SETTINGS: dict[str, Setting] = _declared_settings()
"""Every setting by name, in declaration order."""

# Settings that do not change what a run computes: runs differing only in these (and the seed)
# are repetitions of one setting.
NON_RESULT_SETTINGS = tuple(s.name for s in SETTINGS.values() if not s.changes_results)
# Settings that may differ between an interrupted run and its resumption.
RESUMABLE_SETTINGS = tuple(s.name for s in SETTINGS.values() if s.resumable)


def setting_named(key: str) -> Setting:
    """The setting a user's key names (dashes or underscores); MosaicValueError suggests a near one."""
    name = key.strip().replace("-", "_")
    if name in SETTINGS:
        return SETTINGS[name]
    near = difflib.get_close_matches(name, SETTINGS, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise MosaicValueError(f"unknown setting {key!r}{hint}")


def coerce_settings(values: Mapping[str, Any], *, lists: Collection[str] = ()) -> dict[str, Any]:
    """``values`` keyed by setting name, each checked for its type (keys may use dashes).

    Settings named in ``lists`` may also hold a list (a TOML array or a comma string such as
    ``"1,8"``); they come back as tuples when they do.
    """
    out: dict[str, Any] = {}
    for key, value in values.items():
        s = setting_named(key)
        if s.name in out:
            raise MosaicValueError(f"setting {s.name} is given twice")
        if s.name in lists and isinstance(value, (list, tuple)):
            out[s.name] = tuple(s.coerce(v) for v in value)
        elif s.name in lists and isinstance(value, str) and s.kind is not str:
            out[s.name] = tuple(s.parse(t) for t in value.split(","))
        else:
            out[s.name] = s.coerce(value)
    return out


def load_toml(path: str | Path, *, lists: Collection[str] = ()) -> dict[str, Any]:
    """Settings from a TOML file: at its top level or under ``[run]``; keys may use dashes or
    underscores (``local-steps`` or ``local_steps``). Types and single-setting bounds are checked.

    Every problem (unreadable file, invalid TOML, unknown key, wrong type, bad value) is one
    MosaicValueError line naming the file and the key. ``lists`` as in :func:`coerce_settings`.
    """
    from ..files import read_bytes

    where = f"config file {str(path)!r}"
    content = read_bytes(path, where)
    try:
        raw = tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError:
        raise MosaicValueError(f"{where} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise MosaicValueError(f"{where} is not valid TOML: {exc}") from None
    section = raw
    if isinstance(raw.get("run"), dict):
        section = raw["run"]
        others = sorted(k for k in raw if k != "run")
        if others:
            raise MosaicValueError(
                f"{where}: {others[0]!r} is outside the [run] table; put every setting in it"
            )
    try:
        values = coerce_settings(section, lists=lists)
        for name, value in values.items():
            for v in value if isinstance(value, tuple) else (value,):
                SETTINGS[name].check(v)
    except MosaicValueError as exc:
        raise MosaicValueError(f"{where}: {exc}") from None
    return values
