"""Asynchronous algorithms in simulated time (DivShare, Swift, AD-PSGD): hand-computed message
timings and averages, batched steps against one step at a time, checkpoints, records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_helpers import SHARED_DATA, synthetic_images, synthetic_ratings
from torch import nn

import mosaic_fast as mf
from mosaic_fast.engine import make_simulation
from mosaic_fast.engine.events import AsyncSimulation
from mosaic_fast.engine.experiment import execute
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.network.scheduler import message_bytes
from mosaic_fast.results.layout import CLOCK_FIELDS
from mosaic_fast.settings import ExperimentConfig

CPU = torch.device("cpu")


def config(**kw) -> ExperimentConfig:
    base = dict(
        dataset="movielens",
        nodes=4,
        K=2,
        degree=1,
        rounds=4,
        local_steps=1,
        batch_size=4,
        test_samples=20,
        step_time=1.0,
        algorithm="divshare",
        lr=0.1,
    )
    return ExperimentConfig(**{**base, **kw}).resolved()


def sim_of(cfg: ExperimentConfig, **kw) -> AsyncSimulation:
    data = synthetic_images() if cfg.dataset == "fashion-mnist" else synthetic_ratings()
    return make_simulation(cfg, CPU, data=data, **kw)


class FrozenTrainer:
    """Local steps that change nothing: what is left is communication and averaging."""

    def __init__(self, n: int) -> None:
        self.n = n

    def step(self, X, batch):
        return torch.zeros(self.n)

    def step_rows(self, X, rows, batch):
        return torch.zeros(len(rows))


def frozen(sim: AsyncSimulation, rows: list[float]) -> AsyncSimulation:
    """``sim`` with node i's every parameter set to ``rows[i]`` and training switched off."""
    sim.trainer = FrozenTrainer(sim.cfg.nodes)
    for i, value in enumerate(rows):
        sim.X[i].fill_(value)
    return sim


# The rules of runs before DivShare's code was followed (async_semantics v1, min-share links).
V1 = dict(async_semantics="v1", bandwidth_sharing="min-share")


def link_for(seconds: float, n_params: int) -> str:
    """A bandwidth at which one message of ``n_params`` parameters takes ``seconds``."""
    return f"{8 * float(message_bytes(n_params)) / seconds!r}bit"


def test_swift_two_nodes_average_each_others_model_after_delivery():
    # Steps end at 1, 2, ...; a message takes 0.5 s, so the models sent at 1 arrive at 1.5 and
    # are averaged at 2: (0 + 1) / 2 on both nodes. Before that, nothing changes.
    probe = sim_of(config(algorithm="swift", K=1, nodes=2))
    d = probe.n_params
    cfg = config(algorithm="swift", K=1, nodes=2, bandwidth=link_for(0.5, d))
    sim = frozen(sim_of(cfg), [0.0, 1.0])
    sim.advance_to(1.9)
    assert sim.X[0].unique().tolist() == [0.0] and sim.X[1].unique().tolist() == [1.0]
    sim.advance_to(2.0)
    assert sim.X.unique().tolist() == [0.5]
    assert sim.steps_done.tolist() == [2, 2]


def test_message_arriving_after_the_step_end_waits_for_the_next_one():
    # A message takes 1.5 s: sent at 1, it arrives at 2.5 and is averaged at 3, not at 2.
    probe = sim_of(config(algorithm="swift", K=1, nodes=2))
    cfg = config(algorithm="swift", K=1, nodes=2, bandwidth=link_for(1.5, probe.n_params))
    sim = frozen(sim_of(cfg), [0.0, 4.0])
    sim.advance_to(2.0)
    assert sim.X[:, 0].tolist() == [0.0, 4.0]
    # At 2 both sent their (unchanged) models again; they queue behind the first ones (FIFO,
    # Swift keeps them). At 3: the copies from step 1 average: 0 -> 2, 4 -> 2.
    sim.advance_to(3.0)
    assert sim.X[:, 0].tolist() == [2.0, 2.0]


