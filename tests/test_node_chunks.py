"""Memory at scale: batched trainers split the nodes into passes when one pass does not fit, the
consensus distance is computed by row blocks, and parameter buffers on CUDA are refused in one
line when the device's free memory cannot hold them (the figure injected here)."""

from __future__ import annotations

import pytest
import torch

from mosaic_fast import kernel
from mosaic_fast.engine.trainer import SGDConfig, make_trainer
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.models import GNLeNetSpec, LSTMSpec


def problem(spec, n: int, B: int):
    g = torch.Generator().manual_seed(0)
    if isinstance(spec, LSTMSpec):
        batch = (
            torch.randint(0, 6, (n, B, 5), generator=g),
            torch.randint(0, 7, (n, B), generator=g),
        )
    else:
        batch = (torch.randn(n, B, 1, 8, 8, generator=g), torch.randint(0, 4, (n, B), generator=g))
    X = torch.stack([spec.init_params(i) for i in range(n)]).contiguous()
    return X, batch


SPECS = [("gn-lenet", GNLeNetSpec(1, 8, 4)), ("lstm", LSTMSpec(7, sequence_targets=False))]


@pytest.mark.parametrize("strategy", ["batched", "vmap"])
@pytest.mark.parametrize(("name", "spec"), SPECS)
def test_passes_of_fewer_nodes_give_the_same_step(name, spec, strategy) -> None:
    X, batch = problem(spec, 5, 3)
    whole = make_trainer(spec, 5, SGDConfig(0.1, momentum=0.5), torch.device("cpu"), strategy)
    parts = make_trainer(spec, 5, SGDConfig(0.1, momentum=0.5), torch.device("cpu"), strategy)
    parts.nodes_per_pass = 2  # passes of 2, 2 and 1 nodes
    X1, X2 = X.clone(), X.clone()
    for _ in range(2):
        l1, l2 = whole.step(X1, batch), parts.step(X2, batch)
        torch.testing.assert_close(l2, l1, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(X2, X1, rtol=1e-6, atol=1e-6)


def test_a_pass_out_of_memory_is_split_and_stays_split(monkeypatch) -> None:
    spec = GNLeNetSpec(1, 8, 4)
    X, batch = problem(spec, 6, 2)
    trainer = make_trainer(spec, 6, SGDConfig(0.1), torch.device("cpu"), "batched")
    want = make_trainer(spec, 6, SGDConfig(0.1), torch.device("cpu"), "batched")
    X_want = X.clone()
    want.step(X_want, batch)
    original = type(trainer).gradients
    sizes = []

    def limited(self, X, batch, G):  # a device that holds the activations of 2 nodes at most
        sizes.append(X.shape[0])
        if X.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate ...")
        return original(self, X, batch, G)

    monkeypatch.setattr(type(trainer), "gradients", limited)
    trainer.step(X, batch)
    assert sizes == [6, 3, 2, 2, 2] and trainer.nodes_per_pass == 2
    torch.testing.assert_close(X, X_want, rtol=1e-6, atol=1e-6)
    sizes.clear()
    trainer.step(X, batch)
    assert sizes == [2, 2, 2]  # remembered for the rest of the run


def test_one_node_that_does_not_fit_is_one_line(monkeypatch) -> None:
    spec = GNLeNetSpec(1, 8, 4)
    X, batch = problem(spec, 3, 2)
    trainer = make_trainer(spec, 3, SGDConfig(0.1), torch.device("cpu"), "batched")

    def never(self, X, batch, G):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate ...\nmore")

    monkeypatch.setattr(type(trainer), "gradients", never)
    with pytest.raises(
        MosaicValueError, match=r"^one local step of 1 node\(s\) at batch size 2 does not fit"
    ):
        trainer.step(X, batch)


def test_a_cuda_buffer_beyond_the_free_memory_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(kernel, "device_free_bytes", lambda device: 3 << 30)
    with pytest.raises(
        MosaicValueError,
        match=r"^a parameter buffer of n_nodes=10000 x n_params=100000 needs 3\.7 GiB but cuda has 3\.0 GiB free$",
    ):
        kernel.empty_params(10_000, 100_000, device="cuda")


@pytest.mark.parametrize(("n", "d"), [(6, 1003), (64, 20_001), (257, 4099)])
def test_the_consensus_distance_by_blocks_is_the_same_number(n: int, d: int) -> None:
    from mosaic_fast.engine.consensus import consensus_distance

    g = torch.Generator().manual_seed(n)
    X = torch.randn(n, d, generator=g) * torch.rand(n, 1, generator=g) * 100
    whole = consensus_distance(X)
    for block in (8 * n, 8 * 7 * max(n, d), 8 * n * d // 3):  # one column, 7 rows, thirds
        assert torch.equal(consensus_distance(X, block_bytes=block), whole)
