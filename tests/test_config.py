"""ExperimentConfig: settings declared once; TOML, ``from_dict`` and validation generated from them."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mosaic_fast.errors import MosaicValueError
from mosaic_fast.settings import (
    DATASETS,
    NON_RESULT_SETTINGS,
    RESUMABLE_SETTINGS,
    SETTINGS,
    TRAINERS,
    ExperimentConfig,
    load_toml,
)

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def test_published_run_configs_load_with_the_same_values():
    files = sorted(RESULTS.glob("**/config.json"))
    assert files, "the published results hold run folders"
    for path in files:
        stored = json.loads(path.read_text())["config"]
        loaded = ExperimentConfig.from_dict(stored).to_dict()
        for key, value in stored.items():
            if key != "extra":  # the grab-bag table is gone; an empty one is read silently
                assert loaded[key] == value and type(loaded[key]) is type(value), (path, key)


def test_extra_of_older_run_folders():
    base = ExperimentConfig().to_dict()
    assert ExperimentConfig.from_dict({**base, "extra": {}}) == ExperimentConfig()
    same = {**base, "trainer": "loop", "extra": {"trainer": "loop"}}
    assert ExperimentConfig.from_dict(same).trainer == "loop"
    del base["trainer"]  # written before trainer was a setting of its own
    assert ExperimentConfig.from_dict({**base, "extra": {"trainer": "vmap"}}).trainer == "vmap"
    for extra, message in [
        ({"lr_decay": 0.5}, "unknown configuration key extra={'lr_decay': 0.5}"),
        ([], "unknown configuration key extra=[]"),
    ]:
        with pytest.raises(MosaicValueError, match=message.replace("[", r"\[")):
            ExperimentConfig.from_dict({**base, "extra": extra})
    with pytest.raises(MosaicValueError, match="contradicts extra.trainer"):
        ExperimentConfig.from_dict({**base, "trainer": "loop", "extra": {"trainer": "vmap"}})


def test_from_dict_checks_keys_and_types():
    with pytest.raises(MosaicValueError, match="unknown setting 'nodez' \\(did you mean 'nodes'"):
        ExperimentConfig.from_dict({"nodez": 4})
    with pytest.raises(MosaicValueError, match="nodes='x' must be an integer"):
        ExperimentConfig.from_dict({"nodes": "x"})
    assert ExperimentConfig.from_dict({"lr": 1}).lr == 1.0  # JSON/TOML ints are numbers too
    assert ExperimentConfig.from_dict({"local-steps": 3}).local_steps == 3


def test_the_two_setting_lists():
    how_not_what = {"data_dir", "device", "checkpoint_every", "distributed", "dist_timeout"}
    how_not_what |= {"deterministic"}
    how_not_what |= {"tracker", "mlflow_uri"}
    assert set(NON_RESULT_SETTINGS) == how_not_what
    assert set(RESUMABLE_SETTINGS) == {"rounds", *how_not_what}


def test_trainer_choices_are_the_engine_strategies():
    from mosaic_fast.engine.trainer import STRATEGIES

    assert set(TRAINERS) == {"auto", *STRATEGIES}
    with pytest.raises(MosaicValueError, match="trainer='fast' is not one of auto, loop"):
        ExperimentConfig(trainer="fast").resolved()


# The paper-like defaults per dataset (the values published results were run with).
PER_DATASET = {
    "fashion-mnist": (0.05, 32, 5, "dirichlet", 0.1),
    "cifar10": (0.05, 32, 5, "dirichlet", 0.1),
    "cifar100": (0.05, 32, 5, "dirichlet", 0.1),
    "shakespeare": (0.5, 16, 5, "natural", None),
    "movielens": (0.2, 64, 20, "natural", None),
}


@pytest.mark.parametrize("dataset", DATASETS)
def test_resolved_fills_the_per_dataset_defaults(dataset):
    cfg = ExperimentConfig(dataset=dataset).resolved()
    assert (cfg.lr, cfg.batch_size, cfg.local_steps, cfg.partition, cfg.alpha) == (
        PER_DATASET[dataset]
    )
    # Given values win; alpha is filled (0.1) only under the Dirichlet partition.
    given_values = ExperimentConfig(dataset=dataset, lr=0.2, partition="dirichlet").resolved()
    assert (given_values.lr, given_values.alpha) == (0.2, 0.1)
    assert ExperimentConfig(dataset=dataset, partition="iid").resolved().alpha is None


# ----------------------------------------------------------------------------- every setting


# Values with a unit, and the other settings a value needs (el-oracle is already the default).
_EXAMPLES = {"bandwidth": "60Mbit", "uplink": "10Mbit", "downlink": "1Gbit", "latency": "1ms"}
_EXAMPLES["eval_at"] = "5,10:20:5"
_EXAMPLES["tracker"] = "tensorboard,wandb"  # a comma list of trackers
_NEEDS = {"algorithm": {"K": 1}, "stragglers": {"bandwidth": "60Mbit"}}


def _valid_value(s):
    if s.name in _EXAMPLES:
        return _EXAMPLES[s.name]
    if s.choices:
        return s.choices[-1]
    if s.kind is bool:
        return not s.default
    if s.kind is str:
        return "/tmp/somewhere"
    low = s.at_least if s.at_least is not None else (s.above or 0)
    return s.kind(low + (0.5 if s.below is not None else 1))


def _text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_every_setting_works_in_set_toml_and_run(name, tmp_path):
    """Generated from the declaration alone: what holds here holds for any new setting."""
    from mosaic_fast.cli.run import config_from_options
    from mosaic_fast.sweep import parse_setting

    s = SETTINGS[name]
    value = _valid_value(s)
    assert parse_setting(f"{s.option[2:]}={_text(value)}") == (name, value)
    toml = tmp_path / "c.toml"
    toml.write_text(f"[run]\n{s.option[2:]} = {json.dumps(value)}\n")
    assert load_toml(toml) == {name: value}
    options = {name: value} if name != "K" else {"K": str(value)}
    options.update(_NEEDS.get(name, {}))
    if name != "dataset":
        options["dataset"] = "fashion-mnist"
    options.setdefault("nodes", 64)
    options.setdefault("degree", 1)
    assert getattr(config_from_options(**options), name) == value
    assert s.help and s.option in _run_help()


def _run_help():
    from click.testing import CliRunner

    from mosaic_fast.cli import main

    return CliRunner().invoke(main, ["run", "--help"]).output


@pytest.mark.parametrize(
    "s", [s for s in SETTINGS.values() if s.kind in (int, float)], ids=lambda s: s.name
)
def test_bounds_are_enforced_at_the_edge(s):
    lows = [(s.at_least, True), (s.above, False)]
    for edge, allowed in lows + [(s.below, False)]:
        if edge is None:
            continue
        value = s.kind(edge)
        cfg = dataclasses.replace(ExperimentConfig(nodes=64, degree=1), **{s.name: value})
        if allowed:
            cfg.validate()
        else:
            with pytest.raises(MosaicValueError, match=f"^{s.name}={value!r} must be"):
                cfg.validate()


@given(
    name=st.sampled_from([s.name for s in SETTINGS.values() if s.kind is float]),
    value=st.floats(allow_nan=True, allow_infinity=True),
)
def test_float_settings_accept_exactly_the_finite_in_bounds_values(name, value):
    s = SETTINGS[name]
    ok = (
        math.isfinite(value)
        and (s.at_least is None or value >= s.at_least)
        and (s.above is None or value > s.above)
        and (s.below is None or value < s.below)
    )
    assert (s.problem(value) is None) == ok
    if not ok:
        with pytest.raises(MosaicValueError) as info:
            ExperimentConfig(**{name: value}).validate()
        assert str(info.value).startswith(f"{name}={value!r} ") and "\n" not in str(info.value)


def test_load_toml_reports_a_permission_problem(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text("nodes = 4\n")

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(MosaicValueError, match="cannot be read: permission denied"):
        load_toml(path)


def test_importing_the_config_is_cheap():
    import subprocess
    import sys

    code = "import sys, mosaic_fast.settings; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_groups_keep_the_published_order_of_the_settings():
    """ExperimentConfig gathers its groups' fields; their order names sweep folders and orders
    config.json, so every published config lists its keys in the settings' order."""
    order = list(SETTINGS)
    for path in sorted(RESULTS.glob("**/config.json")):
        keys = [k for k in json.loads(path.read_text())["config"] if k != "extra"]
        assert keys == [k for k in order if k in keys], path
