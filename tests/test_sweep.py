"""Sweeps: grid expansion and naming, skip/resume, summary table, CI maths, CLI errors.

Run folders are fabricated per the engine's run folder contract (config.json, metrics.jsonl,
summary.json), and ``mosaic_fast.sweep.run_experiment`` is replaced by a fake that writes them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import special
from scipy import stats as sps

from mosaic_fast import sweep as sw
from mosaic_fast.cli import main
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.results.records import read_run
from mosaic_fast.results.stats import betainc, mean_ci, t_quantile
from mosaic_fast.settings import NON_RESULT_SETTINGS, SETTINGS, ExperimentConfig

BASE = ExperimentConfig(dataset="fashion-mnist", nodes=8, degree=2, rounds=4, eval_every=2)


def final_value(config: ExperimentConfig) -> float:
    """A made-up final node-average accuracy that depends on K and the seed."""
    return 0.5 + 0.02 * config.K + 0.01 * config.seed**2


def write_run(out: Path, config: ExperimentConfig, *, complete: bool = True) -> dict:
    """Write a run folder per the contract, with metrics that end at ``final_value(config)``."""
    out.mkdir(parents=True, exist_ok=True)
    head = {
        "config": config.to_dict(),
        "versions": {"mosaic_fast": "test"},
        "n_params": 100,
        "metric": "accuracy",
        "lower_is_better": False,
        "started": "2026-01-01T00:00:00",
    }
    (out / "config.json").write_text(json.dumps(head))
    target = final_value(config)
    records = []
    for t in range(0, config.rounds + 1, config.eval_every):
        frac = t / config.rounds
        records.append(
            {
                "round": t,
                "metric": "accuracy",
                "node_mean": 0.1 + (target - 0.1) * frac,
                "node_std": 0.2 - 0.1 * frac - 0.001 * config.K,
                "avg_model": 0.1 + (target + 0.05 - 0.1) * frac,
                "consensus_distance": 1.0 + config.K * frac,
                "sent_params_per_node": 100 * config.degree * t,
                "train_loss": 2.0 - frac,
                "wall_time_s": 0.5 * t,
            }
        )
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if complete:
        summary = {
            "complete": True,
            "rounds": config.rounds,
            "final": records[-1],
            "best_node_mean": max(r["node_mean"] for r in records),
            "best_node_mean_round": records[-1]["round"],
            "best_avg_model": max(r["avg_model"] for r in records),
            "wall_time_s": 1.0 + config.seed,
        }
        (out / "summary.json").write_text(json.dumps(summary))
    return {"complete": complete}


class FakeEngine:
    """Stands in for the engine: records calls and writes a complete run folder."""

    def __init__(self):
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, config, out_dir, *, quiet, resume):
        out_dir = Path(out_dir)
        if not resume:
            assert not out_dir.exists(), "a fresh cell must start from an empty folder"
        self.calls.append((out_dir.name, resume))
        return write_run(out_dir, config)


@pytest.fixture
def engine(monkeypatch):
    fake = FakeEngine()
    monkeypatch.setattr(sw, "run_experiment", fake)
    return fake


# ----------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7, 19, 100, 1000])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.95, 0.975, 0.995, 0.9999, 0.025, 0.3])
def test_t_quantile_matches_scipy(p, df):
    assert t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "x"), [(0.5, 0.5, 0.3), (2.0, 0.5, 0.9), (10.0, 3.0, 0.7), (50.0, 0.5, 0.99)]
)
def test_betainc_matches_scipy(a, b, x):
    assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-12)


def test_mean_ci_matches_scipy_interval():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 30):
        x = rng.normal(size=n)
        mean, half, count = mean_ci(x)
        lo, hi = sps.t.interval(0.95, n - 1, loc=x.mean(), scale=sps.sem(x))
        assert count == n
        assert mean == pytest.approx(x.mean())
        assert mean - half == pytest.approx(lo, rel=1e-9)
        assert mean + half == pytest.approx(hi, rel=1e-9)


def test_mean_ci_ignores_nan_per_column_and_blanks_single_seed():
    x = np.array([[1.0, 2.0, np.nan], [3.0, np.nan, np.nan], [5.0, 4.0, 7.0]])
    mean, half, count = mean_ci(x, axis=0)
    np.testing.assert_array_equal(count, [3, 2, 1])
    np.testing.assert_allclose(mean, [3.0, 3.0, 7.0])
    assert half[0] == pytest.approx(sps.t.ppf(0.975, 2) * 2.0 / math.sqrt(3))
    assert half[1] == pytest.approx(sps.t.ppf(0.975, 1) * math.sqrt(2.0) / math.sqrt(2))
    assert math.isnan(half[2])


@pytest.mark.parametrize(("p", "df"), [(0.0, 3), (1.0, 3), (0.5, 0), (0.9, -1)])
def test_t_quantile_rejects_bad_arguments(p, df):
    with pytest.raises(MosaicValueError):
        t_quantile(p, df)


# ----------------------------------------------------------------------------- grid


def test_grid_expands_with_seeds_outermost_and_names_cells():
    grid = sw.SweepGrid(K=(1, 8), alpha=(None, 0.1), degree=(2,), seeds=(0, 1))
    cells = grid.cells(BASE)
    assert [c.name for c in cells] == [
        "K=1_alpha=iid_degree=2_seed=0",
        "K=1_alpha=0.1_degree=2_seed=0",
        "K=8_alpha=iid_degree=2_seed=0",
        "K=8_alpha=0.1_degree=2_seed=0",
        "K=1_alpha=iid_degree=2_seed=1",
        "K=1_alpha=0.1_degree=2_seed=1",
        "K=8_alpha=iid_degree=2_seed=1",
        "K=8_alpha=0.1_degree=2_seed=1",
    ]
    iid, dirichlet = cells[0].config, cells[1].config
    # (config.resolved() currently fills the dataset's default alpha even for iid; it is unused.)
    assert iid.partition == "iid"
    assert (dirichlet.partition, dirichlet.alpha) == ("dirichlet", 0.1)
    assert cells[-1].config.K == 8 and cells[-1].config.seed == 1
    # Cells are resolved: dataset defaults are filled in.
    assert all(c.config.lr is not None for c in cells)
    assert {c.config.nodes for c in cells} == {BASE.nodes}


def test_grid_without_axes_is_one_cell_per_seed():
    assert [c.name for c in sw.SweepGrid().cells(BASE)] == ["seed=0"]
    grid = sw.SweepGrid(topology=("el-oracle", "el-local"), fragmenter=("random",), nodes=(8, 16))
    names = [c.name for c in grid.cells(BASE)]
    assert names[0] == "nodes=8_topology=el-oracle_fragmenter=random_seed=0"
    assert len(names) == 4


def test_grid_roundtrips_through_dict():
    grid = sw.SweepGrid(K=(1, 2), alpha=(None, 1.0), seeds=(3,))
    assert sw.SweepGrid.from_dict(json.loads(json.dumps(grid.to_dict()))) == grid


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"alpha": (-1.0,)}, "alpha=-1"),
        ({"alpha": (0.0, 1.0)}, "alpha=0"),
        ({"K": (0, 2)}, "K=0"),
        ({"K": ()}, "K is an empty list"),
        ({"seeds": ()}, "seeds is an empty list"),
        ({"degree": (2, 2)}, "repeats value(s) 2"),
        ({"nodes": (1,)}, "nodes=1"),
        ({"topology": ("mesh",)}, "topology=mesh"),
        ({"fragmenter": ("zigzag",)}, "fragmenter=zigzag"),
        ({"K": (1.5,)}, "K=1.5"),
        ({"seeds": (-1,)}, "seeds=-1"),
    ],
)
def test_bad_grid_values_raise_one_line_errors(kwargs, expected):
    with pytest.raises(MosaicValueError) as info:
        sw.SweepGrid(**kwargs)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_invalid_cell_is_reported_before_anything_runs(engine, tmp_path):
    grid = sw.SweepGrid(degree=(2, 8), nodes=(8,))
    with pytest.raises(MosaicValueError, match="cell degree=8_nodes=8_seed=0: degree=8"):
        sw.run_sweep(grid, tmp_path / "s", base=BASE, quiet=True)
    assert engine.calls == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("K", "1,2, 4", (1, 2, 4)),
        ("alpha", "iid,1,0.1", (None, 1.0, 0.1)),
        ("topology", "static,ring", ("static", "ring")),
        ("lr", "0.1,1", (0.1, 1.0)),
        ("seeds", "0,1", (0, 1)),
        ("seed", "2", (2,)),
    ],
)
def test_parse_list_types_values_by_the_axis_setting(name, text, expected):
    assert sw.parse_list(name, text) == expected


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("K", "", "--K '' is an empty list"),
        ("K", "1,,2", "has an empty item"),
        ("K", "1,x", "--K value 'x' must be an integer"),
        ("lr", "0.1,fast", "--lr value 'fast' must be a number"),
        ("alpha", "iid,x", "--alpha value 'x' must be a number or 'iid'"),
    ],
)
def test_parse_list_rejects_bad_text(name, text, message):
    with pytest.raises(MosaicValueError, match=message):
        sw.parse_list(name, text)


def test_parse_setting_converts_by_the_declared_type():
    assert sw.parse_setting("rounds=50") == ("rounds", 50)
    assert sw.parse_setting("lr=0.1") == ("lr", 0.1)
    assert sw.parse_setting("lr=none") == ("lr", None)
    assert sw.parse_setting("local-steps=3") == ("local_steps", 3)
    assert sw.parse_setting("mf_biases=true") == ("mf_biases", True)
    assert sw.parse_setting("data_dir=/tmp/x") == ("data_dir", "/tmp/x")
    assert sw.parse_setting("test_samples=0") == ("test_samples", None)  # the whole test set
    assert sw.parse_setting("trainer=loop") == ("trainer", "loop")
    for bad, message in [
        ("rounds=ten", "--set 'rounds=ten': rounds='ten' must be an integer"),
        ("rounds", "--set 'rounds' is not of the form key=value"),
        ("nodez=1", "--set 'nodez=1': unknown setting 'nodez' (did you mean 'nodes'?)"),
        ("mf_biases=maybe", "--set 'mf_biases=maybe': mf_biases='maybe' must be true or false"),
        ("rounds=none", "--set 'rounds=none': rounds='none' must be an integer"),
        ('extra={"a": 1}', "unknown setting 'extra'"),
    ]:
        with pytest.raises(MosaicValueError, match=re.escape(message)):
            sw.parse_setting(bad)


def test_every_declared_axis_is_a_grid_axis_in_folder_name_order():
    axis_settings = [s.name for s in SETTINGS.values() if s.axis and s.name != "seed"]
    assert sw.AXES[:6] == ("K", "alpha", "degree", "nodes", "topology", "fragmenter")
    assert set(sw.AXES) == set(axis_settings)
    later = [a for a in axis_settings if a not in sw.AXES[:6]]
    assert list(sw.AXES[6:]) == later  # declaration order
    assert {"lr", "local_steps", "batch_size", "momentum"} <= set(sw.AXES)
    # Settings that do not change results never name cells.
    assert not set(sw.AXES) & set(NON_RESULT_SETTINGS)


def test_new_axes_follow_the_first_six_and_the_seed_comes_last():
    grid = sw.SweepGrid(seeds=(0,), momentum=(0.9,), lr=(0.1,), degree=(2,), alpha=(0.1,), K=(8,))
    (cell,) = grid.cells(BASE)
    assert cell.name == "K=8_alpha=0.1_degree=2_lr=0.1_momentum=0.9_seed=0"
    assert (cell.config.lr, cell.config.momentum) == (0.1, 0.9)
    assert list(grid.to_dict()) == [*sw.AXES[:6], "lr", "momentum", "seeds"]
    assert sw.SweepGrid.from_dict(grid.to_dict()) == grid


def test_sweep_files_of_earlier_versions_still_load(tmp_path):
    files = sorted(Path(__file__).parent.parent.glob("docs/results/**/sweep.json"))
    assert files, "the published results hold sweep.json files"
    for path in files:
        record = json.loads(path.read_text())
        axes = list(record["grid"])
        assert axes[-1] == "seeds" and axes[:-1] == [a for a in sw.AXES if a in axes[:-1]]
        grid, base = sw.load_sweep(path.parent)
        assert grid.to_dict() == record["grid"]  # the same file format
        stored = {k: v for k, v in record["base"].items() if k != "extra"}
        assert {k: base.to_dict()[k] for k in stored} == stored


def test_continuing_a_sweep_written_by_an_earlier_version(engine, tmp_path):
    """Its sweep.json holds ``"extra": {}`` and lacks newer settings: still the same base."""
    out = tmp_path / "s"
    sw.run_sweep(sw.SweepGrid(K=(1,)), out, base=BASE, quiet=True)
    record = json.loads((out / "sweep.json").read_text())
    record["base"]["extra"] = {}
    del record["base"]["trainer"]
    (out / "sweep.json").write_text(json.dumps(record))
    engine.calls.clear()
    sw.run_sweep(sw.SweepGrid(K=(1, 2)), out, base=BASE, quiet=True)
    assert engine.calls == [("K=2_seed=0", False)]


def test_load_sweep_names_a_broken_file(tmp_path):
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(MosaicValueError, match="is not a sweep file"):
        sw.load_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text('{"grid": {"colour": [1]}, "base": {}}')
    with pytest.raises(MosaicValueError, match="unknown grid axis"):
        sw.load_sweep(tmp_path)


# ----------------------------------------------------------------------------- skip / resume


def test_complete_cells_are_skipped_and_incomplete_ones_resumed_or_restarted(engine, tmp_path):
    grid = sw.SweepGrid(K=(1, 2), seeds=(0, 1))
    out = tmp_path / "sweep"
    sw.run_sweep(grid, out, base=BASE, quiet=True)
    assert sorted(engine.calls) == sorted(
        [(f"K={k}_seed={s}", False) for k in (1, 2) for s in (0, 1)]
    )

    engine.calls.clear()
    sw.run_sweep(grid, out, base=BASE, quiet=True)
    assert engine.calls == []  # everything complete: nothing reruns

    # K=2_seed=0 was interrupted after a checkpoint; K=1_seed=1 died before one.
    (out / "K=2_seed=0" / "summary.json").unlink()
    (out / "K=2_seed=0" / "checkpoint.pt").write_bytes(b"ckpt")
    (out / "K=1_seed=1" / "summary.json").write_text('{"complete": false}')
    assert sw.cell_state(out / "K=2_seed=0") == "resume"
    assert sw.cell_state(out / "K=1_seed=1") == "fresh"
    assert sw.cell_state(out / "K=1_seed=0") == "complete"
    sw.run_sweep(grid, out, base=BASE, quiet=True)
    assert sorted(engine.calls) == [("K=1_seed=1", False), ("K=2_seed=0", True)]


def test_extending_a_grid_runs_only_new_cells(engine, tmp_path):
    out = tmp_path / "sweep"
    sw.run_sweep(sw.SweepGrid(K=(1, 2)), out, base=BASE, quiet=True)
    engine.calls.clear()
    sw.run_sweep(sw.SweepGrid(K=(1, 2, 4)), out, base=BASE, quiet=True)
    assert engine.calls == [("K=4_seed=0", False)]


def test_a_changed_default_of_a_grid_axis_does_not_stop_a_sweep(engine, tmp_path):
    """The base's value of an axis never reaches a cell: a sweep over fragmenters written when
    the default was contiguous continues under today's default; elsewhere the change is named."""
    out = tmp_path / "sweep"
    old_default = dataclasses.replace(BASE, fragmenter="contiguous")
    sw.run_sweep(sw.SweepGrid(fragmenter=("random",)), out, base=old_default, quiet=True)
    engine.calls.clear()
    with pytest.raises(MosaicValueError, match="fragmenter='contiguous'; now fragmenter='random'"):
        sw.run_sweep(sw.SweepGrid(K=(1,)), out, base=BASE, quiet=True)
    assert engine.calls == []
    grid = sw.SweepGrid(fragmenter=("random", "contiguous"))
    sw.run_sweep(grid, out, base=dataclasses.replace(BASE, fragmenter="random"), quiet=True)
    assert engine.calls == [("fragmenter=contiguous_seed=0", False)]


