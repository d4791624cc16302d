"""Simulated time of synchronous rounds: hand-computed round lengths, budgets, targets, resume."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import mosaic_fast as mf

g = torch.Generator().manual_seed(0)
X = torch.randn(160, 5, generator=g)
Y = (X[:, 0] > 0).long()
D = 5 * 2 + 2  # nn.Linear(5, 2): the bytes of a message follow from it


def linear():
    return nn.Linear(5, 2)


def run(out=None, **kw):
    settings = dict(nodes=4, K=1, degree=1, rounds=3, eval_every=1, local_steps=2, batch_size=4)
    settings.update(kw)
    return mf.Experiment(model=linear, train=(X, Y), test=(X, Y), **settings).run(out, quiet=True)


def directed_ring(round, fragment):
    return [(i, (i + 1) % 4) for i in range(4)]


def test_a_directed_ring_round_is_the_steps_plus_one_message():
    # every node sends its whole model to one neighbour and receives one: no link is shared
    result = run(topology=directed_ring, step_time=0.5, bandwidth="8kbit", latency="2ms")
    message = 4 * D + 64  # bytes
    one_round = 2 * 0.5 + message / 1000 + 0.002  # 8 kbit/s = 1000 bytes/s
    times = list(result.metrics["sim_time_s"])
    assert times == pytest.approx([0.0, one_round, 2 * one_round, 3 * one_round], rel=1e-12)
    # the built-in ring sends to both neighbours: two messages share each uplink and downlink
    both = run(topology="ring", step_time=0.5, bandwidth="8kbit", latency="2ms", rounds=1)
    assert both.metrics["sim_time_s"].iloc[-1] == pytest.approx(1.0 + 2 * message / 1000 + 0.002)


def test_two_messages_share_an_uplink_and_stragglers_slow_the_round():
    base = dict(topology="complete", step_time=0.5, bandwidth="8kbit", nodes=3, degree=2)
    message = 4 * D + 64
    # complete graph on 3 nodes: each uplink carries 2 messages at once (half rate each), each
    # downlink receives 2 (half rate each): both finish after 2 * message / 1000 s
    result = run(**base, rounds=1)
    assert result.metrics["sim_time_s"].iloc[-1] == pytest.approx(2 * 0.5 + 2 * message / 1000)
    slow = run(**base, rounds=1, stragglers=0.34, straggler_kind="compute", straggler_slowdown=3)
    assert slow.metrics["sim_time_s"].iloc[-1] == pytest.approx(2 * 1.5 + 2 * message / 1000)


def test_time_budget_stops_and_target_time_is_reported(tmp_path):
    result = run(tmp_path / "r", step_time=0.5, rounds=50, time_budget=2.5, target=0.0)
    assert list(result.metrics["round"]) == [0, 1, 2, 3]  # 1 s per round: round 3 passes 2.5 s
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["sim_time_s"] == pytest.approx(3.0)
    assert summary["time_to_target_s"] == 0.0
    every = run(step_time=0.5, rounds=6, eval_every=100, eval_every_s=2.0)
    assert list(every.metrics["round"]) == [0, 2, 4, 6]


def test_a_measured_clock_is_recorded_and_kept_by_a_resumed_run(tmp_path):
    def fails(state, metrics):
        if state.round == 2:
            raise RuntimeError("stop here")

    with pytest.raises(mf.CallbackError):
        run(tmp_path / "r", on_evaluate=fails, rounds=4)
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    step = meta["measured_step_time_s"]
    assert step > 0
    resumed = mf.Experiment.resume(
        tmp_path / "r", quiet=True, model=linear, train=(X, Y), test=(X, Y)
    )
    # no bandwidth limit: a round is exactly the measured steps, before and after the restart
    assert list(resumed.metrics["sim_time_s"]) == pytest.approx([2 * step * r for r in range(5)])


def test_asynchronous_runs_go_through_the_same_api_on_their_own_clocks():
    # swift, 2 local steps per round of 0.5 s steps: rounds end at 1, 2, 3 s of simulated time
    result = run(algorithm="swift", step_time=0.5, bandwidth="8kbit")
    assert list(result.metrics["sim_time_s"]) == [0.0, 1.0, 2.0, 3.0]
    assert list(result.metrics["local_steps_per_node"]) == [0.0, 2.0, 4.0, 6.0]


def test_the_round_engine_refuses_algorithms_on_their_own_clocks():
    from mosaic_fast.engine import Simulation
    from mosaic_fast.settings import ExperimentConfig

    cfg = ExperimentConfig(dataset="movielens", algorithm="swift", K=1, step_time=1.0).resolved()
    with pytest.raises(
        mf.MosaicValueError, match="build the run's simulation with make_simulation"
    ):
        Simulation(cfg, torch.device("cpu"))


def test_sweep_summary_reports_simulated_time_and_time_to_target(tmp_path):
    from mosaic_fast.results.summary import summarize_sweep

    summaries = []
    for seed in (0, 1, 2):
        run(tmp_path / f"seed={seed}", seed=seed, step_time=0.5, rounds=4, target=0.6)
        summaries.append(json.loads((tmp_path / f"seed={seed}" / "summary.json").read_text()))
    table = summarize_sweep(tmp_path)
    reached = [s["time_to_target_s"] for s in summaries if s["time_to_target_s"] is not None]
    assert reached  # the task is easy: some seeds reach 60% within 4 rounds
    row = table.iloc[0]
    assert row["n_reached_target"] == len(reached)
    assert row["time_to_target_s_mean"] == pytest.approx(sum(reached) / len(reached))
    assert row["final_sim_time_s_mean"] == pytest.approx(4 * 1.0)
    assert "time to target (s)" in (tmp_path / "summary.md").read_text()


def test_plots_draw_the_metric_against_simulated_time_and_the_time_to_target(tmp_path):
    from mosaic_fast.results.plots import plot_runs

    for K in (1, 2):
        for seed in (0, 1):
            run(tmp_path / "runs" / f"K={K}_seed={seed}", K=K, seed=seed, step_time=0.5, target=0.6)
    names = {p.name for p in plot_runs([tmp_path / "runs"], tmp_path / "plots", formats=("png",))}
    assert {"time_performance.png", "time_to_target.png"} <= names


def test_eval_every_s_replaces_the_round_schedule():
    # rounds of 2 x 0.5 s (unlimited links): every 2 simulated seconds is every second round,
    # although eval_every=1 asks for every round
    result = run(step_time=0.5, rounds=5, eval_every=1, eval_every_s=2.0)
    assert list(result.metrics["round"]) == [0, 2, 4, 5]
    assert list(result.metrics["sim_time_s"]) == [0.0, 2.0, 4.0, 5.0]


class _Regular:
    """Graph k: node i sends to i+1..i+s (mod n): every in- and out-degree is s."""

    def __init__(self, n: int, s: int) -> None:
        self.n, self.s, self.n_fragments = n, s, 1

    def in_csr(self, k):
        import numpy as np

        senders = [(i - j) % self.n for i in range(self.n) for j in range(1, self.s + 1)]
        return np.arange(0, self.n * self.s + 1, self.s), np.asarray(senders)


class _OneFragment:
    def __init__(self, m: int) -> None:
        self.m = m

    def fragment_sizes(self):
        return [self.m]


@pytest.mark.parametrize("sharing", ["max-min", "min-share"])
def test_a_compute_straggler_round_equals_the_decentralized_learning_simulator(sharing):
    # 16 nodes, 4 peers, 1 MB/s links, 346,223-byte messages, a compute straggler taking 30 s:
    # every transfer starts at the barrier and gets 1e6 / 4 B/s at both ends under either rule;
    # the peer simulator reports 31.3849 s (30 + 346,223 / 250,000).
    import numpy as np

    from mosaic_fast.network.clock import RoundClock
    from mosaic_fast.network.spec import NetworkSpec

    n = 16
    step = np.full(n, 1.0)
    step[5] = 30.0
    spec = NetworkSpec(
        step_time_s=step,
        uplink_Bps=np.full(n, 1e6),
        downlink_Bps=np.full(n, 1e6),
        latency_s=np.zeros(n),
    )
    clock = RoundClock(spec, 1, header_bytes=3, bandwidth_sharing=sharing)
    seconds = clock.round_seconds(_Regular(n, 4), _OneFragment((346_223 - 3) // 4))
    assert round(seconds, 4) == 31.3849
    assert seconds == pytest.approx(30 + 346_223 / 250_000, rel=1e-12)


def test_two_runs_of_one_command_get_the_same_simulated_time(tmp_path):
    # The default step time comes from the model's FLOPs and the cpu profile, not a timing.
    a = run(tmp_path / "a", rounds=2, bandwidth="1Mbit")
    b = run(tmp_path / "b", rounds=2, bandwidth="1Mbit")
    assert list(a.metrics["sim_time_s"]) == list(b.metrics["sim_time_s"])
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["config"]["device_profile"] == "cpu"
    assert (
        config["measured_step_time_s"]
        == json.loads((tmp_path / "b" / "config.json").read_text())["measured_step_time_s"]
    )
