"""Plots: every figure kind is written as non-empty PNG and PDF from fabricated run folders;
seed bands match the CI maths; run discovery, grouping and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from mosaic_fast.cli import main
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.results.plot_parts import Setting, metric_label, std_label
from mosaic_fast.results.plots import plot_runs
from mosaic_fast.results.records import find_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF"


def fake_config(**overrides) -> dict:
    config = {
        "dataset": "fashion-mnist",
        "K": 1,
        "nodes": 8,
        "degree": 2,
        "rounds": 6,
        "partition": "dirichlet",
        "alpha": 0.1,
        "topology": "el-oracle",
        "fragmenter": "contiguous",
        "seed": 0,
        "eval_every": 2,
        "data_dir": None,
        "device": "cpu",
        "checkpoint_every": 0,
    }
    config.update(overrides)
    return config


def write_run(out: Path, config: dict, *, metric="accuracy", rounds=None, complete=True) -> None:
    """A run folder per the engine's contract with K- and seed-dependent curves."""
    out.mkdir(parents=True, exist_ok=True)
    lower = metric == "rmse"
    head = {
        "config": config,
        "versions": {},
        "n_params": 10,
        "metric": metric,
        "lower_is_better": lower,
    }
    (out / "config.json").write_text(json.dumps(head))
    rounds = rounds if rounds is not None else range(0, config["rounds"] + 1, config["eval_every"])
    shift = 0.01 * config["K"] + 0.005 * config["seed"] + 0.002 * config["degree"]
    records = [
        {
            "round": t,
            "metric": metric,
            "node_mean": (1.2 - 0.05 * t - shift) if lower else (0.1 + 0.1 * t + shift),
            "node_std": 0.1 / (1 + t) + shift,
            "avg_model": (1.1 - 0.05 * t) if lower else (0.15 + 0.1 * t),
            "consensus_distance": 0.5 * t + shift,
            "sent_params_per_node": 20 * t,
            "train_loss": 1.0,
            "wall_time_s": 0.1 * t,
        }
        for t in rounds
    ]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if complete:
        best = min if lower else max
        summary = {
            "complete": True,
            "rounds": config["rounds"],
            "final": records[-1],
            "best_node_mean": best(r["node_mean"] for r in records),
            "best_node_mean_round": records[-1]["round"],
            "best_avg_model": best(r["avg_model"] for r in records),
            "wall_time_s": 1.0,
        }
        (out / "summary.json").write_text(json.dumps(summary))


def assert_figures(paths, stems, formats=("png", "pdf")):
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{s}.{f}" for s in stems for f in formats)
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 1000
        assert data.startswith(PNG_MAGIC if p.suffix == ".png" else PDF_MAGIC)


def test_every_figure_kind_is_written_as_png_and_pdf(tmp_path):
    # K in {1, 4} x three (degree, alpha) settings, two seeds each. Degree varies only for iid
    # data and alpha only at degree 2, so the other slices get no degree or alpha figure.
    for k in (1, 4):
        for degree, alpha in ((2, None), (4, None), (2, 0.1)):
            for seed in (0, 1):
                part = {"partition": "iid"} if alpha is None else {"alpha": alpha}
                cfg = fake_config(K=k, degree=degree, seed=seed, **part)
                write_run(tmp_path / "sweep" / f"K={k}_d={degree}_a={alpha}_s={seed}", cfg)
    paths = plot_runs([tmp_path / "sweep"], tmp_path / "plots")
    kinds = ("performance", "consensus")
    stems = [
        f"rounds_{kind}__degree={d}_alpha={a}"
        for kind in kinds
        for d, a in ((2, "iid"), (4, "iid"), (2, "0.1"))
    ]
    stems += [f"degree_{kind}__alpha=iid" for kind in kinds]
    stems += [f"alpha_{kind}__degree=2" for kind in kinds]
    stems += ["gain_vs_degree__alpha=iid"]  # alpha 0.1 has one degree: no trend to draw
    stems += [
        f"gain_by_round__degree={d}_alpha={a}" for d, a in ((2, "iid"), (4, "iid"), (2, "0.1"))
    ]
    assert_figures(paths, stems)