def test_a_different_base_config_in_the_same_folder_is_refused(engine, tmp_path):
    out = tmp_path / "sweep"
    sw.run_sweep(sw.SweepGrid(K=(1,)), out, base=BASE, quiet=True)
    other = ExperimentConfig(**{**BASE.to_dict(), "rounds": 8})
    with pytest.raises(MosaicValueError, match="ran with rounds=4; this sweep asks for rounds=8"):
        sw.run_sweep(sw.SweepGrid(K=(1,)), out, base=other, quiet=True)
    with pytest.raises(MosaicValueError, match=r"different base config \(rounds=4; now rounds=8\)"):
        sw.run_sweep(sw.SweepGrid(K=(2,)), out, base=other, quiet=True)
    # where the data lives does not change results: the same sweep continues from another machine
    moved = ExperimentConfig(**{**BASE.to_dict(), "data_dir": "/elsewhere"})
    sw.run_sweep(sw.SweepGrid(K=(1, 2)), out, base=moved, quiet=True)


def test_a_finished_cell_run_with_other_settings_is_refused_before_anything_runs(engine, tmp_path):
    out = tmp_path / "sweep"
    sw.run_sweep(sw.SweepGrid(K=(1, 2)), out, base=BASE, quiet=True)
    head = json.loads((out / "K=2_seed=0" / "config.json").read_text())
    head["config"]["lr"] = 0.5  # as if a per-dataset default had changed since the cell ran
    (out / "K=2_seed=0" / "config.json").write_text(json.dumps(head))
    calls = len(engine.calls)
    with pytest.raises(MosaicValueError, match=r"cell K=2_seed=0 .* ran with lr=0.5; this sweep asks for lr=0.05"):  # fmt: skip
        sw.run_sweep(sw.SweepGrid(K=(1, 2, 4)), out, base=BASE, quiet=True)
    assert len(engine.calls) == calls