def test_v1_divshare_drops_queued_messages_of_the_previous_step():
    # v1: one FIFO per sender, only messages not started are dropped. Step 0.5 s, a message 0.6 s on the uplink (downlinks unlimited), K=2 fragments, J=1: each
    # step end queues 2 messages. Dropping: t=0.5 m1 sends to 1.1 (m2 dropped at 1.0), m3 sends
    # 1.1-1.7 (m4 dropped at 1.5), m5 sends from 1.7 (m6 dropped at 2.0), m7 and m8 queued.
    # Keeping: m1 0.5-1.1, m2 1.1-1.7, m3 sending from 1.7, m4..m8 queued. By t=2.0 both have
    # delivered 2 messages per node.
    probe = sim_of(config())
    sizes = np.asarray(probe.fragments.fragment_sizes())
    assert sizes[0] == sizes[1]
    kw = dict(step_time=0.5, uplink=link_for(0.6, int(sizes[0])), rounds=8, **V1)
    dropping = frozen(sim_of(config(**kw)), [0.0] * 4)
    keeping = frozen(sim_of(config(drop_unsent=False, **kw)), [0.0] * 4)
    for sim in (dropping, keeping):
        sim.advance_to(2.0)
        assert sim.sent_params == 4 * 2 * sizes[0]  # delivered: 2 per node
        assert sim.network.n_active == 4
    assert dropping.network.n_queued == 4 * 2
    assert keeping.network.n_queued == 4 * 5


def test_v1_adpsgd_receivers_answer_with_their_latest_model():
    # Node 0 holds 0, node 1 holds 8. At 1 each sends its model (0.25 s); at 1.25 each answers
    # the other's request with its own model (delivered at 1.5). At 2 both average own + the
    # latest copy of the other's: 4. Traffic: a request and a reply per node per step.
    probe = sim_of(config(algorithm="adpsgd", K=1, nodes=2))
    d = probe.n_params
    cfg = config(algorithm="adpsgd", K=1, nodes=2, bandwidth=link_for(0.25, d), **V1)
    sim = frozen(sim_of(cfg), [0.0, 8.0])
    sim.advance_to(1.25)
    assert sim.sent_params == 2 * d  # the two requests arrived; the replies are on their way
    sim.advance_to(2.0)
    assert sim.sent_params == 4 * d
    assert sim.X.unique().tolist() == [4.0]


@pytest.mark.parametrize("semantics", ["divshare-code", "v1"])
@pytest.mark.parametrize("algorithm", ["divshare", "swift", "adpsgd"])
@pytest.mark.parametrize("dataset", ["movielens", "fashion-mnist"])
def test_batched_steps_equal_one_step_at_a_time(algorithm, dataset, semantics):
    # Mixed speeds with ties (nodes 0-2 share a step time, node 3 is a compute straggler 1.5x),
    # zero latency and unlimited links (messages arrive the moment they are sent), momentum on.
    K = 2 if algorithm == "divshare" else 1
    kw = dict(
        algorithm=algorithm,
        K=K,
        nodes=5,
        degree=2,
        dataset=dataset,
        momentum=0.5,
        rounds=6,
        local_steps=2,
        stragglers=0.2,
        straggler_slowdown=1.5,
        straggler_kind="compute",
        async_semantics=semantics,
    )
    if dataset == "fashion-mnist":
        kw.update(trainer="loop", partition="iid")
    batched, reference = sim_of(config(**kw)), sim_of(config(**kw), one_at_a_time=True)
    for t in range(6):
        batched.train_round(t)
        reference.train_round(t)
    assert np.array_equal(batched.steps_done, reference.steps_done)
    assert len(set(batched.steps_done.tolist())) > 1  # the straggler is behind
    assert torch.equal(batched.X, reference.X)
    ours = {k: v for k, v in batched.metrics().items() if k not in CLOCK_FIELDS}
    theirs = {k: v for k, v in reference.metrics().items() if k not in CLOCK_FIELDS}
    assert ours == theirs


