"""A new dataset is one loader plus its spec: registered here, it runs from Python and the CLI.

Nothing outside this file names the toy dataset: its defaults (model, lr, batch size, local steps,
partition) reach the settings from its spec, and the task follows from the data it loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mosaic_fast
from mosaic_fast.cli import main
from mosaic_fast.data import ClassificationData, DatasetSpec, clear_cache, register_dataset
from mosaic_fast.data import specs as specs_module
from mosaic_fast.errors import DataNotFoundError, MosaicValueError
from mosaic_fast.settings import DATASETS, SETTINGS, ExperimentConfig

TOY_DEFAULTS = {"model": "gn-lenet", "lr": 0.1, "batch_size": 8, "local_steps": 2}
TOY_DEFAULTS |= {"partition": "iid"}


class ToyLoader:
    """Four classes of 1x8x8 images in ``toy.npz``: each class a brighter square somewhere."""

    LAYOUT = "toy.npz (x_train, y_train, x_test, y_test)"

    @staticmethod
    def write(folder: Path, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)

        def images(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = rng.integers(0, 4, n)
            x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
            for i, c in enumerate(y):
                x[i, 0, 4 * (c // 2) : 4 * (c // 2) + 4, 4 * (c % 2) : 4 * (c % 2) + 4] += 1.0
            return x, y

        (x_train, y_train), (x_test, y_test) = images(64), images(32)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "toy.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        return folder

    @staticmethod
    def find(root: Path) -> Path | None:
        return root if (root / "toy.npz").is_file() else None

    @staticmethod
    def load(folder: Path, *, seed: int, max_samples_per_group: int | None) -> ClassificationData:
        arrays = np.load(folder / "toy.npz")
        tensors = [torch.from_numpy(arrays[k]) for k in ("x_train", "y_train", "x_test", "y_test")]
        return ClassificationData(
            "toy", *tensors, num_classes=4, groups_train=None, groups_test=None
        )


@pytest.fixture
def toy(tmp_path):
    """The toy dataset registered for one test, with its files in ``tmp_path / "data"``."""
    spec = register_dataset(DatasetSpec("toy", ToyLoader(), TOY_DEFAULTS))
    yield ToyLoader.write(tmp_path / "data")
    specs_module.SPECS.pop(spec.name)
    clear_cache()


def test_the_spec_gives_the_settings_their_defaults(toy):
    assert "toy" in DATASETS
    cfg = ExperimentConfig(dataset="toy").resolved()
    assert {k: getattr(cfg, k) for k in TOY_DEFAULTS} == TOY_DEFAULTS
    assert cfg.alpha is None  # the general rule: alpha only under the Dirichlet partition
    given = ExperimentConfig(dataset="toy", lr=0.3, partition="dirichlet").resolved()
    assert (given.lr, given.alpha) == (0.3, 0.1)
    assert "0.1 for toy" in SETTINGS["lr"].default_text()


def test_a_tiny_experiment_runs_on_it(toy, tmp_path):
    settings = dict(nodes=4, K=2, degree=2, rounds=2, eval_every=1, test_samples=32)
    result = mosaic_fast.Experiment(dataset="toy", data_dir=str(toy), **settings).run(
        tmp_path / "run", quiet=True
    )
    assert list(result.metrics["round"]) == [0, 1, 2]
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (stored["dataset"], stored["model"], stored["lr"], stored["batch_size"]) == (
        "toy",
        "gn-lenet",
        0.1,
        8,
    )


def test_the_cli_runs_it(toy, tmp_path):
    args = ["run", "--dataset", "toy", "--data-dir", str(toy), "--nodes", "4", "--K", "2"]
    args += ["--degree", "2", "--rounds", "1", "--eval-every", "1", "--quiet"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "cli" / "config.json").read_text())["config"]
    assert (stored["dataset"], stored["local_steps"], stored["partition"]) == ("toy", 2, "iid")


def test_a_missing_copy_names_the_layout_and_no_download(toy, tmp_path):
    with pytest.raises(DataNotFoundError, match=r"toy has no download.*toy\.npz \(x_train"):
        mosaic_fast.data.load_dataset("toy", data_dir=tmp_path)


def test_registration_refuses_a_taken_name_user_code_and_unknown_defaults(toy):
    with pytest.raises(MosaicValueError, match="'toy' is registered already"):
        register_dataset(DatasetSpec("toy", ToyLoader()))
    with pytest.raises(MosaicValueError, match="reads as user code"):
        register_dataset(DatasetSpec("pkg.mod:toy", ToyLoader()))
    register_dataset(DatasetSpec("toy", ToyLoader(), {"rounds": 3}), replace=True)
    with pytest.raises(MosaicValueError, match="default for rounds, which takes none per dataset"):
        ExperimentConfig(dataset="toy").resolved()
