"""Grids of experiments: expand a grid into cells, run each cell once, summarise over seeds.

Each cell is a normal run folder (the engine's run folder contract) named from the grid axes,
e.g. ``K=8_alpha=0.1_degree=8_seed=0``. A finished cell (``summary.json`` says ``complete`` or
``diverged``) is skipped, so re-running an interrupted sweep continues it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import MosaicError, MosaicValueError, RunDiverged, RunFolderInUse, RunInterrupted
from .results.folder import discard_unstarted
from .results.layout import COMPLETE, DIVERGED, FRESH, RESUME, config_of, run_status
from .results.records import format_value
from .results.summary import SWEEP_FILE, summarize_sweep
from .settings import NON_RESULT_SETTINGS, SETTINGS, ExperimentConfig, setting_named

if TYPE_CHECKING:
    import pandas as pd

# Grid axes in folder-name order: the axes sweeps started with, then every other setting declared
# as an axis, in declaration order. The seed axis (grid key ``seeds``) always comes last.
_FIRST_AXES = ("K", "alpha", "degree", "nodes", "topology", "fragmenter")
AXES = (
    *_FIRST_AXES,
    *(s.name for s in SETTINGS.values() if s.axis and s.name not in (*_FIRST_AXES, "seed")),
)
SEEDS = "seeds"


class DivergedCellsWarning(UserWarning):
    """Some cells of a sweep diverged; they are recorded as such and not run again."""


class CellsInUseWarning(UserWarning):
    """Some cells were being run by another process (say a second sweep over the same folder,
    which shares the work this way); this sweep left them to it."""


class SweepGrid:
    """The values each grid axis takes; an axis left out (or None) keeps the base config's value.

    The axes are :data:`AXES` (every setting declared with ``axis=True``) and ``seeds``, e.g.
    ``SweepGrid(K=(1, 8), lr=(0.1, 0.05), seeds=(0, 1))``. ``alpha`` holds ``None`` for an IID
    partition and a positive float for a Dirichlet(alpha) label-skew partition. Every cell of the
    grid is one combination of the given axes. Immutable.
    """

    __slots__ = ("_values",)
    _values: dict[str, tuple[Any, ...]]  # axis -> its values (set once, in __init__)

    def __init__(self, **axes: Iterable[Any] | None) -> None:
        unknown = sorted(set(axes) - {*AXES, SEEDS})
        if unknown:
            raise MosaicValueError(f"unknown grid axis(es): {', '.join(unknown)}")
        values: dict[str, tuple[Any, ...]] = {}
        for name in (*AXES, SEEDS):
            axis = axes.get(name)
            if axis is None:
                continue
            given = tuple(axis)
            if not given:
                raise MosaicValueError(f"grid axis {name} is an empty list")
            for v in given:
                _check_axis_value(name, v)
            dup = sorted({format_value(v) for v in given if given.count(v) > 1})
            if dup:
                raise MosaicValueError(f"grid axis {name} repeats value(s) {', '.join(dup)}")
            values[name] = given
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> tuple[Any, ...] | None:
        if name in AXES or name == SEEDS:
            return self._values.get(name)
        raise AttributeError(f"{type(self).__name__!r} has no axis {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(
            f"cannot assign to {name!r}: a SweepGrid is immutable"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SweepGrid) and self._values == other._values

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        return f"SweepGrid({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    @property
    def axes(self) -> tuple[str, ...]:
        """Names of the axes this grid sets (folder-name order, without seeds)."""
        return tuple(a for a in AXES if a in self._values)

    def cells(self, base: ExperimentConfig) -> list[SweepCell]:
        """All cells, seeds outermost, so an interrupted sweep has covered every setting once
        before it starts on the next seed. Each cell's config is resolved and validated."""
        axes = self.axes
        seeds = self.seeds if self.seeds is not None else (base.seed,)
        out = []
        for seed in seeds:
            for combo in itertools.product(*(self._values[a] for a in axes)):
                setting = dict(zip(axes, combo, strict=True))
                name = "_".join(
                    [*(f"{a}={_in_name(v)}" for a, v in setting.items()), f"seed={seed}"]
                )
                try:
                    config = _apply(base, setting, seed).resolved()
                except MosaicError as exc:
                    raise MosaicValueError(f"cell {name}: {exc}") from None
                out.append(SweepCell(name=name, setting=setting, config=config))
        return out

    def to_dict(self) -> dict[str, Any]:
        """``sweep.json``'s ``grid``: the first six axes always (None when unset), then the
        other axes this grid sets, then ``seeds``; lists in folder-name order."""
        keys = [a for a in AXES if a in _FIRST_AXES or a in self._values]
        return {k: (list(self._values[k]) if k in self._values else None) for k in [*keys, SEEDS]}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SweepGrid:
        return cls(**values)


