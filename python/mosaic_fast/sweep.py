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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import FRAGMENTERS, TOPOLOGIES, ExperimentConfig
from .errors import MosaicError, MosaicValueError, RunDiverged, RunInterrupted
from .runfolder import COMPLETE, DIVERGED, FRESH, RESUME, format_value, run_status
from .summary import SWEEP_FILE, summarize_sweep

if TYPE_CHECKING:
    import pandas as pd

# Grid axes in folder-name order; seeds always come last.
AXES = ("K", "alpha", "degree", "nodes", "topology", "fragmenter")


class DivergedCellsWarning(UserWarning):
    """Some cells of a sweep diverged; they are recorded as such and not run again."""


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
    """``complete`` or ``diverged`` (finished: never run again), ``resume`` (a checkpoint) or ``fresh``."""
    return run_status(cell_dir)


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
    diverged: list[str] = []
    for cell in bar:
        cell_dir = out / cell.name
        state = cell_state(cell_dir)
        bar.set_postfix_str(f"{cell.name} ({state})", refresh=False)
        if state == DIVERGED:
            diverged.append(cell.name)
        if state in (COMPLETE, DIVERGED):
            continue
        if state == FRESH and cell_dir.exists():
            shutil.rmtree(cell_dir)  # partial files of a run that left no checkpoint
        try:
            run_experiment(cell.config, cell_dir, quiet=True, resume=state == RESUME)
        except RunDiverged:
            diverged.append(cell.name)  # recorded in the cell's summary.json; the sweep goes on
        except RunInterrupted as exc:
            raise RunInterrupted(exc.signum, "the same mosaic-fast sweep command") from None
    bar.close()
    if diverged:
        warnings.warn(
            f"{len(diverged)} cell(s) diverged: {', '.join(diverged)}", DivergedCellsWarning, 2
        )
    return summarize_sweep(out)


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
    "DivergedCellsWarning",
    "SweepCell",
    "SweepGrid",
    "cell_state",
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
