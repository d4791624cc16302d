"""Grids of experiments: expand a grid into cells, run each cell once, summarise over seeds.

Each cell is a normal run folder (the engine's run folder contract) named from the grid axes,
e.g. ``K=8_alpha=0.1_degree=8_seed=0``. A cell whose ``summary.json`` says ``complete`` is
skipped, so re-running an interrupted sweep continues it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import FRAGMENTERS, TOPOLOGIES, ExperimentConfig
from .errors import MosaicError, MosaicValueError
from .runfiles import CHECKPOINT, CONFIG, METRICS, SUMMARY, read_json, read_metrics

if TYPE_CHECKING:
    import pandas as pd

SWEEP_FILE = "sweep.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"

# Grid axes in folder-name order; seeds always come last.
AXES = ("K", "alpha", "degree", "nodes", "topology", "fragmenter")


@dataclass(frozen=True)
class SweepGrid:
    """The values each grid axis takes. ``None`` leaves the axis at the base config's value.

    ``alpha`` holds ``None`` for an IID partition and a positive float for a Dirichlet(alpha)
    label-skew partition. Every cell of the grid is the Cartesian product of the given axes.
    """

    K: tuple[int, ...] | None = None
    alpha: tuple[float | None, ...] | None = None
    degree: tuple[int, ...] | None = None
    nodes: tuple[int, ...] | None = None
    topology: tuple[str, ...] | None = None
    fragmenter: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in (*AXES, "seeds"):
            values = getattr(self, name)
            if values is None:
                continue
            values = tuple(values)
            object.__setattr__(self, name, values)
            if not values:
                raise MosaicValueError(f"grid axis {name} is an empty list")
            for v in values:
                _check_axis_value(name, v)
            dup = sorted({format_value(v) for v in values if values.count(v) > 1})
            if dup:
                raise MosaicValueError(f"grid axis {name} repeats value(s) {', '.join(dup)}")

    @property
    def axes(self) -> tuple[str, ...]:
        """Names of the axes this grid sets (folder-name order, without seeds)."""
        return tuple(a for a in AXES if getattr(self, a) is not None)

    def cells(self, base: ExperimentConfig) -> list[SweepCell]:
        """All cells, seeds outermost, so an interrupted sweep has covered every setting once
        before it starts on the next seed. Each cell's config is resolved and validated."""
        axes = self.axes
        seeds = self.seeds if self.seeds is not None else (base.seed,)
        out = []
        for seed in seeds:
            for combo in itertools.product(*(getattr(self, a) for a in axes)):
                setting = dict(zip(axes, combo, strict=True))
                name = "_".join(
                    [*(f"{a}={format_value(v)}" for a, v in setting.items()), f"seed={seed}"]
                )
                try:
                    config = _apply(base, setting, seed).resolved()
                except MosaicError as exc:
                    raise MosaicValueError(f"cell {name}: {exc}") from None
                out.append(SweepCell(name=name, setting=setting, config=config))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (list(v) if v is not None else None) for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SweepGrid:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise MosaicValueError(f"unknown grid axis(es): {', '.join(unknown)}")
        return cls(**{k: (tuple(v) if v is not None else None) for k, v in values.items()})


@dataclass(frozen=True)
class SweepCell:
    """One run of a sweep: its folder name, its grid values and its resolved config."""

    name: str
    setting: dict[str, Any]
    config: ExperimentConfig


def _check_axis_value(name: str, v: Any) -> None:
    def bad(why: str) -> None:
        raise MosaicValueError(f"grid value {name}={format_value(v)} {why}")

    if name in ("K", "degree", "nodes", "seeds"):
        if isinstance(v, bool) or not isinstance(v, int):
            bad("must be an integer")
        minimum = {"K": 1, "degree": 1, "nodes": 2, "seeds": 0}[name]
        if v < minimum:
            bad(f"must be at least {minimum}")
    elif name == "alpha":
        if v is not None and (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not (v > 0 and math.isfinite(v))
        ):
            bad("must be a positive number or 'iid'")
    elif name == "topology" and v not in TOPOLOGIES:
        bad(f"is unknown; choose from {', '.join(TOPOLOGIES)}")
    elif name == "fragmenter" and v not in FRAGMENTERS:
        bad(f"is unknown; choose from {', '.join(FRAGMENTERS)}")


