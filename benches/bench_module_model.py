"""Generic path vs built-in spec: GN-LeNet given as a plain ``nn.Module`` to :class:`mosaic_fast.Experiment`
against the built-in GN-LeNet spec, local-training throughput of the whole network.

One round = ``local_steps`` steps of every node on its own minibatch, then gossip. Recorded per
strategy (``loop``, ``vmap``, and what ``auto`` chose for the module), and the ratio to the built-in
spec on its default strategy (the target: the generic path within 10%, i.e. ratio >= 0.9).

    PYTHONPATH=python python -m pytest benches/bench_module_model.py -s                 # measure
    PYTHONPATH=python python -m pytest benches/bench_module_model.py --benchmark-disable  # smoke test

Inputs are random images with Fashion-MNIST's shape (1x28x28, 10 classes): throughput does not
depend on the values.
"""

from __future__ import annotations

import pytest
import torch

from mosaic_fast.data import ClassificationData
from mosaic_fast.engine.inputs import UserCode
from mosaic_fast.engine.rounds import Simulation
from mosaic_fast.models import GNLeNet
from mosaic_fast.settings import ExperimentConfig

from .conftest import SUMMARY, min_seconds

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
FULL = dict(nodes=16, degree=8, local_steps=5, batch_size=32)
SMOKE = dict(nodes=4, degree=2, local_steps=1, batch_size=4)
_BUILTIN_SECONDS: dict[str, float] = {}


def _images(n_train: int) -> ClassificationData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_train, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (n_train,), generator=g)
    return ClassificationData("fashion-mnist", x, y, x[:64], y[:64], 10, None, None)


def _simulation(kind: str, strategy: str, sizes: dict) -> Simulation:
    settings = dict(dataset="fashion-mnist", K=8, test_samples=64, device=DEVICE.type)
    data = _images(sizes["nodes"] * 200)
    if kind == "builtin":
        cfg = ExperimentConfig(**settings, **sizes, trainer=strategy).resolved()
        return Simulation(cfg, DEVICE, data=data)
    cfg = ExperimentConfig(**settings, **sizes, model="<GNLeNet>", trainer=strategy).resolved()
    return Simulation(cfg, DEVICE, data=data, user=UserCode(model=lambda: GNLeNet(1, 28, 10)))


@pytest.mark.parametrize(
    ("kind", "strategy"),
    [("builtin", "auto"), ("module", "loop"), ("module", "vmap"), ("module", "auto")],
)
def test_module_round_throughput(benchmark, full_size, kind, strategy):
    sizes = FULL if full_size else SMOKE
    sim = _simulation(kind, strategy, sizes)
    sim.train_round(0)  # warm-up (allocations, first autograd graph)
    counter = iter(range(1, 10**6))
    benchmark.pedantic(lambda: sim.train_round(next(counter)), rounds=5 if full_size else 1)
    assert sim.rounds_done >= 2 and sim.last_loss is not None
    seconds = min_seconds(benchmark)
    if seconds is None:
        return
    samples = sizes["nodes"] * sizes["local_steps"] * sizes["batch_size"]
    if kind == "builtin":
        _BUILTIN_SECONDS[DEVICE.type] = seconds
    builtin = _BUILTIN_SECONDS.get(DEVICE.type)
    row = {
        "bench": "module-vs-builtin",
        "device": DEVICE.type,
        "model": "gn-lenet" if kind == "builtin" else "GNLeNet module",
        "trainer": f"{strategy}->{sim.strategy}",
        "round_ms": f"{1000 * seconds:.0f}",
        "samples_per_s": f"{samples / seconds:.0f}",
        "throughput_vs_builtin": f"{builtin / seconds:.3f}" if builtin else "-",
    }
    benchmark.extra_info.update(row)
    SUMMARY.append(row)
