"""``mosaic-fast run`` and ``mosaic-fast datasets`` through click's CliRunner."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from data_helpers import synthetic_images, synthetic_ratings

from mosaic_fast.cli import main
from mosaic_fast.cli.run import config_from_options, configs_from_options, parse_k_list
from mosaic_fast.engine import parts as parts_module
from mosaic_fast.engine import rounds as simulation_module
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.settings import ExperimentConfig

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
    monkeypatch.setattr(parts_module, "load_data", lambda cfg: sets[cfg.dataset])


def test_help_documents_every_setting_with_its_defaults():
    result = CliRunner().invoke(main, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in ExperimentConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in result.output
    for option in ("--out", "--resume", "--config", "--quiet"):
        assert option in result.output
    line = {ln.split()[0]: ln for ln in result.output.splitlines() if ln.strip().startswith("--")}
    assert (
        "[default: 0.05 for fashion-mnist, cifar10, cifar100, other data; 0.2 for movielens; "
        "0.5 for shakespeare]" in line["--lr"]
    )
    assert "[default: 100; the demo without --dataset: 20]" in line["--rounds"]
    assert "[default: 0.1 when partition is dirichlet]" in line["--alpha"]
    assert "auto|loop|vmap|batched|sparse" in line["--trainer"]


def test_help_does_not_import_torch():
    code = (
        "import sys; from click.testing import CliRunner; from mosaic_fast.cli import main;"
        "[CliRunner().invoke(main, [c, '--help']) for c in ('run', 'sweep')];"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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
    table = result.output.splitlines()[-3:-1]
    assert table[0].split()[0] == "1" and table[1].split()[0] == "4"
    # the gain over K=1, same seed, at every evaluated round, and its peak
    rounds = [json.loads(line)["round"] for line in (tmp_path / "K=1" / "metrics.jsonl").open()]
    gain = result.output.splitlines()[-1]
    assert gain.startswith("K=4 gain over K=1 in node-mean accuracy (same seed; by round) ")
    assert [
        int(p.split(":")[0]) for p in gain.split(") ")[1].split("; peak")[0].split(", ")
    ] == rounds[1:]
    assert "; peak " in gain and " at round " in gain


def test_config_file_values_are_overridden_by_options(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[run]\ndataset = "movielens"\nnodes = 12\nlocal-steps = 3\n')
    cfg = config_from_options(config_file=str(toml), nodes=20, K="4")
    assert (cfg.dataset, cfg.nodes, cfg.local_steps, cfg.K) == ("movielens", 20, 3, 4)


def test_config_file_k_list_and_whole_test_set(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("K = [1, 4]\ntest-samples = 0\n")
    assert [(c.K, c.test_samples) for c in configs_from_options(config_file=str(toml))] == [
        (1, None),
        (4, None),
    ]
    toml.write_text('K = "2,8"\n')
    assert [c.K for c in configs_from_options(config_file=str(toml))] == [2, 8]


def test_trainer_is_a_setting():
    assert config_from_options(trainer="loop", K="2").trainer == "loop"
    assert config_from_options(K="2").trainer == "auto"


def test_no_options_is_the_fashion_mnist_k1_vs_k8_demo():
    configs = configs_from_options()
    assert [c.K for c in configs] == [1, 8]
    assert all(
        c.dataset == "fashion-mnist" and c.partition == "dirichlet" and c.alpha == 0.1
        for c in configs
    )
    # degree 2: the sparse graphs where fragments have room to help (K=8 gains ~13 points there)
    assert all(c.degree == 2 and c.eval_every == 5 and c.rounds == 20 for c in configs)
    assert all(
        c.topology == "el-oracle" and c.fragmenter == "random" and c.init == "shared"
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


def _one_error_line(result, needle):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "nan"], "Error: lr=nan must be a finite number"),
        (["--lr", "inf"], "Error: lr=inf must be a finite number"),
        (["--momentum", "-inf"], "Error: momentum=-inf must be a finite number"),
        (["--weight-decay", "nan"], "Error: weight_decay=nan must be a finite number"),
        (["--lr", "0"], "Error: lr=0.0 must be positive"),
        (["--momentum", "1"], "Error: momentum=1.0 must be in [0, 1)"),
        (["--trainer", "fast"], "Error: Invalid value for '--trainer': 'fast' is not one of"),
        (["--rounds", "1.5"], "Error: Invalid value for '--rounds': '1.5' is not a valid integer"),
    ],
)
def test_bad_numbers_are_refused_in_one_line(fake_data, tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", *TINY, "--out", str(tmp_path / "x"), *args])
    _one_error_line(result, message)
    assert result.output.startswith(message)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nodes = 'x'\n", "nodes='x' must be an integer"),
        ("nodes = 16.0\n", "nodes=16.0 must be an integer"),
        ("nodes = true\n", "nodes=True must be an integer"),
        ("lr = 'fast'\n", "lr='fast' must be a number"),
        ("lr = nan\n", "lr=nan must be a finite number"),
        ("lr = -inf\n", "lr=-inf must be a finite number"),
        ("momentum = 1.5\n", "momentum=1.5 must be in [0, 1)"),
        ("mf-biases = 1\n", "mf_biases=1 must be true or false"),
        ("dataset = 3\n", "dataset=3 must be a string"),
        ("topology = 'mesh'\n", "topology='mesh' is not one of el-oracle"),
        ("K = [1, 'x']\n", "K='x' must be an integer"),
        ("[run]\nnodez = 4\n", "unknown setting 'nodez' (did you mean 'nodes'?)"),
        ("extra = {}\n", "unknown setting 'extra'"),
        ("local-steps = 2\nlocal_steps = 3\n", "setting local_steps is given twice"),
        ("nodes = 4\n[run]\ndegree = 2\n", "'nodes' is outside the [run] table"),
    ],
)
def test_config_file_errors_are_one_line_naming_file_and_key(tmp_path, text, message):
    toml = tmp_path / "f.toml"
    toml.write_text(text)
    result = CliRunner().invoke(main, ["run", "--config", str(toml), "--out", str(tmp_path / "o")])
    _one_error_line(result, f"Error: config file {str(toml)!r}: {message}")


def test_unreadable_config_files_are_one_line(tmp_path):
    cases = {
        tmp_path / "missing.toml": "does not exist",
        tmp_path: "is a directory",
    }
    invalid = tmp_path / "invalid.toml"
    invalid.write_text("nodes = \n")
    cases[invalid] = "is not valid TOML: "
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    cases[binary] = "is not UTF-8 text"
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.toml"
        locked.write_text("nodes = 4\n")
        locked.chmod(0)
        cases[locked] = "cannot be read: permission denied"
    for path, why in cases.items():
        for command in ("run", "sweep"):
            args = [command, "--config", str(path), "--out", str(tmp_path / "o")]
            _one_error_line(CliRunner().invoke(main, args), f"config file {str(path)!r} {why}")


def test_datasets_lists_every_dataset(tmp_path):
    result = CliRunner().invoke(main, ["datasets", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == ["fashion-mnist", "movielens", "cifar10", "cifar100", "shakespeare"]
    assert all(("found" in line) or ("missing" in line) for line in result.output.splitlines())
    bad = CliRunner().invoke(main, ["datasets", "--data-dir", "/nonexistent/dir"])
    assert bad.exit_code == 2 and bad.output.startswith("Error: ")
