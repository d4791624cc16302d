"""The public Experiment API: own models, data, callbacks; buffers, frozen and tied parameters; bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from data_helpers import synthetic_images
from torch import nn

import mosaic_fast as mf
from mosaic_fast.engine import parts as parts_module
from mosaic_fast.models import GNLeNet

IMAGES = synthetic_images()
TRAIN = (IMAGES.x_train, IMAGES.y_train)
TEST = (IMAGES.x_test, IMAGES.y_test)
SMALL = dict(nodes=4, K=2, degree=2, rounds=3, eval_every=1, local_steps=2, batch_size=8)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))


def bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, 4)
    )


def run(model=mlp, out=None, **kw):
    settings = {**SMALL, **kw}
    train, test = settings.pop("train", TRAIN), settings.pop("test", TEST)
    return mf.Experiment(model=model, train=train, test=test, **settings).run(out, quiet=True)


def test_result_holds_metrics_params_and_node_models(tmp_path):
    result = run(out=tmp_path / "r")
    frame = result.metrics
    assert list(frame["round"]) == [0, 1, 2, 3]
    assert {"node_mean", "avg_model", "consensus_distance", "train_loss"} <= set(frame.columns)
    assert frame["node_mean"].iloc[-1] > frame["node_mean"].iloc[0]
    assert result.params.shape == (4, 64 * 16 + 16 + 16 * 4 + 4)
    model = result.node_model(2)
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert torch.equal(flat, result.params[2])
    on_disk = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").open()]
    assert [r["node_mean"] for r in on_disk] == list(frame["node_mean"])
    meta = json.loads((tmp_path / "r" / "config.json").read_text())
    assert meta["config"]["model"].endswith("test_api:mlp")
    assert meta["trainer_strategy"] in ("loop", "vmap")


def test_module_gn_lenet_trains_exactly_as_the_builtin_spec():
    settings = dict(nodes=4, K=4, degree=2, rounds=2, eval_every=1, local_steps=2, batch_size=8)
    builtin = mf.Experiment(model="gn-lenet", train=TRAIN, test=TEST, trainer="loop", **settings)
    module = mf.Experiment(
        model=lambda: GNLeNet(1, 8, 4), train=TRAIN, test=TEST, trainer="loop", **settings
    )
    a, b = builtin.run(quiet=True), module.run(quiet=True)
    assert torch.equal(a.params, b.params)
    cols = ["node_mean", "avg_model", "consensus_distance"]
    assert a.metrics[cols].equals(b.metrics[cols])


@pytest.mark.parametrize("trainer", ["loop", "vmap"])
def test_batchnorm_statistics_stay_per_node_and_are_not_gossiped(trainer):
    result = run(bn_net, trainer=trainer)
    sim = result.outcome.simulation
    means = sim.module_model.buffers["1.running_mean"]
    assert means.shape == (4, 4)
    assert not torch.equal(means[0], means[1])  # each node saw its own batches
    assert int(sim.module_model.buffers["1.num_batches_tracked"][0]) == 3 * 2
    assert result.params.shape[1] == sum(p.numel() for p in bn_net().parameters())
    node = result.node_model(1)
    assert torch.equal(node[1].running_mean, means[1].cpu())


def test_gossip_buffers_averages_the_running_statistics_too():
    result = run(bn_net, gossip_buffers=True, topology="complete")
    sim = result.outcome.simulation
    n_params = sum(p.numel() for p in bn_net().parameters())
    assert result.params.shape[1] == n_params + 4 + 4  # running mean and var in the row
    assert "1.running_mean" not in sim.module_model.buffers
    # complete graph: every node ends each round with the same average
    assert torch.allclose(result.params[0], result.params[3])


@pytest.mark.parametrize("trainer", ["loop", "vmap"])
def test_gossiped_running_statistics_are_updated_by_every_strategy(trainer):
    result = run(bn_net, gossip_buffers=True, trainer=trainer)
    mean = result.node_model(0)[1].running_mean
    assert mean.abs().sum() > 0  # vmap once dropped in-place updates of these column views


def test_loop_and_vmap_agree_on_a_batchnorm_model():
    a, b = run(bn_net, trainer="loop"), run(bn_net, trainer="vmap")
    assert torch.allclose(a.params, b.params, atol=1e-5)


class TiedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(64, 8)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(8, 4)
        self.head2 = self.head  # the same module twice: its weights are tied under two names

    def forward(self, x):
        return self.head2(torch.relu(self.frozen(x.flatten(1)))) + 0 * self.head(x[:, 0, 0, :8])


def test_frozen_parameters_stay_constant_and_tied_weights_are_one_tensor():
    from mosaic_fast.models.spec import seeded_module

    result = run(TiedNet)
    layout = result.outcome.simulation.module_model.layout
    assert layout.names == ("head.weight", "head.bias")  # no frozen, tied listed once
    initial = seeded_module(TiedNet, 0)
    for i in range(4):
        node = result.node_model(i)
        assert torch.equal(node.frozen.weight, initial.frozen.weight)
        assert node.head2.weight is node.head.weight
    assert not torch.equal(result.params[0], result.params[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(model=lambda: 3), "returned int, not a torch.nn.Module"),
        (
            dict(model=lambda: mlp().half()),
            "is torch.float16; mosaic-fast trains and averages float32",
        ),
        (dict(model=lambda: mlp().bfloat16()), "is torch.bfloat16"),
        (
            dict(train=(IMAGES.x_train, IMAGES.y_train[:-1])),
            "inputs have 240 rows but targets have 239",
        ),
        (dict(model=lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 2))), "do not fit targets"),
        (dict(partition=[np.arange(10)] * 4), "gives sample 0 to node 0 and to node 1"),
        (
            dict(partition=[np.arange(5), np.arange(5, 9), np.arange(9, 12), []]),
            "leaves node 3 with no",
        ),
        (dict(metric=lambda o, t: float("nan")), "returned nan"),
        (dict(optimizer=torch.optim.LBFGS), "LBFGS is not elementwise"),
        (dict(model="nonexistent.module:f"), "no module named 'nonexistent'"),
        (dict(topology=lambda r, k: [(0, 9)]), "round 0, fragment 0: node 9 is out of range"),
        (dict(fragmenter=np.zeros(3, dtype=np.int64)), "3"),
        (dict(nodes=4, K=10**7), "K"),
        (dict(lr=-1.0), "lr=-1.0 must be positive"),
        (dict(nodez=4), "unknown setting 'nodez' (did you mean 'nodes'?)"),
    ],
)
def test_bad_input_is_one_line_naming_it(kwargs, message):
    with pytest.raises(mf.MosaicError) as err:
        run(**kwargs)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_dataset_objects_and_datasets_work_like_tensor_pairs():
    dataset = torch.utils.data.TensorDataset(*TRAIN)
    a = run(train=dataset, test=torch.utils.data.TensorDataset(*TEST), trainer="loop")
    b = run(trainer="loop")
    assert torch.equal(a.params, b.params)


def test_regression_targets_get_mse_and_rmse():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]])
    result = mf.Experiment(
        model=lambda: nn.Linear(3, 1), train=(x, y), test=(x, y), lr=0.1, **SMALL
    ).run(quiet=True)
    assert result.summary["final"]["metric"] == "rmse"
    assert result.metrics["node_mean"].iloc[-1] < result.metrics["node_mean"].iloc[0]


def test_callbacks_see_every_round_and_add_metrics(tmp_path):
    seen = []

    def on_round_end(state):
        seen.append((state.round, tuple(state.params.shape)))

    def on_evaluate(state, metrics):
        return {"param_norm": float(state.params.norm()), "round_seen": state.round}

    result = run(out=tmp_path / "r", on_round_end=on_round_end, on_evaluate=on_evaluate)
    assert [r for r, _ in seen] == [1, 2, 3]
    assert list(result.metrics["round_seen"]) == [0, 1, 2, 3]
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["final"]["param_norm"] == pytest.approx(float(result.params.norm()))


def test_a_raising_callback_names_itself_and_keeps_what_was_written(tmp_path):
    def fails_late(state, metrics):
        if state.round == 2:
            raise RuntimeError("disk full")

    with pytest.raises(
        mf.CallbackError, match="on_evaluate callback .*fails_late raised RuntimeError: disk full"
    ):
        run(out=tmp_path / "r", on_evaluate=fails_late, rounds=4)
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["round"] for x in lines] == [0, 1]
    resumed = mf.Experiment.resume(tmp_path / "r", quiet=True, model=mlp, train=TRAIN, test=TEST)
    straight = run(rounds=4)
    assert list(resumed.metrics["round"]) == [0, 1, 2, 3, 4]
    assert torch.equal(resumed.params, straight.params)


def test_extra_metrics_must_be_numbers_with_new_names():
    with pytest.raises(mf.CallbackError, match="metrics must be numbers"):
        run(on_evaluate=lambda s, m: {"x": "high"})
    with pytest.raises(mf.CallbackError, match="names must be new"):
        run(on_evaluate=lambda s, m: {"node_mean": 1.0})
    with pytest.raises(mf.CallbackError, match="'sim_time_s': names must be new"):
        run(on_evaluate=lambda s, m: {"sim_time_s": 0.0})
    with pytest.raises(mf.CallbackError, match="must return None"):
        run(on_round_end=lambda s: 1)


def test_dropout_runs_reproduce_from_the_seed():
    def dropout_net():
        return nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 4))

    a, b = run(dropout_net, trainer="loop"), run(dropout_net, trainer="loop")
    assert torch.equal(a.params, b.params)
    assert not torch.equal(a.params, run(dropout_net, trainer="loop", seed=1).params)


def test_user_code_on_the_command_line(tmp_path):
    (tmp_path / "usernets.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            def make():
                return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))

            def load():
                g = torch.Generator().manual_seed(0)
                x = torch.randn(300, 5, generator=g)
                y = (x[:, 0] > 0).long()
                return (x[:200], y[:200]), (x[200:], y[200:])
            """
        )
    )
    cli = [sys.executable, "-m", "mosaic_fast", "run", "--quiet"]
    args = [
        "--dataset",
        "usernets:load",
        "--model",
        "usernets:make",
        "--nodes",
        "4",
        "--degree",
        "2",
    ]
    args += ["--rounds", "2", "--K", "1,2", "--optimizer", "adam", "--lr", "0.01", "--out", "r"]
    done = subprocess.run(cli + args, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "node-mean accuracy" in done.stdout
    meta = json.loads((tmp_path / "r" / "K=2" / "config.json").read_text())
    assert meta["config"]["model"] == "usernets:make" and meta["model_name"] == "Sequential"
    bad = subprocess.run(
        cli + ["--model", "nonexistent.module:f"], cwd=tmp_path, capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert (
        bad.stderr.strip() == "Error: model 'nonexistent.module:f': no module named 'nonexistent'"
    )


def test_builtin_dataset_with_own_model(monkeypatch):
    monkeypatch.setattr(parts_module, "load_data", lambda cfg: IMAGES)
    result = mf.Experiment(model=mlp, train="fashion-mnist", **SMALL).run(quiet=True)
    assert result.config.dataset == "fashion-mnist" and result.config.partition == "dirichlet"
    assert result.metrics["node_mean"].between(0, 1).all()


class NodesLinear(nn.Module):
    """A linear classifier that declares its batched form over nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 4)

    def forward(self, x):
        return self.fc(x.flatten(1))

    @staticmethod
    def forward_nodes(tensors, x):
        n, B = x.shape[:2]
        flat = x.reshape(n, B, -1)
        return torch.baddbmm(
            tensors["fc.bias"].unsqueeze(1), flat, tensors["fc.weight"].transpose(1, 2)
        )


def test_a_declared_batched_form_trains_like_the_loop():
    batched, loop = run(NodesLinear, trainer="batched"), run(NodesLinear, trainer="loop")
    assert batched.outcome.simulation.strategy == "batched"
    assert torch.allclose(batched.params, loop.params, atol=1e-5)
    assert run(NodesLinear).outcome.simulation.strategy in ("loop", "vmap", "batched")
    with pytest.raises(mf.MosaicValueError, match="needs the model to define forward_nodes"):
        run(mlp, trainer="batched")


def test_fragmenter_array_and_topology_file(tmp_path):
    d = sum(p.numel() for p in mlp().parameters())
    assignment = np.arange(d) % 2
    by_array = run(fragmenter=assignment)
    assert by_array.config.fragmenter.startswith("<")
    # each fragment has its own graph: another map gives another run
    assert not torch.equal(by_array.params, run(fragmenter="contiguous").params)
    np.save(tmp_path / "fragments.npy", assignment)
    by_file = run(fragmenter=f"assignment:{tmp_path / 'fragments.npy'}")
    assert torch.equal(by_array.params, by_file.params)
    ring = [(i, (i + 1) % 4) for i in range(4)]
    (tmp_path / "ring.txt").write_text("".join(f"{a} {b}\n" for a, b in ring))
    from_file = run(topology=tmp_path / "ring.txt")
    from_list = run(topology=np.array(ring))
    from_callable = run(topology=lambda round, fragment: ring)
    assert torch.equal(from_file.params, from_list.params)
    assert torch.equal(from_file.params, from_callable.params)
    assert from_file.config.topology == f"edges:{tmp_path / 'ring.txt'}"


def test_replace_changes_settings_and_keeps_the_objects():
    exp = mf.Experiment(model=mlp, train=TRAIN, test=TEST, **SMALL)
    k1 = exp.replace(K=1)
    assert (k1.config.K, exp.config.K) == (1, 2) and k1.user.model is exp.user.model
    ring = exp.replace(topology=lambda round, fragment: [(i, (i + 1) % 4) for i in range(4)])
    assert ring.config.topology.startswith("<") and ring.user.topology is not None
    back = ring.replace(topology="el-oracle")
    assert back.user.topology is None and back.config.topology == "el-oracle"
    with pytest.raises(mf.MosaicValueError, match="K=0 must be at least 1"):
        exp.replace(K=0)