def test_sweep_file_records_grid_and_base(engine, tmp_path):
    grid = sw.SweepGrid(K=(1, 2), alpha=(None, 0.5))
    sw.run_sweep(grid, tmp_path, base=BASE, quiet=True)
    loaded_grid, loaded_base = sw.load_sweep(tmp_path)
    assert loaded_grid == grid
    assert loaded_base == BASE


# ----------------------------------------------------------------------------- summary


def test_summary_aggregates_seeds_with_student_t(engine, tmp_path):
    seeds = (0, 1, 2)
    table = sw.run_sweep(sw.SweepGrid(K=(1, 4), seeds=seeds), tmp_path, base=BASE, quiet=True)
    assert list(table["K"]) == [1, 4]
    assert list(table["n_seeds"]) == [3, 3]
    for _, row in table.iterrows():
        finals = np.array([final_value(ExperimentConfig(K=row["K"], seed=s)) for s in seeds])
        lo, hi = sps.t.interval(0.95, len(seeds) - 1, loc=finals.mean(), scale=sps.sem(finals))
        assert row["final_node_mean_mean"] == pytest.approx(finals.mean())
        assert row["final_node_mean_ci95"] == pytest.approx((hi - lo) / 2)
        # The fake's best is its final value; the average model ends 0.05 higher.
        assert row["best_node_mean_mean"] == pytest.approx(finals.mean())
        assert row["final_avg_model_mean"] == pytest.approx(finals.mean() + 0.05)
        assert row["final_consensus_distance_mean"] == pytest.approx(1.0 + row["K"])
        assert row["final_consensus_distance_ci95"] == pytest.approx(0.0, abs=1e-12)
        assert row["wall_time_s_mean"] == pytest.approx(2.0)
        assert row["seeds"] == "0 1 2"

    csv = pd.read_csv(tmp_path / "summary.csv")
    assert list(csv["final_node_mean_mean"]) == pytest.approx(list(table["final_node_mean_mean"]))
    md = (tmp_path / "summary.md").read_text()
    assert "95% Student-t confidence interval" in md
    assert "higher is better" in md
    k4 = next(line for line in md.splitlines() if line.startswith("| 4 |"))
    mean4 = table.loc[1, "final_node_mean_mean"]
    assert f"{mean4:.4g} ± " in k4


