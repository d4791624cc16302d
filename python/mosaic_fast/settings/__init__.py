"""Experiment configuration: every setting of a run declared once, as a field of a frozen dataclass.

A field's declaration, ``name: type = setting(default, help=..., ...)``, holds everything about the
setting: its type (the annotation), default, whether its dataset decides its default, help,
choices, bounds, whether it changes what a run computes, whether it may change when a run is
resumed and whether a sweep may vary it. The ``run`` and ``sweep`` options, TOML loading,
``--set KEY=VALUE``, validation and the lists :data:`NON_RESULT_SETTINGS` and
:data:`RESUMABLE_SETTINGS` are all generated from :data:`SETTINGS`. Adding a setting is adding one
field to its group.

The modules:

- :mod:`~mosaic_fast.settings.setting`: :class:`Setting`, one declaration, and the checks and
  parsing generated from it;
- the groups, each a frozen dataclass of settings: :mod:`~mosaic_fast.settings.task` (dataset,
  model), :mod:`~mosaic_fast.settings.gossip` (nodes, fragments, graphs, rounds),
  :mod:`~mosaic_fast.settings.optim` (local training), :mod:`~mosaic_fast.settings.partition`,
  :mod:`~mosaic_fast.settings.run` (seeds, evaluation, machine, trainer),
  :mod:`~mosaic_fast.settings.network` (algorithm, simulated time and network);
- :mod:`~mosaic_fast.settings.config`: :class:`ExperimentConfig`, the one dataclass holding every
  group's settings, the rules across settings, and :data:`SETTINGS`;
- :mod:`~mosaic_fast.settings.toml_files`: :func:`load_toml`;
- :mod:`~mosaic_fast.settings.choices`: the built-in names the settings accept.

Per-dataset defaults (``model``, ``lr``, ``batch_size``, ...) live in each dataset's spec
(:mod:`mosaic_fast.data.specs`); user code named in settings is decoded by
:mod:`mosaic_fast.user_code`.
"""

from __future__ import annotations

from ..user_code import is_reference
from .algorithms import AlgorithmFacts, algorithm_facts, declare_algorithm, forget_algorithm
from .choices import (
    ALGORITHMS,
    ASYNC_SEMANTICS,
    DATASETS,
    DEVICES,
    FRAGMENTERS,
    INITS,
    MODELS,
    OPTIMIZERS,
    PARTITIONS,
    TOPOLOGIES,
    TRACKERS,
    TRAINERS,
)
from .config import (
    NON_RESULT_SETTINGS,
    RESUMABLE_SETTINGS,
    SETTINGS,
    ExperimentConfig,
    coerce_settings,
    setting_named,
)
from .run import evaluation_rounds, tracker_names
from .setting import FORMS, OTHER_DATA, Setting, setting
from .toml_files import load_toml

__all__ = [
    "ALGORITHMS",
    "AlgorithmFacts",
    "algorithm_facts",
    "declare_algorithm",
    "forget_algorithm",
    "ASYNC_SEMANTICS",
    "DATASETS",
    "DEVICES",
    "FORMS",
    "FRAGMENTERS",
    "INITS",
    "MODELS",
    "NON_RESULT_SETTINGS",
    "OPTIMIZERS",
    "OTHER_DATA",
    "PARTITIONS",
    "RESUMABLE_SETTINGS",
    "SETTINGS",
    "TOPOLOGIES",
    "TRACKERS",
    "TRAINERS",
    "ExperimentConfig",
    "Setting",
    "coerce_settings",
    "evaluation_rounds",
    "is_reference",
    "load_toml",
    "setting",
    "setting_named",
    "tracker_names",
]
