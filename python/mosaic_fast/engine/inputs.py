"""What a run takes from outside the settings: the device, the user's Python objects, the data."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data import ClassificationData
from ..errors import MosaicTypeError, MosaicValueError
from ..settings import ExperimentConfig
from ..tasks.supervised import supervised_data
from ..user_code import first_line, user_object


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto``; MosaicValueError (one line) when CUDA is not
    available to torch or has no GPU ``N``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device(name)
    if name != "cuda" and not re.fullmatch(r"cuda:\d+", name):
        raise MosaicValueError(f"unknown device {name!r}; choose cpu, cuda, cuda:N or auto")
    if not torch.cuda.is_available():
        raise MosaicValueError(
            f"device={name!r} but CUDA is not available to torch on this machine"
        )
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        gpus = "GPU 0 only" if count == 1 else f"GPUs 0-{count - 1}"
        raise MosaicValueError(f"device={name!r} but this machine has {gpus}")
    return device


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Apply the ``deterministic`` setting for a run on ``device`` (process-wide, as torch's flags
    are). On CUDA, on: torch's deterministic algorithms (an operation without a deterministic
    CUDA implementation then fails in one line, see :func:`.trainer.nondeterministic_error`),
    cuDNN's deterministic convolutions without autotuning, no TF32 in matrix products and
    convolutions, and scatter-adds in a fixed order (:func:`mosaic_fast.device.add_rows_`); off: torch's
    defaults. On CPU nothing changes: every CPU result is already independent of scheduling."""
    if device.type != "cuda":
        return
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic; read when its handle is created.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False
    # TF32 off for matrix products (torch's default) and for convolutions (not the default).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = not deterministic


@dataclass(frozen=True)
class UserCode:
    """Python objects from the public API that no setting can hold (see :class:`mosaic_fast.Experiment`).

    The matching settings hold their labels (``module:attr`` references or ``<name>``).
    """

    model: Callable[[], Any] | None = None
    train: Any = None
    test: Any = None
    loss: Callable[..., Any] | None = None
    metric: Any = None
    optimizer: Any = None
    topology: Any = None
    fragmenter: Any = None
    partition: Sequence[Any] | None = None


def load_data(cfg: ExperimentConfig) -> Any:
    """The built-in dataset ``cfg.dataset`` names."""
    from ..data import load_dataset

    return load_dataset(cfg.dataset, data_dir=cfg.data_dir, seed=cfg.seed)


def user_data(cfg: ExperimentConfig, user: UserCode) -> tuple[Any, Any]:
    """(train, test) from the user's objects, or from the ``module:loader`` the dataset names."""
    if user.train is not None:
        return user.train, user.test
    loader = user_object("dataset", cfg.dataset)
    if not callable(loader):
        raise MosaicTypeError(
            f"dataset {cfg.dataset!r} is not callable; it must return (train, test)"
        )
    try:
        loaded = loader()
    except Exception as exc:
        raise MosaicValueError(f"dataset loader {cfg.dataset} raised {first_line(exc)}") from None
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 2:
        raise MosaicTypeError(
            f"dataset loader {cfg.dataset} must return (train, test), got {type(loaded).__name__}"
        )
    return loaded[0], loaded[1]


def builtin_images(data: Any, name: str) -> ClassificationData:
    """User images with one class each, as the container GN-LeNet's built-in task trains on."""
    sup = supervised_data(data[0], data[1], name)
    if sup.x_train.dim() != 4 or not sup.x_train.is_floating_point() or not sup.classification:
        raise MosaicValueError(
            "model='gn-lenet' needs float images (N, C, S, S) with integer class targets, got "
            f"inputs {tuple(sup.x_train.shape)} {sup.x_train.dtype}, targets {sup.y_train.dtype}"
        )
    classes = int(max(sup.y_train.max(), sup.y_test.max())) + 1
    return ClassificationData(
        name, sup.x_train, sup.y_train, sup.x_test, sup.y_test, classes, None, None
    )
