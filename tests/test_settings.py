"""Settings added through one declaration: Nesterov momentum, down to the SGD update."""

from __future__ import annotations

import pytest
import torch

from mosaic_fast.engine.trainer import SGDConfig, make_trainer
from mosaic_fast.models import GNLeNetSpec

CPU = torch.device("cpu")


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_sgd_update_is_bit_identical_to_torch_sgd(nesterov, weight_decay):
    spec = GNLeNetSpec(1, 8, 3)
    n, d = 3, spec.n_params
    sgd = SGDConfig(0.05, momentum=0.9, weight_decay=weight_decay, nesterov=nesterov)
    trainer = make_trainer(spec, n, sgd, CPU, "loop")
    g = torch.Generator().manual_seed(5)
    X = torch.randn(n, d, generator=g)
    params = [torch.nn.Parameter(X[i].clone()) for i in range(n)]
    optimisers = [
        torch.optim.SGD(
            [p], lr=sgd.lr, momentum=sgd.momentum, weight_decay=weight_decay, nesterov=nesterov
        )
        for p in params
    ]
    for _ in range(4):
        G = torch.randn(n, d, generator=g)
        for i, (p, opt) in enumerate(zip(params, optimisers, strict=True)):
            p.grad = G[i].clone()
            opt.step()
        trainer.apply(X, G)
        assert torch.equal(X, torch.stack([p.detach() for p in params]))


def test_nesterov_changes_the_trajectory():
    spec = GNLeNetSpec(1, 8, 3)
    X0 = torch.randn(2, spec.n_params, generator=torch.Generator().manual_seed(6))
    ends = []
    for nesterov in (False, True):
        trainer = make_trainer(spec, 2, SGDConfig(0.1, 0.9, nesterov=nesterov), CPU, "loop")
        X = X0.clone()
        for _ in range(3):
            trainer.apply(X, torch.ones_like(X))
        ends.append(X)
    # Constant gradient 1: plain momentum moves 0.1 * (1 + 1.9 + 2.71), Nesterov 0.1 * (1.9 + 2.71 + 3.439).
    torch.testing.assert_close(X0 - ends[0], torch.full_like(X0, 0.561))
    torch.testing.assert_close(X0 - ends[1], torch.full_like(X0, 0.8049))