@pytest.mark.parametrize("semantics", ["divshare-code", "v1"])
@pytest.mark.parametrize("algorithm", ["divshare", "adpsgd"])
def test_checkpoint_mid_run_resumes_exactly(algorithm, semantics, tmp_path):
    K = 2 if algorithm == "divshare" else 1
    kw = dict(
        algorithm=algorithm,
        K=K,
        nodes=5,
        degree=2,
        rounds=6,
        bandwidth="2Mbit",
        latency="3ms",
        stragglers=0.4,
        straggler_kind="both",
        momentum=0.5,
        async_semantics=semantics,
        local_steps=2,
    )
    straight, first = sim_of(config(**kw)), sim_of(config(**kw))
    for t in range(6):
        straight.train_round(t)
    for t in range(3):
        first.train_round(t)
    assert first.network.n_queued + first.network.n_active + first.network.n_in_flight > 0
    path = tmp_path / "state.pt"
    torch.save(first.state_dict(), path)
    second = sim_of(config(**kw))
    second.load_state_dict(torch.load(path, weights_only=True))
    for t in range(3, 6):
        second.train_round(t)
    assert torch.equal(second.X, straight.X)
    assert second.sim_time_s == straight.sim_time_s
    assert second.sent_params == straight.sent_params


def test_malformed_event_state_is_one_line_naming_it():
    sim = sim_of(config())
    sim.train_round(0)
    state = sim.state_dict()
    state["events"]["steps_done"] = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(MosaicValueError, match=r"events\.steps_done"):
        sim_of(config()).load_state_dict(state)


def test_torch_optimizers_are_refused_for_nodes_on_their_own_clocks():
    with pytest.raises(MosaicValueError, match="optimizer 'adam'.*own clocks"):
        sim_of(config(optimizer="adam"))


def test_divshare_with_a_static_topology_is_refused():
    with pytest.raises(MosaicValueError, match="needs topology 'el-oracle'"):
        config(topology="static")


@pytest.mark.skipif(
    not (SHARED_DATA / "ml-latest-small" / "ratings.csv").is_file(),
    reason="real MovieLens not found beside the checkout",
)
def test_run_records_exact_evaluation_times_and_steps(tmp_path):
    cfg = config(
        step_time=0.1,
        local_steps=3,
        rounds=4,
        eval_every_s=0.25,
        bandwidth="1Mbit",
        data_dir=str(SHARED_DATA / "ml-latest-small"),
    )
    execute(cfg, tmp_path, quiet=True)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    times = [r["sim_time_s"] for r in records]
    # Rounds end at 0.3, 0.6, 0.9, 1.2 (3 steps of 0.1 s); evaluations at every 0.25 s and at
    # the round ends eval_every names (every round here: 1), each once.
    assert times == sorted(set(times))
    for at in (0.25, 0.5, 0.75, 1.0):
        assert any(abs(t - at) < 1e-12 for t in times)
    assert records[-1]["local_steps_per_node"] == 12.0


@pytest.mark.parametrize("trainer", ["batched", "vmap"])
def test_grouped_strategies_agree_with_one_step_at_a_time_to_rounding(trainer):
    # Grouped convolutions (batched) and vmap round differently with different numbers of nodes
    # in a call, so here the engines agree to float32 rounding, not bit for bit (loop and the
    # MF sparse trainer, the CPU defaults, agree exactly: test above).
    kw = dict(
        algorithm="divshare",
        nodes=5,
        degree=2,
        dataset="fashion-mnist",
        rounds=4,
        local_steps=2,
        stragglers=0.2,
        straggler_slowdown=1.5,
        straggler_kind="compute",
        trainer=trainer,
        partition="iid",
    )
    batched, reference = sim_of(config(**kw)), sim_of(config(**kw), one_at_a_time=True)
    for t in range(4):
        batched.train_round(t)
        reference.train_round(t)
    assert torch.allclose(batched.X, reference.X, rtol=1e-5, atol=1e-6)


