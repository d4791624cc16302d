"""``mosaic-fast run`` and ``mosaic-fast datasets`` through click's CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_engine import synthetic_images, synthetic_ratings

from mosaic_fast.cli import main
from mosaic_fast.cli.run import config_from_options, configs_from_options, parse_k_list
from mosaic_fast.config import ExperimentConfig
from mosaic_fast.engine import simulation as simulation_module
from mosaic_fast.errors import MosaicValueError

TINY = [
    "--nodes",
    "4",
    "--degree",
    "2",
    "--rounds",
    "2",
    "--local-steps",
    "1",
    "--batch-size",
    "4",
    "--partition",
    "iid",
    "--eval-every",
    "1",
    "--test-samples",
    "20",
    "--quiet",
]


@pytest.fixture
def fake_data(monkeypatch):
    sets = {"fashion-mnist": synthetic_images(), "movielens": synthetic_ratings()}
    monkeypatch.setattr(simulation_module, "load_data", lambda cfg: sets[cfg.dataset])


def test_help_documents_every_config_field():
    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for name in ExperimentConfig.__dataclass_fields__:
        if name != "extra":
            assert "--" + name.replace("_", "-") in result.output
    for extra in ("--out", "--resume", "--config", "--quiet"):
        assert extra in result.output


def test_tiny_run_writes_a_complete_folder_and_prints_the_table(fake_data, tmp_path):
    result = CliRunner().invoke(main, ["run", *TINY, "--K", "2", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["complete"] is True
    assert "node-mean accuracy" in result.output


def test_k_list_runs_one_experiment_per_k(fake_data, tmp_path):
    result = CliRunner().invoke(main, ["run", *TINY, "--K", "1,4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for k in (1, 4):
        meta = json.loads((tmp_path / f"K={k}" / "config.json").read_text())
        assert meta["config"]["K"] == k
    table = result.output.splitlines()[-2:]
    assert table[0].split()[0] == "1" and table[1].split()[0] == "4"


def test_config_file_values_are_overridden_by_options(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[run]\ndataset = "movielens"\nnodes = 12\nlocal-steps = 3\n')
    cfg = config_from_options(config_file=str(toml), nodes=20, K="4")
    assert (cfg.dataset, cfg.nodes, cfg.local_steps, cfg.K) == ("movielens", 20, 3, 4)


def test_no_options_is_the_fashion_mnist_k1_vs_k8_demo():
    configs = configs_from_options()
    assert [c.K for c in configs] == [1, 8]
    assert all(
        c.dataset == "fashion-mnist" and c.partition == "dirichlet" and c.alpha == 0.1
        for c in configs
    )
    assert all(
        c.degree == 8 and c.topology == "el-oracle" and c.fragmenter == "contiguous"
        for c in configs
    )


def test_k_list_parsing():
    assert parse_k_list("1, 8,16") == [1, 8, 16] and parse_k_list(4) == [4]
    with pytest.raises(MosaicValueError, match="'1,x'"):
        parse_k_list("1,x")


def test_resume_continues_an_interrupted_cli_run(fake_data, tmp_path, monkeypatch):
    out = tmp_path / "r"
    args = ["run", *TINY, "--rounds", "4", "--checkpoint-every", "2", "--K", "2", "--out", str(out)]
    original = simulation_module.Simulation.train_round

    def crash(self, t):
        if t == 2:
            raise KeyboardInterrupt
        original(self, t)

    monkeypatch.setattr(simulation_module.Simulation, "train_round", crash)
    CliRunner().invoke(main, args)
    assert not (out / "summary.json").exists()
    monkeypatch.setattr(simulation_module.Simulation, "train_round", original)
    result = CliRunner().invoke(main, ["run", "--resume", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["rounds"] == 4


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--dataset", "mnist"], "mnist"),
        (["--K", "100000000"], "100000000"),
        (["--alpha", "0"], "alpha=0"),
        (["--alpha", "-1"], "alpha=-1"),
        (["--degree", "4"], "degree=4"),
        (["--nodes", "abc"], "abc"),
        (["--K", "1,x"], "1,x"),
        (["--data-dir", "/nonexistent/folder"], "/nonexistent/folder"),
        (["--config", "/nonexistent/c.toml"], "c.toml"),
    ],
)
def test_bad_options_print_one_error_line_and_exit_2(
    fake_data, tmp_path, args, needle, monkeypatch
):
    if "--data-dir" in args:  # the real loader must see the bad folder
        monkeypatch.undo()
    result = CliRunner().invoke(main, ["run", *TINY, "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], result.output
    assert "Traceback" not in result.output


def test_datasets_lists_every_dataset(tmp_path):
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == ["fashion-mnist", "movielens", "cifar10", "cifar100", "shakespeare"]
    assert all(("found" in line) or ("missing" in line) for line in result.output.splitlines())
    bad = CliRunner().invoke(main, ["datasets", "--data-dir", "/nonexistent/dir"])
    assert bad.exit_code == 2 and bad.output.startswith("Error: ")
