"""Per-node optimizers over the flat (n, d) buffer equal n separate torch models and optimizers.

Gradients come from the ``loop`` trainer (GN-LeNet, LSTM: one ordinary autograd pass per node) and
the ``sparse`` trainer (matrix factorisation), which both give each node's autograd gradient bit
for bit; so the parameters must be exactly equal (torch.equal), not merely close.
"""

from __future__ import annotations

import functools
import re

import pytest
import torch

from mosaic_fast.engine.optim import ELEMENTWISE, optimizer_from_config, torch_optimizer
from mosaic_fast.engine.trainer import SGDConfig, make_trainer
from mosaic_fast.errors import MosaicTypeError, MosaicValueError
from mosaic_fast.models import GNLeNetSpec, LSTMSpec, MatrixFactorizationSpec
from mosaic_fast.settings import ExperimentConfig

CPU = torch.device("cpu")
STEPS = 5


def _config(**settings):
    return ExperimentConfig(**{"lr": 0.05, **settings}).resolved()


# id -> (config settings, user object, the torch optimizer each separate reference model runs).
CASES = {
    "sgd-momentum-nesterov-wd": (
        {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        None,
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    ),
    "sgd-momentum": (
        {"momentum": 0.5},
        None,
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5),
    ),
    "adam": (
        {"optimizer": "adam", "lr": 0.01, "beta1": 0.8, "eps": 1e-6, "weight_decay": 0.01},
        None,
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.999), eps=1e-6, weight_decay=0.01),
    ),
    "adamw": (
        {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.05},
        None,
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05),
    ),
    "rmsprop-reference": (
        {"optimizer": "torch.optim:RMSprop", "lr": 0.01, "momentum": 0.5},
        None,
        lambda p: torch.optim.RMSprop(p, lr=0.01, momentum=0.5),
    ),
    "adagrad-reference": (
        {"optimizer": "torch.optim:Adagrad", "lr": 0.1},
        None,
        lambda p: torch.optim.Adagrad(p, lr=0.1),
    ),
    "rmsprop-factory": (
        {},
        functools.partial(torch.optim.RMSprop, lr=0.01, alpha=0.9, centered=True),
        lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, centered=True),
    ),
}


def _image_model():
    spec = GNLeNetSpec(1, 8, 4)
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(3, 5, 1, 8, 8, generator=g), torch.randint(0, 4, (3, 5), generator=g))
        for _ in range(STEPS)
    ]
    return spec, "loop", batches, lambda m, b: torch.nn.functional.cross_entropy(m(b[0]), b[1])


def _lstm_model():
    spec = LSTMSpec(7, sequence_targets=True, pad_index=6)
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randint(0, 6, (3, 2, 4), generator=g), torch.randint(0, 7, (3, 2, 4), generator=g))
        for _ in range(STEPS)
    ]
    return spec, "loop", batches, lambda m, b: spec.loss(m(b[0]), b[1])


def _mf_model():
    spec = MatrixFactorizationSpec(6, 8, dim=3, biases=True, mean=3.0)
    g = torch.Generator().manual_seed(2)
    batches = [
        (
            torch.randint(0, 6, (3, 7), generator=g),
            torch.randint(0, 8, (3, 7), generator=g),
            5 * torch.rand(3, 7, generator=g),
        )
        for _ in range(STEPS)
    ]
    return spec, "sparse", batches, lambda m, b: torch.nn.functional.mse_loss(m(b[0], b[1]), b[2])


MODELS = {"gn-lenet": _image_model, "lstm": _lstm_model, "mf": _mf_model}


def _separate_models(spec, X0, batches, loss_fn, make_optimizer):
    """Node i alone: its own module, its own torch optimizer, its own minibatches."""
    rows = []
    for i in range(X0.shape[0]):
        module = spec.module(0)
        torch.nn.utils.vector_to_parameters(X0[i].clone(), module.parameters())
        opt = make_optimizer(module.parameters())
        for batch in batches:
            opt.zero_grad()
            loss_fn(module, [b[i] for b in batch]).backward()
            opt.step()
        rows.append(torch.nn.utils.parameters_to_vector(module.parameters()).detach())
    return torch.stack(rows)