def format_value(v: Any) -> str:
    """Folder-name and table spelling of a setting value: ``iid`` for alpha None, ``0.1``/``1`` for floats."""
    if v is None:
        return "iid"
    if isinstance(v, float):
        return format(v, "g")
    return str(v)


def _apply(base: ExperimentConfig, setting: dict[str, Any], seed: int) -> ExperimentConfig:
    updates: dict[str, Any] = {k: v for k, v in setting.items() if k != "alpha"}
    if "alpha" in setting:
        alpha = setting["alpha"]
        if alpha is None:
            updates.update(partition="iid", alpha=None)
        else:
            updates.update(partition="dirichlet", alpha=float(alpha))
    return dataclasses.replace(base, **updates, seed=seed)


def run_experiment(config: ExperimentConfig, out_dir: Path, *, quiet: bool, resume: bool) -> dict:
    """Run one cell with the engine (imported here: it pulls in torch)."""
    from .engine import run_experiment as engine_run

    return engine_run(config, out_dir, quiet=quiet, resume=resume)


def cell_state(cell_dir: Path) -> str:
    """``"complete"`` (summary.json complete), ``"resume"`` (a checkpoint, no summary) or ``"fresh"``."""
    if is_complete(cell_dir):
        return "complete"
    if (cell_dir / CHECKPOINT).is_file():
        return "resume"
    return "fresh"


def _write_sweep_file(out: Path, grid: SweepGrid, base: ExperimentConfig) -> None:
    record = {"grid": grid.to_dict(), "base": base.to_dict()}
    path = out / SWEEP_FILE
    if path.is_file():
        previous = json.loads(path.read_text())
        # Same cell names must mean the same experiment: refuse to mix two base configs.
        if previous.get("base") != record["base"]:
            changed = sorted(
                k for k in record["base"] if previous.get("base", {}).get(k) != record["base"][k]
            )
            raise MosaicValueError(
                f"{out} holds a sweep with a different base config (differs in: {', '.join(changed)}); use a new --out folder"
            )
    path.write_text(json.dumps(record, indent=2) + "\n")


def run_sweep(
    grid: SweepGrid, out_dir: str | Path, *, base: ExperimentConfig, quiet: bool = False
) -> pd.DataFrame:
    """Run every cell of ``grid`` (skipping complete ones), then write the summary table.

    Args:
        grid: the axes to vary.
        out_dir: sweep folder; cell ``c`` is written to ``out_dir / c.name``.
        base: settings shared by all cells (unresolved is fine; each cell is resolved).
        quiet: hide the progress bar.

    Returns:
        The summary table (see :func:`summarize_sweep`), a pandas DataFrame.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    cells = grid.cells(base)  # validates every cell before anything runs
    out.mkdir(parents=True, exist_ok=True)
    _write_sweep_file(out, grid, base)
    bar = tqdm(cells, desc="sweep", unit="run", disable=quiet)
    for cell in bar:
        cell_dir = out / cell.name
        state = cell_state(cell_dir)
        bar.set_postfix_str(f"{cell.name} ({state})", refresh=False)
        if state == "complete":
            continue
        if state == "fresh" and cell_dir.exists():
            shutil.rmtree(cell_dir)  # partial files of a run that left no checkpoint
        run_experiment(cell.config, cell_dir, quiet=True, resume=state == "resume")
    bar.close()
    return summarize_sweep(out)


# ---------------------------------------------------------------------------------------------
# Reading run folders (the engine's run folder contract)

# Config fields that do not change what a run computes; runs differing only in these (and the
# seed) are repetitions of one setting.
NON_SETTING_FIELDS = ("seed", "data_dir", "device", "checkpoint_every")


@dataclass(frozen=True)
class RunRecord:
    """One run folder as read from disk.

    ``config`` is the resolved ``ExperimentConfig.to_dict()``; ``records`` the evaluations of
    ``metrics.jsonl`` in file order (dicts with ``round``, ``node_mean``, ``node_std``,
    ``avg_model``, ``consensus_distance``, ...); ``summary`` the parsed ``summary.json`` when
    the run is complete, else None.
    """

    path: Path
    config: dict[str, Any]
    metric: str
    lower_is_better: bool
    records: tuple[dict[str, Any], ...]
    summary: dict[str, Any] | None


def is_complete(run_dir: Path) -> bool:
    """True iff ``run_dir/summary.json`` exists and says ``"complete": true``."""
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("complete") is True
    except (json.JSONDecodeError, AttributeError):
        return False  # a half-written summary means the run did not finish cleanly


def read_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder (``config.json`` + ``metrics.jsonl`` [+ ``summary.json``])."""
    path = Path(run_dir)
    head = read_json(path / CONFIG)
    if not isinstance(head, dict) or "config" not in head or "metric" not in head:
        raise MosaicValueError(f"{str(path / CONFIG)!r} lacks the 'config' or 'metric' key")
    records = read_metrics(path / METRICS)
    records.sort(key=lambda r: r["round"])
    summary = read_json(path / SUMMARY) if is_complete(path) else None
    lower = bool(head.get("lower_is_better", head["metric"] == "rmse"))
    return RunRecord(path, head["config"], head["metric"], lower, tuple(records), summary)


