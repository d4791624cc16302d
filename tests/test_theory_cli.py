"""Theory outputs, configuration errors and the ``mosaic-fast theory`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mosaic_fast.cli import main
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.theory import (
    TheoryConfig,
    check_spd,
    correlation_matrix,
    run_theory,
    write_outputs,
)

SMALL = dict(nodes=8, params=4, K=(1, 2, 4), iterations=6, draws=3, seeds=3)


def test_outputs_files_and_shapes(tmp_path):
    cfg = TheoryConfig(**SMALL, correlation="toeplitz", gossip="directed")
    paths = write_outputs(run_theory(cfg), tmp_path)
    assert {p.name for p in paths} == {
        "theory.json",
        "fig2_spectrum.png",
        "fig3_consensus_sq_norm.png",
        "ratio_to_k1.png",
    }
    assert all(p.stat().st_size > 1000 for p in paths)
    doc = json.loads((tmp_path / "theory.json").read_text())
    assert doc["config"]["K"] == [1, 2, 4] and doc["gossip_moments"]["source"] == "formula"
    for k in ("1", "2", "4"):
        entry = doc["K"][k]
        assert (
            len(entry["consensus_sq_norm_mean"])
            == len(entry["consensus_sq_norm_std"])
            == len(entry["consensus_sq_norm_exact"])
            == 7
        )
        assert len(entry["rho_draws"]) == 3 and len(entry["spectrum_mean"]) == 32
        # The top of the mean descending spectrum is the mean of the per-draw largest eigenvalues.
        assert entry["rho_mean"] == pytest.approx(np.mean(entry["rho_draws"]), rel=1e-12)
        assert entry["spectrum_mean"][0] == pytest.approx(entry["rho_mean"], rel=1e-12)
        assert entry["kronecker_max_abs_diff"] < 1e-10
        assert entry["consensus_sq_norm_mean"][0] == pytest.approx(
            entry["consensus_sq_norm_exact"][0]
        )
        assert entry["consensus_sq_norm_mean"][-1] < entry["consensus_sq_norm_mean"][0]


def test_rust_backend_tracks_float64_simulation():
    base = TheoryConfig(**{**SMALL, "K": (2,)}, gossip="directed")
    r64 = run_theory(base).per_k[0]
    r32 = run_theory(TheoryConfig(**{**SMALL, "K": (2,)}, gossip="directed", backend="rust")).per_k[
        0
    ]
    np.testing.assert_allclose(r32.consensus_sq_norm_mean, r64.consensus_sq_norm_mean, rtol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(K=(5,)), "K=5 exceeds params=4"),
        (dict(K=(0,)), "K=0 must be at least 1"),
        (dict(degree=8), "degree=8 must be below nodes=8"),
        (dict(nodes=7, degree=3, gossip="undirected"), "nodes*degree even"),
        (dict(correlation="uniform", rho=1.0), "rho=1.0"),
        (dict(correlation="file"), "needs a matrix path"),
        (dict(gossip="ring"), "gossip='ring'"),
        (dict(eta=-1.0), "eta=-1.0"),
        (dict(sampler="numpy", backend="rust"), "backend='rust' needs sampler='kernel'"),
    ],
)
def test_impossible_settings_raise(kwargs, message):
    with pytest.raises(MosaicValueError, match=message.replace("*", r"\*").replace("(", r"\(")):
        TheoryConfig(**{**SMALL, **kwargs})


def test_matrix_file_checks(tmp_path):
    good = np.array([[2.0, 0.5, 0, 0], [0.5, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    np.save(tmp_path / "a.npy", good)
    np.savetxt(tmp_path / "a.csv", good, delimiter=",")
    for name in ("a.npy", "a.csv"):
        cfg = TheoryConfig(**SMALL, correlation="file", matrix=str(tmp_path / name))
        np.testing.assert_allclose(correlation_matrix(cfg), good)
    np.save(tmp_path / "bad.npy", np.diag([1.0, -1.0, 1.0, 1.0]))
    with pytest.raises(MosaicValueError, match="not positive definite"):
        correlation_matrix(
            TheoryConfig(**SMALL, correlation="file", matrix=str(tmp_path / "bad.npy"))
        )
    with pytest.raises(MosaicValueError, match="not symmetric"):
        check_spd(np.triu(good))
    with pytest.raises(MosaicValueError, match=r"shape \(2, 2\)"):
        np.save(tmp_path / "small.npy", np.eye(2))
        correlation_matrix(
            TheoryConfig(**SMALL, correlation="file", matrix=str(tmp_path / "small.npy"))
        )


def test_cli_runs_and_writes(tmp_path):
    res = CliRunner().invoke(
        main,
        [
            "theory",
            "--nodes",
            "8",
            "--params",
            "4",
            "--K",
            "1,4",
            "--iterations",
            "5",
            "--draws",
            "2",
            "--seeds",
            "2",
            "--correlation",
            "toeplitz",
            "--gossip",
            "pull",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "K=4" in res.output and (tmp_path / "theory.json").is_file()
    assert set(json.loads((tmp_path / "theory.json").read_text())["K"]) == {"1", "4"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--params", "4", "--K", "1,8"], "Error: K=8 exceeds params=4"),
        (["--nodes", "5", "--degree", "3"], "Error: undirected gossip needs nodes*degree even"),
        (
            ["--correlation", "file", "--matrix", "missing.npy", "--params", "4", "--K", "1"],
            "Error: matrix file",
        ),
    ],
)
def test_cli_errors_are_one_line_exit_2(tmp_path, args, needle):
    res = CliRunner().invoke(main, ["theory", *args, "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip().startswith(needle) and len(res.output.strip().splitlines()) == 1