def test_summary_with_one_seed_leaves_ci_blank_and_says_so(engine, tmp_path):
    table = sw.run_sweep(sw.SweepGrid(alpha=(None, 0.1)), tmp_path, base=BASE, quiet=True)
    assert list(table["alpha"]) == ["iid", 0.1]
    assert table["final_node_mean_ci95"].isna().all()
    md = (tmp_path / "summary.md").read_text()
    assert "With a single seed the interval is undefined" in md
    rows = [
        line for line in md.splitlines() if line.startswith("| iid") or line.startswith("| 0.1")
    ]
    assert len(rows) == 2 and all("±" not in line for line in rows)


def test_summarize_ignores_incomplete_runs_and_rebuilds_the_table(engine, tmp_path):
    sw.run_sweep(sw.SweepGrid(K=(1, 2), seeds=(0, 1)), tmp_path, base=BASE, quiet=True)
    (tmp_path / "K=2_seed=1" / "summary.json").unlink()
    (tmp_path / "summary.csv").unlink()
    table = sw.summarize_sweep(tmp_path)
    assert list(table["n_seeds"]) == [2, 1]
    assert (tmp_path / "summary.csv").is_file()


def test_summarize_without_sweep_file_uses_the_varying_settings(tmp_path):
    for k in (1, 3):
        for alpha in (None, 0.3):
            cfg = BASE if alpha is None else ExperimentConfig(**{**BASE.to_dict(), "alpha": alpha})
            cfg = ExperimentConfig(
                **{**cfg.to_dict(), "K": k, "partition": "iid" if alpha is None else "dirichlet"}
            )
            write_run(tmp_path / "runs" / f"k{k}" / f"a{alpha}", cfg.resolved())
    table = sw.summarize_sweep(tmp_path)
    assert list(table.columns[:2]) == ["K", "alpha"]
    assert len(table) == 4 and list(table["alpha"]) == ["iid", 0.3, "iid", 0.3]


