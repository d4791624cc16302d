"""Reading run folders back, for sweeps, summary tables and figures: :class:`RunRecord` per folder,
grouped by setting, with the spelling and order of setting values in tables and legends."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MosaicValueError
from ..settings import NON_RESULT_SETTINGS
from .layout import (
    COMPLETE,
    CONFIG,
    DIVERGED,
    METRICS,
    config_of,
    read_json,
    read_metrics,
    read_summary,
    run_status,
)


@dataclass(frozen=True)
class RunRecord:
    """One run folder as read from disk.

    ``config`` is the resolved ``ExperimentConfig.to_dict()``; ``records`` the evaluations of
    ``metrics.jsonl`` in round order (dicts with ``round``, ``node_mean``, ``node_std``,
    ``avg_model``, ``consensus_distance``, ...); ``status`` is ``complete``, ``diverged``,
    ``resume`` or ``fresh``; ``summary`` the parsed ``summary.json`` of a finished run, else None.
    """

    path: Path
    config: dict[str, Any]
    metric: str
    lower_is_better: bool
    records: tuple[dict[str, Any], ...]
    status: str
    summary: dict[str, Any] | None


def read_run(run_dir: str | Path) -> RunRecord:
    """Read one run folder (``config.json`` + ``metrics.jsonl`` [+ ``summary.json``])."""
    path = Path(run_dir)
    head = read_json(path / CONFIG)
    if not isinstance(head, dict) or "config" not in head or "metric" not in head:
        raise MosaicValueError(f"{str(path / CONFIG)!r} lacks the 'config' or 'metric' key")
    config = config_of(path).to_dict()  # older folders gain the settings added since
    records = read_metrics(path / METRICS)
    records.sort(key=lambda r: r["round"])
    status = run_status(path)
    summary = read_summary(path) if status in (COMPLETE, DIVERGED) else None
    lower = bool(head.get("lower_is_better", head["metric"] == "rmse"))
    return RunRecord(path, config, head["metric"], lower, tuple(records), status, summary)


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
    """Hashable identity of a run's setting: every setting that changes results, except the seed."""
    return tuple(
        (k, json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v)
        for k, v in sorted(config.items())
        if k != "seed" and k not in NON_RESULT_SETTINGS
    )


def group_runs(runs: Iterable[RunRecord]) -> list[list[RunRecord]]:
    """Group runs by :func:`group_key` (first-seen order). Two runs of one setting with the same
    seed (say, a copied folder) would count one seed twice, so that is an error."""
    groups: dict[Any, dict[int | None, RunRecord]] = {}
    for run in runs:
        seeds = groups.setdefault(group_key(run.config), {})
        seed = run.config.get("seed")
        if seed in seeds:
            raise MosaicValueError(
                f"{str(seeds[seed].path)!r} and {str(run.path)!r} are the same setting with seed={seed}"
            )
        seeds[seed] = run
    return [list(members.values()) for members in groups.values()]


def number_or_nan(value: Any) -> float:
    """A metrics or summary value as a float for tables and figures: NaN where a record has none
    (None, missing, or written before the field existed)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def format_value(v: Any) -> str:
    """Folder-name and table spelling of a setting value: ``iid`` for alpha None, ``0.1``/``1`` for floats."""
    if v is None:
        return "iid"
    if isinstance(v, float):
        return format(v, "g")
    return str(v)


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


def setting_sort_key(name: str, value: Any) -> tuple[Any, ...]:
    """Order of setting values in tables and figures: ``iid`` first, then Dirichlet alphas from
    mild to strong skew (as in the paper), other numbers ascending, then text."""
    if value == "iid":
        return (0, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (1, -float(value) if name == "alpha" else float(value), "")
    return (2, 0.0, str(value))


def varying_settings(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Settings (those that change results, seed excluded) whose value differs between configs;
    ``partition`` and ``alpha`` are reported together as ``alpha``."""
    if not configs:
        return []
    keys = [dict(group_key(c)) for c in configs]
    names = [k for k in keys[0] if any(kk.get(k) != keys[0][k] for kk in keys)]
    if "partition" in names or "alpha" in names:
        names = [n for n in names if n not in ("partition", "alpha")] + ["alpha"]
    return names