def _flat_buffer(spec, strategy, X0, batches, optimizer):
    """The trainer on the (n, d) buffer, which alternates between two storages as under gossip."""
    X, spare = X0.clone(), torch.empty_like(X0)
    trainer = make_trainer(spec, X0.shape[0], optimizer, CPU, strategy)
    for batch in batches:
        trainer.step(X, batch)
        spare.copy_(X)
        X, spare = spare, X
    return X


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", CASES)
def test_flat_buffer_equals_separate_torch_models(case, model):
    settings, user, make_reference = CASES[case]
    spec, strategy, batches, loss_fn = MODELS[model]()
    X0 = torch.stack([spec.init_params(seed) for seed in range(3)])
    optimizer = optimizer_from_config(_config(**settings), user)
    X = _flat_buffer(spec, strategy, X0, batches, optimizer)
    assert torch.equal(X, _separate_models(spec, X0, batches, loss_fn, make_reference))
    assert not torch.equal(X, X0)


def _subclass(cls):
    # Not in ELEMENTWISE by identity, so torch_optimizer runs the full probe on it.
    return type(f"Probed{cls.__name__}", (cls,), {})


OPTIONS = {
    "SGD": {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
    "Adam": {"amsgrad": True, "weight_decay": 0.1},
    "AdamW": {"amsgrad": True},
    "Adamax": {"weight_decay": 0.1},
    "NAdam": {"decoupled_weight_decay": True, "weight_decay": 0.1},
    "RAdam": {"weight_decay": 0.1},
    "Adagrad": {"lr_decay": 0.01, "weight_decay": 0.1},
    "RMSprop": {"momentum": 0.9, "centered": True, "weight_decay": 0.1},
    "Adadelta": {"weight_decay": 0.1},
    "ASGD": {"t0": 2, "weight_decay": 0.1},
    "Rprop": {},
}


@pytest.mark.parametrize("cls", ELEMENTWISE, ids=lambda c: c.__name__)
def test_every_listed_torch_optimizer_is_elementwise(cls):
    make = functools.partial(cls, lr=0.01, **OPTIONS[cls.__name__])
    assert (
        torch_optimizer(functools.partial(_subclass(cls), lr=0.01)).name == f"Probed{cls.__name__}"
    )
    # Beyond the probe: a width with vectorised bodies and scalar tails, many steps.
    g = torch.Generator().manual_seed(7)
    start = torch.randn(4, 301, generator=g)
    whole = start.clone().requires_grad_(True)
    rows = [start[i].clone().requires_grad_(True) for i in range(4)]
    whole_opt, row_opts = make([whole]), [make([r]) for r in rows]
    for _ in range(12):
        G = torch.randn(4, 301, generator=g)
        whole.grad = G.clone()
        whole_opt.step()
        for row, opt, grad in zip(rows, row_opts, G, strict=True):
            row.grad = grad.clone()
            opt.step()
    assert torch.equal(whole.detach(), torch.stack(rows).detach())


class _LayerNormalisedSGD(torch.optim.SGD):
    """Scales each tensor's gradient by its norm (as LARS does): not one optimizer per row."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad.div_(p.grad.norm())
        return super().step(closure)


@pytest.mark.parametrize(
    ("user", "message"),
    [
        (torch.optim.LBFGS, "optimizer LBFGS is not elementwise: its line search"),
        (torch.optim.SparseAdam, "optimizer SparseAdam needs sparse gradients"),
        (torch.optim.Adafactor, "optimizer Adafactor is not elementwise: it factors 2-D"),
        (_LayerNormalisedSGD, "optimizer _LayerNormalisedSGD is not elementwise: stepping one"),
    ],
)
def test_optimizers_that_are_not_per_node_are_refused(user, message):
    with pytest.raises(MosaicValueError, match=re.escape(message)):
        optimizer_from_config(_config(), user)


def test_lbfgs_reference_is_refused():
    with pytest.raises(MosaicValueError, match=r"^optimizer LBFGS is not elementwise"):
        optimizer_from_config(_config(optimizer="torch.optim:LBFGS"))


@pytest.mark.parametrize(
    ("reference", "error", "message"),
    [
        (
            "nonexistent.module:Opt",
            MosaicValueError,
            "optimizer 'nonexistent.module:Opt': no module named 'nonexistent'",
        ),
        (
            "torch.optim:Nope",
            MosaicValueError,
            "optimizer 'torch.optim:Nope': module 'torch.optim' has no attribute 'Nope'",
        ),
        ("math:pi", MosaicTypeError, "optimizer 'math:pi' is float, not a torch.optim.Optimizer"),
        ("torch:Tensor", MosaicTypeError, "is a class but not a torch.optim.Optimizer subclass"),
    ],
)
def test_bad_references_are_one_line_errors(reference, error, message):
    with pytest.raises(error, match=re.escape(message)) as info:
        optimizer_from_config(_config(optimizer=reference))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("settings", "user", "message"),
    [
        (
            {"optimizer": "adam", "momentum": 0.9},
            None,
            "momentum=0.9 has no effect with optimizer='adam'",
        ),
        ({"optimizer": "adamw", "nesterov": True}, None, "nesterov=True has no effect"),
        ({"beta1": 0.5}, None, "beta1=0.5 has no effect with optimizer='sgd'"),
        ({"eps": 1e-6}, None, "eps=1e-06 has no effect with optimizer='sgd'"),
        (
            {"optimizer": "torch.optim:Rprop", "weight_decay": 0.1},
            None,
            "weight_decay=0.1 has no effect with optimizer 'torch.optim:Rprop' (it takes no weight_decay",
        ),
        (
            {"momentum": 0.9},
            functools.partial(torch.optim.Adam, lr=0.01),
            "momentum=0.9 has no effect with optimizer functools.partial",
        ),
        ({"optimizer": "adam"}, torch.optim.Adam, "optimizer='adam' and an optimizer object"),
        ({"optimizer": "torch.optim:Adagrad", "beta2": 0.9}, None, "beta2=0.9 has no effect"),
    ],
)
def test_settings_that_would_be_ignored_are_refused(settings, user, message):
    with pytest.raises(MosaicValueError, match=re.escape(message)):
        optimizer_from_config(_config(**settings), user)


def test_torch_refusing_hyperparameters_is_one_line():
    bad = functools.partial(torch.optim.Adam, lr=0.01, betas=(1.5, 0.9))
    with pytest.raises(MosaicValueError, match=r"^optimizer .* cannot be built: ValueError: "):
        optimizer_from_config(_config(), bad)
    with pytest.raises(MosaicTypeError, match="is an optimizer instance"):
        optimizer_from_config(_config(), torch.optim.SGD([torch.zeros(1)], lr=0.1))


def test_class_gets_lr_and_changed_settings_only():
    seen = {}

    class Recording(torch.optim.Adam):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
            seen.update(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
            super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    optimizer_from_config(_config(lr=0.2, beta2=0.9), Recording)
    assert seen == {"lr": 0.2, "betas": (0.9, 0.9), "eps": 1e-8, "weight_decay": 0.0}


def test_builtin_sgd_is_the_hand_written_rule_and_keeps_the_sparse_fast_path():
    spec = MatrixFactorizationSpec(6, 8, dim=3)
    plain = optimizer_from_config(_config(lr=0.2))
    assert plain.sgd == SGDConfig(0.2) and plain.build is None
    assert not make_trainer(spec, 2, plain, CPU, "sparse")._dense
    assert make_trainer(spec, 2, optimizer_from_config(_config(momentum=0.5)), CPU, "sparse")._dense
    adam = optimizer_from_config(_config(optimizer="adam"))
    assert make_trainer(spec, 2, adam, CPU, "sparse")._dense


def _trained(spec, optimizer, batches):
    X = torch.stack([spec.init_params(seed) for seed in range(3)])
    trainer = make_trainer(spec, 3, optimizer, CPU, "loop")
    for batch in batches:
        trainer.step(X, batch)
    return trainer, X


@pytest.mark.parametrize("case", ["adam", "rmsprop-reference", "adagrad-reference"])
def test_checkpoint_round_trip_mid_training_continues_identically(case, tmp_path):
    settings, user, _ = CASES[case]
    optimizer = optimizer_from_config(_config(**settings), user)
    spec, _, batches, _ = _image_model()
    trainer, X = _trained(spec, optimizer, batches[:2])
    torch.save(trainer.state_dict(), tmp_path / "trainer.pt")
    state = torch.load(tmp_path / "trainer.pt", weights_only=True)
    assert state["optimizer"] == optimizer.name and state["state"]
    saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state["state"].items()}
    fresh = make_trainer(spec, 3, optimizer, CPU, "loop")
    fresh.load_state_dict(state)
    X_resumed = X.clone()
    for batch in batches[2:]:
        trainer.step(X, batch)
        fresh.step(X_resumed, batch)
    assert torch.equal(X, X_resumed)
    # The trainer loaded a copy: training on does not write into the dict it was given.
    assert all(torch.equal(state["state"][k], v) for k, v in saved.items())


def test_state_before_the_first_step_round_trips():
    spec, _, batches, _ = _image_model()
    optimizer = optimizer_from_config(_config(optimizer="adam"))
    trained, _ = _trained(spec, optimizer, batches[:1])
    empty = make_trainer(spec, 3, optimizer, CPU, "loop").state_dict()
    assert empty == {"optimizer": "adam", "state": {}}
    trained.load_state_dict(empty)  # back to a fresh optimizer
    assert trained.state_dict() == empty


def test_old_sgd_checkpoints_still_load():
    spec, _, batches, _ = _image_model()
    optimizer = optimizer_from_config(_config(momentum=0.9))
    trainer, X = _trained(spec, optimizer, batches[:2])
    old = {"momentum_buffer": trainer.state_dict()["momentum_buffer"].clone()}
    fresh = make_trainer(spec, 3, SGDConfig(0.05, momentum=0.9), CPU, "loop")
    fresh.load_state_dict(old)
    X2 = X.clone()
    trainer.step(X, batches[2])
    fresh.step(X2, batches[2])
    assert torch.equal(X, X2)


def _adam_state():
    spec, _, batches, _ = _image_model()
    trainer, _ = _trained(spec, optimizer_from_config(_config(optimizer="adam")), batches[:1])
    return spec, trainer, trainer.state_dict()


@pytest.mark.parametrize(
    ("change", "entry"),
    [
        (lambda s: s["state"].update(exp_avg=s["state"]["exp_avg"][:2]), "trainer.state.exp_avg"),
        (
            lambda s: s["state"].update(exp_avg_sq=s["state"]["exp_avg_sq"].double()),
            "trainer.state.exp_avg_sq",
        ),
        (lambda s: s["state"].pop("step"), "trainer.state"),
        (lambda s: s["state"].update(extra=1), "trainer.state"),
        (lambda s: s.update(optimizer="adamw"), "trainer.optimizer"),
        (lambda s: s.pop("state"), "trainer"),
    ],
)
def test_malformed_optimizer_state_is_refused_and_changes_nothing(change, entry):
    spec, trainer, before = _adam_state()
    bad = {"optimizer": before["optimizer"], "state": dict(before["state"])}
    change(bad)
    with pytest.raises(MosaicValueError, match=re.escape(repr(entry))):
        trainer.load_state_dict(bad)
    after = trainer.state_dict()
    assert after.keys() == before.keys() and after["state"].keys() == before["state"].keys()
    assert all(torch.equal(after["state"][k], v) for k, v in before["state"].items())


def test_state_of_another_optimizer_is_refused():
    spec, adam_trainer, adam_state = _adam_state()
    sgd = make_trainer(spec, 3, SGDConfig(0.1, momentum=0.9), CPU, "loop")
    with pytest.raises(
        MosaicValueError, match="'trainer.optimizer' is 'adam', but this run's optimizer is 'sgd'"
    ):
        sgd.load_state_dict(adam_state)
    with pytest.raises(
        MosaicValueError, match="holds SGD momentum buffers, but this run's optimizer is 'adam'"
    ):
        adam_trainer.load_state_dict(sgd.state_dict())


def test_make_trainer_refuses_other_optimizer_objects():
    with pytest.raises(MosaicTypeError, match="must be an OptimizerSpec or SGDConfig, got str"):
        make_trainer(GNLeNetSpec(1, 8, 3), 2, "adam", CPU, "loop")