def test_an_interrupted_run_resumes_exactly_mid_flight(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] > 0).long()
    settings = dict(
        algorithm="divshare",
        nodes=5,
        K=2,
        degree=2,
        rounds=6,
        local_steps=2,
        batch_size=4,
        step_time=0.5,
        bandwidth="20kbit",
        stragglers=0.4,
        straggler_kind="both",
        momentum=0.5,
    )

    def linear():
        return nn.Linear(5, 2)

    busy = []

    def stop_after_round_3(state):
        if state.round == 3:
            network = state.simulation.network
            busy.append(network.n_queued + network.n_active + network.n_in_flight)
            raise RuntimeError("stop")

    straight = mf.Experiment(model=linear, train=(x, y), test=(x, y), **settings).run(
        tmp_path / "straight", quiet=True
    )
    stopped = mf.Experiment(
        model=linear, train=(x, y), test=(x, y), on_round_end=stop_after_round_3, **settings
    )
    with pytest.raises(mf.CallbackError):
        stopped.run(tmp_path / "resumed", quiet=True)
    assert busy[0] > 0  # the checkpoint holds messages on their way
    resumed = mf.Experiment.resume(tmp_path / "resumed", model=linear, train=(x, y), test=(x, y))
    assert torch.equal(resumed.params, straight.params)
    columns = ["round", "node_mean", "sim_time_s", "local_steps_per_node", "sent_params_per_node"]
    assert resumed.metrics[columns].equals(straight.metrics[columns])


def test_send_queues_outgrowing_their_links_stop_the_run_in_one_line(monkeypatch):
    import mosaic_fast.engine.messages as messages

    sim = sim_of(config(algorithm="swift", K=1, bandwidth="1kbit", step_time=0.01, rounds=50))
    monkeypatch.setattr(messages, "_QUEUE_LIMIT_BYTES", 20 * 4 * sim.n_params)
    with pytest.raises(MosaicValueError, match=r"send queues hold \d+ messages .*drop_unsent"):
        for t in range(50):
            sim.train_round(t)
    # 4 nodes, one model snapshot per node and iteration, nothing gets through: checked as
    # messages are queued, the 21st snapshot (node 0's sixth iteration) stops the run at once.
    assert sim.steps_done.tolist() == [6, 5, 5, 5]


def test_v1_zero_delay_messages_reach_later_nodes_of_the_same_instant():
    # Unlimited links, no latency: node 0's message sent at its step end at t=1 arrives at t=1,
    # before node 1's step end of that instant (node ids break the tie): node 1 -> (1 + 0) / 2.
    # Node 1's answer reaches node 0 only at its next step end: t=2, 0 -> (0 + 0.5) / 2 = 0.25,
    # then node 1 -> (0.5 + 0.25) / 2.
    sim = frozen(sim_of(config(algorithm="swift", K=1, nodes=2, **V1)), [0.0, 1.0])
    sim.advance_to(1.0)
    assert sim.X[:, 0].tolist() == [0.0, 0.5]
    sim.advance_to(2.0)
    assert sim.X[:, 0].tolist() == [0.25, 0.375]


def test_messages_carry_the_model_before_averaging():
    # As above, under DivShare's code: a node queues its messages after training and before
    # averaging. t=1: node 0 sends 0, node 1 gets it and sends 1 (not 0.5), then averages: 0.5.
    # t=2: node 0 sends 0 and averages node 1's 1: 0.5; node 1 averages node 0's 0: 0.25.
    sim = frozen(sim_of(config(algorithm="swift", K=1, nodes=2)), [0.0, 1.0])
    sim.advance_to(1.0)
    assert sim.X[:, 0].tolist() == [0.0, 0.5]
    sim.advance_to(2.0)
    assert sim.X[:, 0].tolist() == [0.5, 0.25]