def test_summary_pairs_each_k_with_k1_on_the_same_seed(engine, tmp_path):
    grid = sw.SweepGrid(K=(1, 4), degree=(2, 4), seeds=(0, 1, 2))
    sw.run_sweep(grid, tmp_path, base=BASE, quiet=True)
    # K=1 seed 2 unfinished at degree 4: only seeds 0 and 1 pair there.
    (next(tmp_path.glob("K=1_degree=4_seed=2")) / "summary.json").unlink()
    table = sw.summarize_sweep(tmp_path).set_index(["K", "degree"])
    for degree, paired in ((2, 3), (4, 2)):
        row = table.loc[(4, degree)]
        # final_value: 0.5 + 0.02 K + 0.01 seed^2, so K=4 minus K=1 is 0.06 on every seed.
        assert row["delta_final_node_mean_mean"] == pytest.approx(0.06)
        assert row["delta_final_node_mean_ci95"] == pytest.approx(0.0, abs=1e-12)
        assert row["delta_final_consensus_distance_mean"] == pytest.approx(3.0)
        assert row["n_paired"] == paired
        assert np.isnan(table.loc[(1, degree), "delta_final_node_mean_mean"])
    assert "Δ final node-average vs K=1 (paired)" in (tmp_path / "summary.md").read_text()


