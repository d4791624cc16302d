"""The ``deterministic`` setting and the device checks: ordered scatter-adds, one-line refusals of
operations without a deterministic implementation, bad devices. CUDA behaviour is checked by the
``cuda`` tests (skipped here) and benches/device_check.sh."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosaic_fast.device import add_rows_
from mosaic_fast.engine.inputs import configure_determinism, resolve_device
from mosaic_fast.engine.trainer import SGDConfig, make_trainer
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.models import GNLeNetSpec
from mosaic_fast.settings import ExperimentConfig


def test_deterministic_is_a_setting_on_by_default() -> None:
    assert ExperimentConfig().deterministic is True
    assert ExperimentConfig(deterministic=False).deterministic is False


def test_ordered_scatter_add_is_index_add_bit_for_bit_with_repeated_rows() -> None:
    """The ordered form used on CUDA (index_put_ with accumulate) adds each row's values in the
    same order as index_add_: equal bits on CPU, where both run sequentially."""
    g = torch.Generator().manual_seed(0)
    target = torch.randn(7, 5, generator=g)
    index = torch.randint(0, 7, (200,), generator=g)  # every row many times
    values = torch.randn(200, 5, generator=g) * 1e3
    want = target.clone().index_add_(0, index, values)
    got = target.clone().index_put_((index,), values, accumulate=True)
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))
    assert torch.equal(add_rows_(target.clone(), index, values), want)  # CPU: index_add_ itself


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_ordered_scatter_add_matches_the_cpu_bits() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randn(7, 5, generator=g)
    index = torch.randint(0, 7, (20_000,), generator=g)
    values = torch.randn(20_000, 5, generator=g)
    want = target.clone().index_add_(0, index, values)
    configure_determinism(True, torch.device("cuda"))
    try:
        got = add_rows_(target.cuda(), index.cuda(), values.cuda()).cpu()
    finally:
        configure_determinism(False, torch.device("cuda"))
    assert torch.equal(got.view(torch.int32), want.view(torch.int32))


def test_an_operation_without_a_deterministic_implementation_is_one_line() -> None:
    """With torch's deterministic algorithms on, an operation that has none fails in one line
    naming it and the way out, not with torch's paragraph."""
    spec = GNLeNetSpec(1, 8, 4)
    trainer = make_trainer(spec, 2, SGDConfig(0.1), torch.device("cpu"), "loop")

    def refused(X, batch, G):  # torch's own words for such an operation
        raise RuntimeError(
            "adaptive_max_pool2d_backward_cuda does not have a deterministic implementation, but "
            "you set 'torch.use_deterministic_algorithms(True)'. You can turn off determinism just "
            "for this operation, or you can use the 'warn_only=True' option, if that's acceptable "
            "for your application. You can also file an issue at ...\nmore"
        )

    trainer.gradients = refused
    X = spec.init_params(0).repeat(2, 1).contiguous()
    with pytest.raises(MosaicValueError) as info:
        trainer.step(X, ())
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "deterministic=True, but adaptive_max_pool2d_backward_cuda has no deterministic "
        "implementation on this device; run with --no-deterministic"
    )
    trainer.gradients = lambda X, batch, G: (_ for _ in ()).throw(RuntimeError("other"))
    with pytest.raises(RuntimeError, match="^other$"):  # other errors pass through
        trainer.step(X, ())


def test_cpu_runs_are_left_alone() -> None:
    configure_determinism(True, torch.device("cpu"))
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_cuda_is_one_line(name: str) -> None:
    with pytest.raises(MosaicValueError, match=f"device='{name}' but CUDA is not available"):
        resolve_device(name)


def test_a_gpu_index_beyond_the_machine_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        MosaicValueError, match=r"^device='cuda:7' but this machine has GPU 0 only$"
    ):
        resolve_device("cuda:7")
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def test_device_names() -> None:
    assert ExperimentConfig(device="cuda:3").device == "cuda:3"
    with pytest.raises(MosaicValueError, match="cuda:N"):
        ExperimentConfig(device="gpu").validate()
    with pytest.raises(MosaicValueError, match="unknown device"):
        resolve_device("gpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert np.isfinite(1.0)
