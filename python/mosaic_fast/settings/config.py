""":class:`ExperimentConfig`, the one home of every setting, and the lists generated from it."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..data.specs import dataset_spec
from ..errors import MosaicValueError
from ..network.spec import straggler_count
from ..network.units import parse_bandwidth, parse_duration
from .algorithms import ALGORITHMS, algorithm_facts
from .choices import TOPOLOGIES
from .gossip import Gossip, Graphs
from .network import TimeAndNetwork
from .optim import LocalTraining
from .partition import Partition
from .run import Evaluation, Machine, Seeding, Trainer, evaluation_rounds, tracker_names
from .setting import Setting
from .task import ModelDetails, Task


# The groups, last to first: a dataclass lists its bases' fields from the last base to the first,
# so the settings' order (CLI options, sweep folder names, config.json) is Task's fields, then
# Gossip's, ..., then TimeAndNetwork's.
@dataclass(frozen=True)
class ExperimentConfig(
    TimeAndNetwork,
    Trainer,
    ModelDetails,
    Machine,
    Evaluation,
    Seeding,
    Graphs,
    Partition,
    LocalTraining,
    Gossip,
    Task,
):
    """Every setting of one Mosaic Learning run. Field names match the CLI options (``--local-steps`` -> ``local_steps``)."""

    @property
    def v1_rules(self) -> bool:
        """Whether an asynchronous run follows the rules of runs before DivShare's code."""
        return self.async_semantics == "v1"

    def resolved(self) -> ExperimentConfig:
        """Fill dataset-specific defaults for options left as None and validate everything."""
        SETTINGS["dataset"].check(self.dataset)
        _check_dataset_defaults(self.dataset)
        values = {s.name: s.coerce(getattr(self, s.name)) for s in SETTINGS.values()}
        for s in SETTINGS.values():  # declaration order: a condition's setting is filled first
            if values[s.name] is not None or not s.per_dataset:
                continue
            when = s.per_dataset_when
            if when is None or values[when[0]] == when[1]:
                values[s.name] = s.dataset_default(self.dataset)
        if values["drop_unsent"] is None:  # an unknown algorithm fails validation just below
            known = values["algorithm"] in ALGORITHMS
            values["drop_unsent"] = known and not algorithm_facts(values["algorithm"]).whole_model
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
        self._check_algorithm()
        self._check_speeds()
        if self.stragglers != 0:
            self._check_stragglers()

    def _check_algorithm(self) -> None:
        """What each algorithm needs of the topology, K, distribution and message drops."""
        facts = algorithm_facts(self.algorithm)
        if facts.peer_sampling and self.topology != "el-oracle":
            raise MosaicValueError(
                f"algorithm={self.algorithm!r} draws its peers uniformly at every step, as "
                f"el-oracle does; it needs topology 'el-oracle', not {self.topology!r}"
            )
        if self.distributed and not facts.synchronous:
            raise MosaicValueError(
                f"distributed=True shards synchronous rounds; algorithm={self.algorithm!r} runs "
                "nodes on their own clocks in one process: drop --distributed"
            )
        # (v1 configs stored True for every algorithm, where it never applied.)
        if facts.whole_model and self.drop_unsent and not self.v1_rules:
            raise MosaicValueError(
                f"drop_unsent=True: algorithm={self.algorithm!r} never drops its messages (as "
                "DivShare's Swift and AD-PSGD code); drop --drop-unsent"
            )
        fastest = self.step_time  # stragglers only slow nodes down
        if not facts.synchronous and self.eval_every_s is not None and fastest is not None:
            if self.eval_every_s < fastest:
                raise MosaicValueError(
                    f"eval_every_s={self.eval_every_s:g} is shorter than a step "
                    f"(step_time={fastest:g}): evaluations would outnumber steps; choose "
                    f"eval_every_s >= {fastest:g}"
                )
        if facts.whole_model and self.K != 1:
            raise MosaicValueError(
                f"algorithm={self.algorithm!r} sends whole models: it needs K=1, not K={self.K}"
            )

    def _check_speeds(self) -> None:
        """A network file gives every speed: no speed setting beside it."""
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

    def _check_stragglers(self) -> None:
        """Some nodes, not all, are stragglers, and what they are slow at is limited."""
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


def _check_dataset_defaults(dataset: str) -> None:
    """A dataset's spec gives defaults only to settings that take a per-dataset default."""
    spec = dataset_spec(dataset)
    if spec is None:
        return
    unknown = sorted(set(spec.defaults) - {s.name for s in SETTINGS.values() if s.per_dataset})
    if unknown:
        takers = ", ".join(s.name for s in SETTINGS.values() if s.per_dataset)
        raise MosaicValueError(
            f"dataset {dataset!r} gives a default for {unknown[0]}, which takes none per dataset "
            f"(those that do: {takers})"
        )


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