@dataclass(frozen=True)
class SweepCell:
    """One run of a sweep: its folder name, its grid values and its resolved config."""

    name: str
    setting: dict[str, Any]
    config: ExperimentConfig


def _check_axis_value(name: str, v: Any) -> None:
    if name == "alpha" and v is None:
        return  # the IID partition
    s = SETTINGS["seed" if name == SEEDS else name]
    why = "must not be none" if v is None else s.problem(v)
    if why is not None:
        raise MosaicValueError(f"grid value {name}={format_value(v)} {why}")


def _apply(base: ExperimentConfig, setting: dict[str, Any], seed: int) -> ExperimentConfig:
    updates: dict[str, Any] = {k: v for k, v in setting.items() if k != "alpha"}
    if "alpha" in setting:
        alpha = setting["alpha"]
        if alpha is None:
            updates.update(partition="iid", alpha=None)
        else:
            updates.update(partition="dirichlet", alpha=float(alpha))
    return dataclasses.replace(base, **updates, seed=seed)


def _in_name(value: Any) -> str:
    """A value as part of a cell's folder name: a ``/`` (``60Mbit/s``, ``edges:a/b.txt``) would
    nest folders, so it is escaped as in URLs."""
    return format_value(value).replace("%", "%25").replace("/", "%2F")


def run_experiment(
    config: ExperimentConfig, out_dir: Path, *, quiet: bool, resume: bool
) -> dict[str, Any]:
    """Run one cell through :class:`mosaic_fast.Experiment` (imported here: it pulls in torch);
    trackers file the cells under the sweep folder (one group per sweep)."""
    from .api import Experiment

    cell = Experiment.from_config(config)
    return cell.run(out_dir, quiet=quiet, resume=resume, group=Path(out_dir).parent).summary


def cell_state(cell_dir: Path) -> str:
    """``complete`` or ``diverged`` (finished: never run again), ``resume`` (a checkpoint) or ``fresh``."""
    return run_status(cell_dir)


def _write_sweep_file(out: Path, grid: SweepGrid, base: ExperimentConfig) -> None:
    record = {"grid": grid.to_dict(), "base": base.to_dict()}
    path = out / SWEEP_FILE
    if path.is_file():
        # Same cell names must mean the same experiment: refuse to mix two base configs.
        # (Read through ExperimentConfig: files of older versions gain the settings added since.)
        previous = _stored_base(json.loads(path.read_text()).get("base", {}))
        # An axis's base value never reaches a cell, so it may differ (a changed default, say).
        changed = [k for k in _changed_results(previous, record["base"]) if k not in grid.axes]
        if changed:
            was = ", ".join(f"{k}={previous.get(k)!r}" for k in changed)
            now = ", ".join(f"{k}={record['base'][k]!r}" for k in changed)
            raise MosaicValueError(
                f"{out} holds a sweep with a different base config ({was}; now {now}): pass "
                "the earlier values to continue it, or use a new --out folder"
            )
    path.write_text(json.dumps(record, indent=2) + "\n")