def test_gain_figure_is_drawn_only_for_settings_with_a_k1_twin(tmp_path):
    for k in (1, 16):
        for nodes, degree in ((16, 2), (16, 8), (64, 4)):
            for seed in (0, 1):
                cfg = fake_config(K=k, nodes=nodes, degree=degree, seed=seed)
                write_run(tmp_path / "runs" / f"K{k}_n{nodes}_d{degree}_s{seed}", cfg)
    paths = plot_runs([tmp_path / "runs"], tmp_path / "plots", formats=("png",))
    assert "gain_vs_degree.png" in {p.name for p in paths}
    for twin in (tmp_path / "runs").glob("K1_*"):
        for f in twin.iterdir():
            f.unlink()
        twin.rmdir()
    paths = plot_runs([tmp_path / "runs"], tmp_path / "plots2", formats=("png",))
    assert not any(p.name.startswith("gain") for p in paths)


def test_a_single_run_gives_the_per_round_figures_only(tmp_path):
    write_run(tmp_path / "run", fake_config(), metric="rmse")
    paths = plot_runs([tmp_path / "run"], tmp_path / "plots", formats=("png",))
    assert_figures(paths, ["rounds_performance", "rounds_consensus"], formats=("png",))


def test_degree_figures_skip_incomplete_runs_but_curves_use_them(tmp_path):
    for degree in (2, 4):
        write_run(tmp_path / f"d{degree}", fake_config(degree=degree), complete=degree == 2)
    paths = plot_runs([tmp_path], tmp_path / "plots", formats=("pdf",))
    names = {p.name for p in paths}
    assert "degree_performance.pdf" in names
    assert {"rounds_performance__degree=4.pdf", "rounds_performance__degree=2.pdf"} <= names


def test_curve_band_is_the_student_t_interval_over_seeds(tmp_path):
    # Seed 2 stopped early: rounds 4 and 6 have two seeds, rounds 0 and 2 have three.
    for seed in (0, 1, 2):
        rounds = [0, 2] if seed == 2 else [0, 2, 4, 6]
        write_run(
            tmp_path / f"s{seed}", fake_config(seed=seed, K=4), rounds=rounds, complete=seed != 2
        )
    runs = find_runs([tmp_path])
    setting = Setting(runs[0].config, tuple(runs))
    rounds, mean, half = setting.curve("node_mean")
    np.testing.assert_array_equal(rounds, [0, 2, 4, 6])
    for i, t in enumerate(rounds):
        seeds = (0, 1, 2) if t <= 2 else (0, 1)
        vals = np.array([0.1 + 0.1 * t + 0.01 * 4 + 0.005 * s + 0.004 for s in seeds])
        lo, hi = sps.t.interval(0.95, len(vals) - 1, loc=vals.mean(), scale=sps.sem(vals))
        assert mean[i] == pytest.approx(vals.mean())
        assert half[i] == pytest.approx((hi - lo) / 2)
    best, best_half = setting.summary_stat("best_node_mean")
    assert best == pytest.approx(np.mean([0.1 + 0.6 + 0.044 + 0.005 * s for s in (0, 1)]))
    assert best_half == pytest.approx(
        sps.t.ppf(0.975, 1) * np.std([0, 0.005], ddof=1) / math.sqrt(2)
    )


def test_runs_are_found_at_any_depth_once_and_grouped_by_config_without_seed(tmp_path):
    write_run(tmp_path / "a" / "b" / "c" / "r0", fake_config(seed=0))
    write_run(tmp_path / "a" / "r1", fake_config(seed=1, device="cuda"))
    (tmp_path / "a" / "stray").mkdir()
    (tmp_path / "a" / "stray" / "config.json").write_text("{}")  # no metrics.jsonl: not a run
    runs = find_runs([tmp_path, tmp_path / "a", tmp_path / "a" / "r1"])
    assert [r.path.name for r in runs] == ["r0", "r1"]
    paths = plot_runs([tmp_path], tmp_path / "plots", formats=("png",))
    # Seed and device do not make a new setting, so there is a single per-round figure pair.
    assert_figures(paths, ["rounds_performance", "rounds_consensus"], formats=("png",))