def test_summary_reports_the_paired_gain_by_round_and_its_peak(engine, tmp_path):
    """The gain peaks early and shrinks: the peak, its round and its CI come from the curve,
    not from the last round."""
    sw.run_sweep(sw.SweepGrid(K=(1, 4), seeds=(0, 1, 2)), tmp_path, base=BASE, quiet=True)
    for seed in (0, 1, 2):
        base_run = read_run(next(tmp_path.glob(f"K=1_seed={seed}")))
        k4 = next(tmp_path.glob(f"K=4_seed={seed}"))
        lift = {0: 0.0, 2: 0.1 + 0.01 * seed, 4: 0.02}
        lines = [{**r, "node_mean": r["node_mean"] + lift[r["round"]]} for r in base_run.records]
        (k4 / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    table = sw.summarize_sweep(tmp_path).set_index("K")
    half = t_quantile(0.975, 2) * 0.01 / math.sqrt(3)
    assert table.loc[4, "peak_gain_mean"] == pytest.approx(0.11)
    assert table.loc[4, "peak_gain_ci95"] == pytest.approx(half)
    assert table.loc[4, "peak_gain_round"] == 2
    assert np.isnan(table.loc[1, "peak_gain_mean"])
    curve = pd.read_csv(tmp_path / "gain_by_round.csv")
    assert list(curve["round"]) == [0, 2, 4]
    assert list(curve["gain_mean"]) == pytest.approx([0.0, 0.11, 0.02])
    assert list(curve["n_paired"]) == [3, 3, 3]
    assert "0.11 ± 0.025 (round 2)" in (tmp_path / "summary.md").read_text()


def test_a_lower_is_better_gain_is_an_improvement(tmp_path):
    from mosaic_fast.results.summary import paired_gain_by_round

    def run(K, values):
        cfg = dataclasses.replace(BASE, K=K, eval_every=2)
        folder = tmp_path / f"K{K}"
        write_run(folder, cfg)
        head = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(
            json.dumps({**head, "metric": "rmse", "lower_is_better": True})
        )
        lines = [{"round": t, "node_mean": v} for t, v in zip((0, 2, 4), values, strict=True)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        return read_run(folder)

    rounds, mean, _, count = paired_gain_by_round(
        [run(8, [1.0, 0.9, 0.95])], [run(1, [1.0, 1.0, 1.0])]
    )
    assert list(rounds) == [0, 2, 4] and list(count) == [1, 1, 1]
    assert list(mean) == pytest.approx([0.0, 0.1, 0.05])  # K=8's RMSE is lower: a positive gain


def test_summary_leaves_a_setting_without_k1_twin_unpaired(engine, tmp_path):
    sw.run_sweep(sw.SweepGrid(K=(4, 8), seeds=(0, 1)), tmp_path, base=BASE, quiet=True)
    table = sw.summarize_sweep(tmp_path)
    assert list(table["n_paired"]) == [0, 0]
    assert table["delta_final_node_mean_mean"].isna().all()
    assert "(paired)" not in (tmp_path / "summary.md").read_text()


def test_a_cell_another_process_runs_is_left_to_it(engine, monkeypatch, tmp_path):
    from mosaic_fast.errors import RunFolderInUse

    def busy_for_k2(config, out_dir, *, quiet, resume):
        if config.K == 2:
            raise RunFolderInUse(str(out_dir), 4321)
        return engine(config, out_dir, quiet=quiet, resume=resume)

    monkeypatch.setattr(sw, "run_experiment", busy_for_k2)
    with pytest.warns(
        sw.CellsInUseWarning, match=r"1 cell\(s\) were being run by another process: K=2_seed=0"
    ):
        table = sw.run_sweep(sw.SweepGrid(K=(1, 2, 4)), tmp_path, base=BASE, quiet=True)
    assert list(table["K"]) == [1, 4]  # the sweep went on past it
    assert [name for name, _ in engine.calls] == ["K=1_seed=0", "K=4_seed=0"]


def test_summarize_errors(tmp_path):
    with pytest.raises(MosaicValueError, match="does not exist"):
        sw.summarize_sweep(tmp_path / "missing")
    with pytest.raises(MosaicValueError, match="no finished runs"):
        sw.summarize_sweep(tmp_path)


def test_truncated_last_metrics_line_is_tolerated_but_corruption_is_not(tmp_path):
    write_run(tmp_path / "r", BASE.resolved(), complete=False)
    path = tmp_path / "r" / "metrics.jsonl"
    good = path.read_text()
    path.write_text(good + '{"round": 6, "node_')
    assert len(read_run(tmp_path / "r").records) == 3
    path.write_text('{"round"\n' + good)
    with pytest.raises(MosaicValueError, match="line 1"):
        read_run(tmp_path / "r")


# ----------------------------------------------------------------------------- CLI


def invoke(*args):
    return CliRunner().invoke(main, ["sweep", *args])


def test_cli_dry_run_lists_cells_and_their_state(engine, tmp_path):
    out = tmp_path / "s"
    args = ["--K", "1,2", "--alpha", "iid,0.1", "--set", "rounds=4", "--out", str(out)]
    res = invoke(*args, "--dry-run")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1] == "4 cells"
    assert "K=2_alpha=0.1_seed=0\tfresh" in res.output
    assert engine.calls == []

    res = invoke(*args, "--quiet")
    assert res.exit_code == 0, res.output
    assert len(engine.calls) == 4
    res = invoke(*args, "--dry-run")
    assert "K=2_alpha=0.1_seed=0\tcomplete" in res.output
    _, base = sw.load_sweep(out)
    assert base.rounds == 4


def test_cli_summarize_prints_the_table(engine, tmp_path):
    sw.run_sweep(sw.SweepGrid(K=(1, 2)), tmp_path, base=BASE, quiet=True)
    res = invoke("--summarize", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert res.output.startswith("# Sweep summary")


def test_cli_config_file_and_set_override(engine, tmp_path):
    toml = tmp_path / "base.toml"
    toml.write_text('[run]\ndataset = "fashion-mnist"\nnodes = 8\ndegree = 2\nrounds = 6\n')
    res = invoke(
        "--config", str(toml), "--set", "rounds=2", "--K", "1", "--out", str(tmp_path / "o")
    )
    assert res.exit_code == 0, res.output
    _, base = sw.load_sweep(tmp_path / "o")
    assert (base.nodes, base.rounds) == (8, 2)


def test_summary_columns_include_new_axes(engine, tmp_path):
    grid = sw.SweepGrid(K=(1, 2), lr=(0.1, 0.05))
    table = sw.run_sweep(grid, tmp_path, base=BASE, quiet=True)
    assert list(table.columns[:2]) == ["K", "lr"]
    assert list(zip(table["K"], table["lr"], strict=True)) == [
        (1, 0.05),
        (1, 0.1),
        (2, 0.05),
        (2, 0.1),
    ]


def test_cli_takes_every_run_option():
    def flags(command):
        params = main.get_command(None, command).params
        return {flag for p in params for flag in (*p.opts, *p.secondary_opts)}

    run_only = {"--resume"}
    assert flags("run") - run_only <= flags("sweep")
    for s in SETTINGS.values():
        assert s.option in flags("sweep")


def test_cli_speaks_run_options_and_lists_make_axes(engine, tmp_path):
    out = tmp_path / "s"
    res = invoke(
        "--data-dir", str(tmp_path), "--rounds", "2", "--lr", "0.1,0.05", "--K", "1",
        "--seed", "0,1", "--mf-biases", "--test-samples", "0", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    grid, base = sw.load_sweep(out)
    assert grid == sw.SweepGrid(K=(1,), lr=(0.1, 0.05), seeds=(0, 1))
    assert (base.data_dir, base.rounds, base.mf_biases, base.test_samples) == (
        str(tmp_path),
        2,
        True,
        None,
    )
    assert sorted(name for name, _ in engine.calls) == [
        f"K=1_lr={lr}_seed={seed}" for lr in (0.05, 0.1) for seed in (0, 1)
    ]


def test_cli_seeds_is_the_seed_option(engine, tmp_path):
    a = invoke("--K", "1", "--seeds", "0,1", "--out", str(tmp_path), "--dry-run")
    b = invoke("--K", "1", "--seed", "0,1", "--out", str(tmp_path), "--dry-run")
    assert a.exit_code == b.exit_code == 0 and a.output == b.output
    assert "K=1_seed=1\tfresh" in a.output


def test_cli_keeps_the_folder_names_of_the_first_axes(engine, tmp_path):
    res = invoke(
        "--fragmenter", "random", "--topology", "static", "--nodes", "8", "--degree", "2",
        "--alpha", "0.1", "--K", "8", "--seeds", "0", "--out", str(tmp_path), "--dry-run",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == (
        "K=8_alpha=0.1_degree=2_nodes=8_topology=static_fragmenter=random_seed=0\tfresh"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--K", "0,2"], "Error: grid value K=0 must be at least 1"),
        (["--alpha", "-1"], "Error: grid value alpha=-1 must be positive"),
        (["--lr", "nan"], "Error: grid value lr=nan must be a finite number"),
        (["--momentum", "0.5,1"], "Error: grid value momentum=1 must be in [0, 1)"),
        (["--trainer", "fast"], "Error: grid value trainer=fast is not one of auto, loop"),
        (["--K", ""], "Error: --K '' is an empty list or has an empty item"),
        (["--seeds", "0,x"], "Error: --seed value 'x' must be an integer"),
        (["--rounds", "1,2"], "Error: Invalid value for '--rounds': '1,2' is not a valid integer"),
        (["--set", "rounds=ten"], "Error: --set 'rounds=ten': rounds='ten' must be an integer"),
        (["--K", "2", "--set", "K=3"], "Error: --set 'K=3' conflicts with --K"),
        (["--rounds", "2", "--set", "rounds=3"], "Error: --set 'rounds=3' conflicts with --rounds"),
        (["--alpha", "1", "--set", "partition=iid"], "Error: --set 'partition=iid' conflicts"),
        (["--alpha", "1", "--partition", "iid"], "Error: --partition conflicts with --alpha"),
        (["--degree", "16"], "Error: cell degree=16_seed=0: degree=16 must satisfy"),
        (["--dataset", "mnist"], "Error: cell seed=0: dataset='mnist' is not one of fashion-mnist"),
        (["--config", "/nonexistent/c.toml"], "Error: config file '/nonexistent/c.toml' does not"),
    ],
)
def test_cli_bad_values_give_one_line_error_and_exit_2(engine, tmp_path, args, message):
    res = invoke(*args, "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert res.output.startswith(message), res.output
    assert res.output.count("\n") == 1
    assert engine.calls == []


def test_cli_requires_out(engine):
    res = invoke("--K", "1")
    assert (
        res.exit_code == 2 and res.output == "Error: --out is required (or use --summarize DIR)\n"
    )


def test_a_copied_run_folder_is_not_counted_as_another_seed(engine, tmp_path):
    sw.run_sweep(sw.SweepGrid(K=(1, 2)), tmp_path / "s", base=BASE, quiet=True)
    shutil.copytree(tmp_path / "s" / "K=1_seed=0", tmp_path / "s" / "backup")
    with pytest.raises(MosaicValueError, match="same setting with seed=0"):
        sw.summarize_sweep(tmp_path / "s")