def test_an_iteration_is_local_steps_steps():
    # H = 3 steps of 0.1 s per iteration: iterations end at 0.3, 0.6; messages go at those ends.
    sim = sim_of(config(algorithm="swift", K=1, nodes=2, local_steps=3, step_time=0.1, rounds=2))
    calls = []
    trainer = sim.trainer
    sim.trainer = type(
        "Counting",
        (),
        {
            "step": lambda self, X, b: calls.append(len(X)) or trainer.step(X, b),
            "step_rows": lambda self, X, r, b: calls.append(len(r)) or trainer.step_rows(X, r, b),
        },
    )()
    sim.advance_to(0.29)
    assert sim.steps_done.tolist() == [0, 0] and sim.network.next_id == 0
    sim.advance_to(sim.round_end(0))  # 3 x 0.1 = 0.30000000000000004
    assert sim.steps_done.tolist() == [1, 1] and sim.network.next_id == 2
    assert calls == [2, 2, 2]  # the iteration's 3 steps, both nodes batched (the next: lazily)
    sim.train_round(1)
    assert sim.metrics()["local_steps_per_node"] == 6.0


def test_divshare_drops_the_message_in_transfer_too():
    # Iterations of 0.5 s, a fragment message 0.6 s alone on the uplink (downlinks unlimited),
    # K=2, J=1: two messages per iteration end, to one peer each. At 0.5 node i queues m1, m2.
    # Same peer: FIFO, m1 alone (0.6 s, until 1.1). At 1.0 drop_unsent drops m1 (5/6 sent) and
    # m2, and queues two more: nothing ever arrives while every transfer is cut short. Kept, m1
    # arrives at 1.1.
    probe = sim_of(config())
    sizes = np.asarray(probe.fragments.fragment_sizes())
    kw = dict(step_time=0.5, uplink=link_for(0.6, int(sizes[0])), rounds=8, nodes=2)
    dropping = frozen(sim_of(config(**kw)), [0.0] * 2)
    keeping = frozen(sim_of(config(drop_unsent=False, **kw)), [0.0] * 2)
    for sim in (dropping, keeping):
        sim.advance_to(2.0)
    assert dropping.sent_params == 0 and dropping.delivered_bytes == 0
    # Per node: at 1.0, 1.5 and 2.0 a transfer in progress was cut; what had left counts.
    assert dropping.transmitted_bytes > 0
    record = dropping.metrics()
    assert record["delivered_message_bytes_per_node"] == 0.0
    assert record["transmitted_message_bytes_per_node"] > 0.0
    assert keeping.sent_params > 0


def test_adpsgd_answers_with_the_model_before_averaging():
    # Node 0 holds 0, node 1 holds 8, one ping each (degree 2 -> 1 ping, with replacement: the
    # only other node). At 1 each pings with its model (0.25 s, delivered 1.25) and answers with
    # its latest post-training, pre-averaging model (delivered 1.5). At 2 each averages its own
    # and the other's latest copy: 4 on both.
    probe = sim_of(config(algorithm="adpsgd", K=1, nodes=2))
    d = probe.n_params
    cfg = config(algorithm="adpsgd", K=1, nodes=2, degree=1, bandwidth=link_for(0.25, d))
    sim = frozen(sim_of(cfg), [0.0, 8.0])
    sim.advance_to(2.0)
    assert sim.X.unique().tolist() == [4.0]
    # At 2 each sent 4 (its averaged model's pre-averaging copy is what it trained: 0 and 8
    # still, frozen): the replies at 3 carry 0 and 8 (pre-averaging), not 4.
    assert [t.unique().tolist() for t in sim.latest] == [[0.0], [8.0]]