def find_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Every run folder (holding ``config.json`` and ``metrics.jsonl``) at any depth under
    ``paths``, each once, sorted by path."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise MosaicValueError(f"path {str(p)!r} does not exist")
        candidates = [p] if p.is_dir() else []
        candidates += [c.parent for c in p.rglob(CONFIG)] if p.is_dir() else []
        found.update(
            c.resolve() for c in candidates if (c / CONFIG).is_file() and (c / METRICS).is_file()
        )
    return [read_run(p) for p in sorted(found)]


def group_key(config: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Hashable identity of a run's setting: every config field except :data:`NON_SETTING_FIELDS`."""
    return tuple(
        (k, json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
        for k, v in sorted(config.items())
        if k not in NON_SETTING_FIELDS
    )


def group_runs(runs: Iterable[RunRecord]) -> list[list[RunRecord]]:
    """Group runs by :func:`group_key` (first-seen order). Two runs of one setting with the same
    seed (say, a copied folder) would count one seed twice, so that is an error."""
    groups: dict[Any, dict[int, RunRecord]] = {}
    for run in runs:
        seeds = groups.setdefault(group_key(run.config), {})
        seed = run.config.get("seed")
        if seed in seeds:
            raise MosaicValueError(
                f"{str(seeds[seed].path)!r} and {str(run.path)!r} are the same setting with seed={seed}"
            )
        seeds[seed] = run
    return [list(members.values()) for members in groups.values()]


def setting_label(config: dict[str, Any], name: str) -> Any:
    """A config value for tables and legends. ``alpha`` names the data distribution:
    ``"iid"``, the Dirichlet alpha (float), or the partition's name for other partitions."""
    if name == "alpha":
        partition = config.get("partition")
        if partition == "iid":
            return "iid"
        if partition == "dirichlet":
            return float(config["alpha"])
        return str(partition)
    return config.get(name)


def varying_settings(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Config fields (outside :data:`NON_SETTING_FIELDS`) whose value differs between configs;
    ``partition`` and ``alpha`` are reported together as ``alpha``."""
    if not configs:
        return []
    keys = [dict(group_key(c)) for c in configs]
    names = [k for k in keys[0] if any(kk.get(k) != keys[0][k] for kk in keys)]
    if "partition" in names or "alpha" in names:
        names = [n for n in names if n not in ("partition", "alpha")] + ["alpha"]
    return names


# ---------------------------------------------------------------------------------------------
# Summary table


SUMMARY_METRICS = (
    ("final_node_mean", "final node-average"),
    ("final_node_std", "final std over nodes"),
    ("final_avg_model", "final average model"),
    ("final_consensus_distance", "final consensus distance"),
    ("best_node_mean", "best node-average"),
    ("best_avg_model", "best average model"),
)


def _run_values(run: RunRecord) -> dict[str, float]:
    summary = run.summary
    final = summary["final"]
    return {
        "final_node_mean": final["node_mean"],
        "final_node_std": final["node_std"],
        "final_avg_model": final["avg_model"],
        "final_consensus_distance": final["consensus_distance"],
        "best_node_mean": summary["best_node_mean"],
        "best_avg_model": summary["best_avg_model"],
        "wall_time_s": summary["wall_time_s"],
    }


def _setting_columns(out: Path, runs: Sequence[RunRecord]) -> list[str]:
    """The columns naming a row: the sweep's axes if ``sweep.json`` exists, else every
    config field that differs between the runs (seed excluded)."""
    sweep_file = out / SWEEP_FILE
    if sweep_file.is_file():
        grid = SweepGrid.from_dict(json.loads(sweep_file.read_text())["grid"])
        if grid.axes:
            return list(grid.axes)
    return varying_settings([r.config for r in runs])


def summarize_sweep(out_dir: str | Path) -> pd.DataFrame:
    """Aggregate the complete runs under ``out_dir`` over seeds and write ``summary.csv``/``summary.md``.

    Runs are grouped by their config without the seed. For each group and each quantity in
    :data:`SUMMARY_METRICS` the table holds ``<q>_mean`` and ``<q>_ci95`` (half-width of the
    95% Student-t interval over seeds; NaN with one seed), plus ``n_seeds`` and
    ``wall_time_s_mean``. Returns it as a pandas DataFrame, one row per setting.
    """
    import pandas as pd

    from .stats import mean_ci

    out = Path(out_dir)
    if not out.is_dir():
        raise MosaicValueError(f"sweep folder {str(out)!r} does not exist")
    runs = [r for r in find_runs([out]) if r.summary is not None]
    if not runs:
        raise MosaicValueError(
            f"no complete runs (summary.json with complete=true) under {str(out)!r}"
        )
    columns = _setting_columns(out, runs)
    rows = []
    for members in group_runs(runs):
        cfg = members[0].config
        row: dict[str, Any] = {c: setting_label(cfg, c) for c in columns}
        row["metric"] = members[0].metric
        row["lower_is_better"] = members[0].lower_is_better
        values = [_run_values(r) for r in members]
        for key, _ in SUMMARY_METRICS:
            mean, half, _n = mean_ci([v[key] for v in values])
            row[f"{key}_mean"], row[f"{key}_ci95"] = float(mean), float(half)
        row["n_seeds"] = len(members)
        row["seeds"] = " ".join(str(s) for s in sorted(r.config["seed"] for r in members))
        row["wall_time_s_mean"] = float(sum(v["wall_time_s"] for v in values) / len(values))
        rows.append(row)
    table = pd.DataFrame(rows)
    table = (
        table.sort_values(columns, key=_sort_key, kind="stable").reset_index(drop=True)
        if columns
        else table
    )
    table.to_csv(out / SUMMARY_CSV, index=False)
    (out / SUMMARY_MD).write_text(_markdown(table, columns))
    return table


def setting_sort_key(name: str, value: Any) -> tuple:
    """Order of setting values in tables and figures: ``iid`` first, then Dirichlet alphas from
    mild to strong skew (as in the paper), other numbers ascending, then text."""
    if value == "iid":
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, -float(value) if name == "alpha" else float(value), "")
    return (2, 0.0, str(value))


def _sort_key(col):
    return col.map(lambda v: setting_sort_key(col.name, v))


def _fmt(mean: float, half: float) -> str:
    if not math.isfinite(mean):
        return "—"
    digits = 4
    return f"{mean:.{digits}g}" if not math.isfinite(half) else f"{mean:.{digits}g} ± {half:.2g}"


def _markdown(table, columns: Sequence[str]) -> str:
    metrics = sorted(set(table["metric"]))
    lower = bool(table["lower_is_better"].iloc[0])
    header = [*columns, *(label for _, label in SUMMARY_METRICS), "seeds", "wall time (s)"]
    lines = [
        "# Sweep summary",
        "",
        f"Metric: {', '.join(metrics)} ({'lower' if lower else 'higher'} is better); 'best' is the "
        f"{'minimum' if lower else 'maximum'} over evaluations.",
        "Values are mean ± half-width of the 95% Student-t confidence interval over seeds. "
        "With a single seed the interval is undefined and only the mean is shown.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for _, row in table.iterrows():
        cells = [format_value(row[c]) for c in columns]
        cells += [_fmt(row[f"{k}_mean"], row[f"{k}_ci95"]) for k, _ in SUMMARY_METRICS]
        cells += [str(row["n_seeds"]), f"{row['wall_time_s_mean']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_sweep(out_dir: str | Path) -> tuple[SweepGrid, ExperimentConfig]:
    """Read ``sweep.json`` back: the grid and the base config."""
    path = Path(out_dir) / SWEEP_FILE
    if not path.is_file():
        raise MosaicValueError(f"{str(path)!r} does not exist; is {str(out_dir)!r} a sweep folder?")
    record = json.loads(path.read_text())
    return SweepGrid.from_dict(record["grid"]), ExperimentConfig.from_dict(record["base"])


def parse_list(name: str, text: str, kind: type) -> tuple[Any, ...]:
    """Parse a comma-separated CLI list (``"1,2,4"``); ``kind`` is int, float, str or "alpha"."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise MosaicValueError(f"--{name} {text!r} is an empty list or has an empty item")
    out: list[Any] = []
    for t in items:
        try:
            if kind is float and name == "alpha":
                out.append(None if t.lower() == "iid" else float(t))
            else:
                out.append(kind(t))
        except ValueError:
            expect = "a number or 'iid'" if name == "alpha" else kind.__name__
            raise MosaicValueError(f"--{name} value {t!r} is not {expect}") from None
    return tuple(out)


__all__ = [
    "AXES",
    "NON_SETTING_FIELDS",
    "SUMMARY_METRICS",
    "RunRecord",
    "SweepCell",
    "SweepGrid",
    "cell_state",
    "find_runs",
    "format_value",
    "group_key",
    "group_runs",
    "is_complete",
    "read_run",
    "setting_label",
    "setting_sort_key",
    "varying_settings",
    "load_sweep",
    "parse_list",
    "parse_setting",
    "run_sweep",
    "summarize_sweep",
]


def parse_setting(pair: str) -> tuple[str, Any]:
    """Parse a ``key=value`` CLI pair into an ExperimentConfig field and a typed value.

    The value is converted by the field's annotation: ``int``/``float``/``str``/``bool``;
    ``none`` gives None for optional fields; ``extra`` takes a JSON object.
    """
    key, sep, text = pair.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise MosaicValueError(f"--set {pair!r} is not of the form key=value")
    types = {f.name: str(f.type) for f in dataclasses.fields(ExperimentConfig)}
    if key not in types:
        raise MosaicValueError(f"--set {pair!r}: unknown configuration key {key!r}")
    ftype, text = types[key], text.strip()
    if "None" in ftype and text.lower() in ("none", "null"):
        return key, None
    kind = ftype.replace("| None", "").strip()
    try:
        if kind == "int":
            return key, int(text)
        if kind == "float":
            return key, float(text)
        if kind == "bool":
            flag = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
            return key, flag[text.lower()]
        if kind.startswith("dict"):
            value = json.loads(text)
            if not isinstance(value, dict):
                raise ValueError
            return key, value
        return key, text
    except (ValueError, KeyError):
        raise MosaicValueError(f"--set {pair!r}: {text!r} is not a valid {kind}") from None