def test_datasets_are_split_into_separate_figures(tmp_path):
    # The partition differs with the dataset, but a single alpha per dataset draws no alpha panel.
    write_run(tmp_path / "f", fake_config())
    write_run(
        tmp_path / "m",
        fake_config(dataset="movielens", partition="natural", alpha=None),
        metric="rmse",
    )
    paths = plot_runs([tmp_path], tmp_path / "plots", formats=("png",))
    stems = [
        f"rounds_{k}__dataset={d}_alpha={a}"
        for k in ("performance", "consensus")
        for d, a in (("fashion-mnist", "0.1"), ("movielens", "natural"))
    ]
    assert_figures(paths, stems, formats=("png",))


def test_axis_labels_name_the_metric_and_its_direction():
    assert metric_label("rmse", True) == "Test RMSE (lower is better)"
    assert metric_label("accuracy", False) == "Test accuracy"
    assert metric_label("accuracy", False, "best") == "Best test accuracy"
    assert std_label("rmse") == "Std of node RMSE"


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(MosaicValueError, match="does not exist"):
        plot_runs([tmp_path / "missing"], tmp_path / "plots")
    with pytest.raises(MosaicValueError, match="no run folders"):
        plot_runs([tmp_path], tmp_path / "plots")
    write_run(tmp_path / "r", fake_config())
    with pytest.raises(MosaicValueError, match="unknown plot format 'jpg'"):
        plot_runs([tmp_path], tmp_path / "plots", formats=("png", "jpg"))
    with pytest.raises(MosaicValueError, match="formats is empty"):
        plot_runs([tmp_path], tmp_path / "plots", formats=())


def test_cli_plot_writes_into_the_default_folder_and_reports_errors(tmp_path):
    write_run(tmp_path / "r", fake_config())
    res = CliRunner().invoke(main, ["plot", str(tmp_path), "--format", "png"])
    assert res.exit_code == 0, res.output
    listed = [Path(line) for line in res.output.splitlines()]
    assert {p.name for p in listed} == {"rounds_performance.png", "rounds_consensus.png"}
    assert all(p.parent == tmp_path / "plots" and p.stat().st_size > 0 for p in listed)

    res = CliRunner().invoke(main, ["plot", str(tmp_path), "--format", "gif"])
    assert res.exit_code == 2
    assert res.output == "Error: unknown plot format 'gif'; choose from png, pdf, svg\n"


def test_algorithms_are_compared_on_one_time_axis(tmp_path):
    for algorithm, k in (("divshare", 8), ("swift", 1), ("mosaic", 1)):
        for seed in (0, 1):
            out = tmp_path / f"{algorithm}-{seed}"
            write_run(out, fake_config(algorithm=algorithm, K=k, seed=seed, target=0.3))
            lines = (out / "metrics.jsonl").read_text().splitlines()
            timed = [{**json.loads(x), "sim_time_s": 0.5 * json.loads(x)["round"]} for x in lines]
            (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in timed))
            summary = json.loads((out / "summary.json").read_text())
            summary["time_to_target_s"] = 1.0 + seed
            (out / "summary.json").write_text(json.dumps(summary))
    paths = plot_runs([tmp_path], tmp_path / "figs", formats=("png",))
    per_algorithm = [
        f"{kind}__algorithm={a}"
        for kind in ("rounds_consensus", "rounds_performance", "time_performance", "time_to_target")
        for a in ("divshare", "mosaic", "swift")
    ]
    side_by_side = ["time_performance_algorithms", "time_to_target_algorithms"]
    assert_figures(paths, per_algorithm + side_by_side, formats=("png",))


def test_curves_compared_across_algorithms_are_named_by_algorithm_and_k():
    from mosaic_fast.results.plot_parts import BY_ALGORITHM, curve_key, curve_name

    setting = Setting(fake_config(algorithm="divshare", K=8), ())
    assert curve_name(curve_key(setting, BY_ALGORITHM), BY_ALGORITHM) == "divshare K=8"
    legacy = Setting(fake_config(K=4), ())  # folders written before the setting existed
    assert curve_name(curve_key(legacy, BY_ALGORITHM), BY_ALGORITHM) == "mosaic K=4"