def _changed_results(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The settings that change results and differ between two config dicts."""
    return sorted(k for k in after if k not in NON_RESULT_SETTINGS and before.get(k) != after[k])


def _check_finished_cells(out: Path, cells: Iterable[SweepCell]) -> None:
    """A finished cell is never run again, so it must be the experiment this sweep asks for
    (a changed default, say, would otherwise mix two settings under one cell name)."""
    for cell in cells:
        cell_dir = out / cell.name
        if cell_state(cell_dir) not in (COMPLETE, DIVERGED):
            continue
        stored, wanted = config_of(cell_dir).to_dict(), cell.config.to_dict()
        changed = _changed_results(stored, wanted)
        if changed:
            was = ", ".join(f"{k}={stored.get(k)!r}" for k in changed)
            now = ", ".join(f"{k}={wanted[k]!r}" for k in changed)
            raise MosaicValueError(
                f"cell {cell.name} in {str(out)!r} ran with {was}; this sweep asks for {now}; use a new --out folder"
            )


def _stored_base(values: dict[str, Any]) -> dict[str, Any]:
    try:
        return ExperimentConfig.from_dict(values).to_dict()
    except (TypeError, ValueError):
        return values


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
    out = Path(out_dir)
    cells = grid.cells(base)  # validates every cell before anything runs
    out.mkdir(parents=True, exist_ok=True)
    _check_finished_cells(out, cells)
    _write_sweep_file(out, grid, base)
    diverged, in_use = _run_cells(out, cells, quiet)
    _warn_left_out(diverged, in_use)
    return summarize_sweep(out)


def _run_cells(out: Path, cells: list[SweepCell], quiet: bool) -> tuple[list[str], list[str]]:
    """Run every cell not finished yet, in order. Returns the names of the cells that diverged
    (now or before) and of those another process was running."""
    from tqdm.auto import tqdm

    bar = tqdm(cells, desc="sweep", unit="run", disable=quiet)
    diverged: list[str] = []
    in_use: list[str] = []
    for cell in bar:
        cell_dir = out / cell.name
        state = cell_state(cell_dir)
        bar.set_postfix_str(f"{cell.name} ({state})", refresh=False)
        if state == DIVERGED:
            diverged.append(cell.name)
        if state in (COMPLETE, DIVERGED):
            continue
        if state == FRESH:
            discard_unstarted(cell_dir)  # partial files of a run that left no checkpoint
        try:
            run_experiment(cell.config, cell_dir, quiet=True, resume=state == RESUME)
        except RunDiverged:
            diverged.append(cell.name)  # recorded in the cell's summary.json; the sweep goes on
        except RunInterrupted as exc:
            raise RunInterrupted(exc.signum, "the same mosaic-fast sweep command") from None
        except RunFolderInUse:
            in_use.append(cell.name)  # another process runs it
    bar.close()
    return diverged, in_use


def _warn_left_out(diverged: list[str], in_use: list[str]) -> None:
    """Warn (at :func:`run_sweep`'s caller) about cells the summary leaves out."""
    if in_use:
        warnings.warn(
            f"{len(in_use)} cell(s) were being run by another process: {', '.join(in_use)}; "
            "re-run this sweep when it has finished to include them in the summary",
            CellsInUseWarning,
            3,
        )
    if diverged:
        warnings.warn(
            f"{len(diverged)} cell(s) diverged: {', '.join(diverged)}", DivergedCellsWarning, 3
        )


def load_sweep(out_dir: str | Path) -> tuple[SweepGrid, ExperimentConfig]:
    """Read ``sweep.json`` back: the grid and the base config."""
    path = Path(out_dir) / SWEEP_FILE
    if not path.is_file():
        raise MosaicValueError(f"{str(path)!r} does not exist; is {str(out_dir)!r} a sweep folder?")
    try:
        record = json.loads(path.read_text())
        grid, base = record["grid"], record["base"]
    except (ValueError, KeyError, TypeError):
        raise MosaicValueError(
            f"{str(path)!r} is not a sweep file (JSON with grid and base)"
        ) from None
    try:
        return SweepGrid.from_dict(grid), ExperimentConfig.from_dict(base)
    except MosaicValueError as exc:
        raise MosaicValueError(f"{str(path)!r}: {exc}") from None


def parse_list(name: str, text: str) -> tuple[Any, ...]:
    """Parse the comma list of grid axis ``name`` (``"1,2,4"``; ``seed`` or ``seeds`` for the
    seeds), typed by the axis's setting; ``iid`` is the IID partition on the ``alpha`` axis."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise MosaicValueError(f"--{name} {text!r} is an empty list or has an empty item")
    s = SETTINGS["seed" if name == SEEDS else name]
    out: list[Any] = []
    for t in items:
        if name == "alpha" and t.lower() == "iid":
            out.append(None)
            continue
        try:
            out.append(s.parse(t))
        except MosaicValueError:
            expect = "a number or 'iid'" if name == "alpha" else s.expected
            raise MosaicValueError(f"--{name} value {t!r} must be {expect}") from None
    return tuple(out)


__all__ = [
    "AXES",
    "SEEDS",
    "CellsInUseWarning",
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
    """Parse a ``key=value`` CLI pair into a setting's name and typed value (``local-steps=3``
    -> ``("local_steps", 3)``; ``none`` for settings that may be None; ``true``/``false``)."""
    key, sep, text = pair.partition("=")
    if not sep or not key.strip():
        raise MosaicValueError(f"--set {pair!r} is not of the form key=value")
    try:
        s = setting_named(key)
        return s.name, s.parse(text)
    except MosaicValueError as exc:
        raise MosaicValueError(f"--set {pair!r}: {exc}") from None
