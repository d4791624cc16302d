"""Algorithms are protocols: a new one is one class and one registry line, nothing else.

The toy protocols here are defined, registered and run without touching the engine: the engines
ask the protocol object for every algorithm-specific decision and never test a name.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import synthetic_ratings

from mosaic_fast.engine import make_simulation, parts, protocols
from mosaic_fast.engine.experiment import execute
from mosaic_fast.engine.protocols import Protocol, Swift
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.settings import ALGORITHMS, SETTINGS, ExperimentConfig

CPU = torch.device("cpu")
ENGINE = Path(__file__).resolve().parents[1] / "python" / "mosaic_fast" / "engine"


class RingSwift(Swift):
    """Swift whose node i sends its whole model to the next ``degree`` nodes of a ring (no
    random peers): a gossip with another peer rule."""

    name = "ring-swift"
    peer_sampling = False

    def destinations(self, rng, i, n, K, J, v1):
        return (i + 1 + np.arange(J)) % n, np.zeros(J, dtype=np.int64)


class EveryOtherRound(Protocol):
    """Mosaic Learning that gossips only in even rounds (odd rounds: local steps alone)."""

    name = "every-other-round"
    synchronous = True
    peer_sampling = False

    def graphs(self, graph_source, t):
        from mosaic_fast.kernel import Graphs

        if t % 2 == 0:
            return graph_source.graphs(t)
        n, K = graph_source.n_nodes, graph_source.n_fragments
        return Graphs.from_edges(n, [np.zeros((0, 2), dtype=np.int64)] * K, round=t)


@pytest.fixture
def registered(monkeypatch):
    """Register a protocol for one test: the registry line is all a new algorithm needs (it
    declares the name to the settings too)."""

    monkeypatch.setattr(parts, "load_data", lambda cfg: synthetic_ratings())
    yield protocols.register
    for name in (RingSwift.name, EveryOtherRound.name):
        protocols.unregister(name)


def config(**kw) -> ExperimentConfig:
    base = dict(
        dataset="movielens",
        nodes=5,
        K=1,
        degree=2,
        rounds=4,
        local_steps=1,
        batch_size=4,
        lr=0.05,
        test_samples=20,
        step_time=1.0,
        eval_every=1,
    )
    return ExperimentConfig(**{**base, **kw}).resolved()


def test_a_new_event_driven_protocol_runs_with_one_class_and_one_registry_line(registered):
    registered(RingSwift)
    cfg = config(algorithm="ring-swift", topology="ring")
    sim = make_simulation(cfg, CPU, data=synthetic_ratings())
    sim.train_round(0)
    # Every node sent its model to the next two nodes, and only to them.
    assert sim.steps_done.tolist() == [1] * 5
    senders = {(src, dst) for dst, inbox in enumerate(sim.inbox) for src, _ in inbox}
    assert senders <= {(i, (i + 1) % 5) for i in range(5)} | {(i, (i + 2) % 5) for i in range(5)}
    outcome = execute(cfg, None, quiet=True, user=None)
    records = outcome.history
    assert [r["round"] for r in records] == [0, 1, 2, 3, 4]
    assert records[-1]["sent_params_per_node"] > 0
    assert np.isfinite(records[-1]["node_mean"])


def test_the_new_protocol_equals_its_one_event_at_a_time_reference(registered):
    registered(RingSwift)
    cfg = config(algorithm="ring-swift", topology="ring")
    batched = make_simulation(cfg, CPU, data=synthetic_ratings())
    alone = make_simulation(cfg, CPU, data=synthetic_ratings(), one_at_a_time=True)
    for t in range(cfg.rounds):
        batched.train_round(t)
        alone.train_round(t)
    assert torch.equal(batched.X, alone.X)


def test_a_new_synchronous_protocol_runs_in_rounds(registered):
    registered(EveryOtherRound)
    cfg = config(algorithm="every-other-round", topology="el-oracle")
    ours = execute(cfg, None, quiet=True).history
    mosaic = execute(dataclasses.replace(cfg, algorithm="mosaic"), None, quiet=True).history
    # Round 1 gossips as Mosaic does; round 2 sends nothing.
    assert ours[1]["node_mean"] == mosaic[1]["node_mean"]
    assert ours[2]["sent_params_per_node"] == 0.0 < mosaic[2]["sent_params_per_node"]


def test_every_algorithm_the_settings_accept_is_registered():
    assert tuple(ALGORITHMS) == protocols.names()
    for name in ALGORITHMS:
        protocol = protocols.get(name)
        assert protocol.name == name
    with pytest.raises(KeyError, match="unknown algorithm 'nope'"):
        protocols.get("nope")


def test_the_engines_never_test_an_algorithm_by_name():
    """Outside ``protocols/``, no engine module compares ``algorithm`` to a string or looks it up
    in a tuple of names: the decisions live on the protocol objects."""
    names = set(ALGORITHMS)
    offenders = []
    for path in ENGINE.rglob("*.py"):
        if "protocols" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_a_registered_protocol_is_a_setting_choice_until_unregistered(registered):
    with pytest.raises(MosaicValueError, match="ring-swift"):
        config(algorithm="ring-swift")
    registered(RingSwift)
    assert "ring-swift" in SETTINGS["algorithm"].choices
    assert config(algorithm="ring-swift").drop_unsent is False  # a whole-model protocol
    protocols.unregister("ring-swift")
    with pytest.raises(MosaicValueError, match="is not one of"):
        config(algorithm="ring-swift")
