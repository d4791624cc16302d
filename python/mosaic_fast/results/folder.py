"""The run folder, owned by this module alone: create, lock, resume, append metrics, checkpoint,
finish, and read back.

A run folder holds:

- ``config.json``: the resolved settings (under ``"config"``), versions, ``n_params``, the metric;
- ``metrics.jsonl``: one JSON object per evaluation, appended and fsynced line by line;
- ``checkpoint.pt``: the state to continue from (tensors and plain types only, loaded with
  ``torch.load(weights_only=True)``, so opening one never runs code);
- ``checkpoint.pt.sha256``: the checkpoint's SHA-256 digest (``sha256sum`` format, so
  ``sha256sum -c checkpoint.pt.sha256`` checks it in the folder). Resuming verifies it first: a
  checkpoint that does not match, or whose digest file is gone, is refused in one line (exit 2);
  it is never loaded unverified. While a new checkpoint replaces the old one the file lists both
  digests, so a kill between the two renames leaves a checkpoint that one of them matches;
- ``summary.json``: written once, when the run ends: ``"status"`` is ``"complete"`` or
  ``"diverged"`` (with the round and the reason);
- ``.lock``: the PID of the process writing the folder, which holds an ``flock`` on it while it
  lives (the kernel drops the lock when the process dies, even by ``kill -9``).

torch is imported only to read and write checkpoints, so sweeps and plots read folders without it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DiskFull, MosaicError, MosaicValueError, RunFolderInUse
from ..settings import NON_RESULT_SETTINGS, ExperimentConfig

CONFIG, METRICS, SUMMARY, CHECKPOINT, LOCK = (
    "config.json",
    "metrics.jsonl",
    "summary.json",
    "checkpoint.pt",
    ".lock",
)
DIGEST = CHECKPOINT + ".sha256"
RUN_FILES = frozenset({CONFIG, METRICS, SUMMARY, CHECKPOINT, DIGEST, LOCK})
# The experiment trackers' folder (mosaic_fast.tracking): event files, the tracked runs' ids.
TRACKING = "tracking"
RUN_FILES = RUN_FILES | {TRACKING}
# Record fields measured by the machine's clock: the only ones two runs of one seed may differ in.
CLOCK_FIELDS = frozenset({"wall_time_s", "eval_time_s"})

# What a folder is in: finished (complete or diverged; never run again), resumable, or fresh.
COMPLETE, DIVERGED, RESUME, FRESH = "complete", "diverged", "resume", "fresh"


def _written_temp(path: Path, write) -> Path:
    """A sibling temp file of ``path`` holding what ``write(fh)`` wrote, fsynced (removed again if
    writing fails)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _atomic(path: Path, write) -> None:
    # Write a sibling temp file, fsync it, then rename: readers see the old or the new file, never half.
    tmp = _written_temp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, +-Infinity) replaced by None, in dicts, lists and
    tuples at any depth: JSON has no NaN, so every JSON file mosaic-fast writes holds null there
    (readers such as :func:`number_or_nan` turn it back into NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def to_json(obj: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (``json.dumps`` with ``allow_nan=False``): non-finite floats
    become null (:func:`finite`), never the bare ``NaN`` that other JSON readers refuse."""
    return json.dumps(finite(obj), allow_nan=False, **kwargs)


def write_json(path: Path, obj: Any) -> None:
    text = to_json(obj, indent=2) + "\n"
    _atomic(path, lambda fh: fh.write(text.encode()))


def sha256_of(path: Path) -> str:
    """The SHA-256 digest of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_digests(path: Path) -> list[str]:
    """The digests a ``sha256sum``-format file lists ([] if it lists none it could hold)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    words = (line.split()[0].lower() for line in text.splitlines() if line.split())
    return [w for w in words if len(w) == 64 and all(c in "0123456789abcdef" for c in w)]


def _digest_text(digests: Sequence[str]) -> bytes:
    return "".join(f"{d}  {CHECKPOINT}\n" for d in dict.fromkeys(digests)).encode()


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError that caused ``exc`` (itself, or one in its context chain: torch.save reports a
    failed write as a RuntimeError raised while the OSError was handled)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise MosaicValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise MosaicValueError(f"cannot read {str(path)!r}: {exc.strerror}") from None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl`` in file order. A cut-short last line (a run killed while
    appending) is skipped; a bad line anywhere else is a MosaicValueError."""
    lines = Path(path).read_text().splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise MosaicValueError(f"{str(path)!r} line {i + 1} is not valid JSON") from None
    return records


def _read_summary(folder: Path) -> dict[str, Any] | None:
    """The parsed ``summary.json``, or None when it is missing or half-written."""
    path = folder / SUMMARY
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None
    return summary if isinstance(summary, dict) else None


def summary_status(summary: dict[str, Any] | None) -> str | None:
    """``complete`` or ``diverged`` for a finished run's summary (older folders only say
    ``"complete": true``), else None."""
    if summary is None:
        return None
    status = summary.get("status")
    if status in (COMPLETE, DIVERGED):
        return status
    return COMPLETE if summary.get("complete") is True else None


def run_status(folder: str | Path) -> str:
    """``complete``, ``diverged``, ``resume`` (a checkpoint, not finished) or ``fresh``."""
    folder = Path(folder)
    status = summary_status(_read_summary(folder))
    if status is not None:
        return status
    return RESUME if (folder / CHECKPOINT).is_file() else FRESH


def config_of(folder: str | Path) -> ExperimentConfig:
    """The settings a run folder was started with (its ``config.json``)."""
    path = Path(folder) / CONFIG
    if not Path(folder).exists():
        raise MosaicValueError(f"run folder {str(folder)!r} does not exist")
    if not path.is_file():
        raise MosaicValueError(f"{str(folder)!r} holds no run (no {CONFIG})")
    head = read_json(path)
    if not isinstance(head, dict) or not isinstance(head.get("config"), dict):
        raise MosaicValueError(f"{str(path)!r} lacks the 'config' table of a mosaic-fast run")
    try:
        return ExperimentConfig.from_dict(head["config"])
    except MosaicError as exc:
        written_by = head.get("versions", {}).get("mosaic_fast", "an unknown version")
        raise MosaicValueError(
            f"{str(path)!r} was written by mosaic-fast {written_by} and cannot be read here: {exc}"
        ) from None


def discard_unstarted(folder: str | Path) -> None:
    """Delete the files of a run that died before its first checkpoint (``fresh`` with files),
    so it can start over; a folder holding anything but a run's files is left alone."""
    folder = Path(folder)
    if not folder.is_dir() or run_status(folder) != FRESH:
        return
    names = [p.name for p in folder.iterdir()]
    # run files, and temp files of an atomic write the process did not finish
    if not all(n in RUN_FILES or (n.startswith(".") and n.endswith(".tmp")) for n in names):
        return
    try:
        with RunFolder(folder):  # a live run before its first checkpoint is left alone
            shutil.rmtree(folder)
    except RunFolderInUse:
        return


class RunFolder:
    """The one writer of a run folder. Use as a context manager: entering creates the folder,
    refuses one that holds something other than a run, and takes the folder's lock (a second
    process gets :class:`RunFolderInUse` naming the holder's PID); leaving releases it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    def __enter__(self) -> RunFolder:
        self._create()
        self._lock()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _create(self) -> None:
        where = str(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise MosaicValueError(f"run folder {where!r} exists and is not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            strangers = sorted(
                p.name
                for p in self.path.iterdir()
                if p.name not in RUN_FILES and not p.name.startswith(".")
            )
        except OSError as exc:
            raise MosaicValueError(f"cannot create run folder {where!r}: {exc.strerror}") from None
        if strangers:
            shown = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
            raise MosaicValueError(
                f"{where!r} holds files that are not part of a mosaic-fast run ({shown}); choose a new or empty folder"
            )

    def _lock(self) -> None:
        path = self.path / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise MosaicValueError(
                f"cannot write to run folder {str(self.path)!r}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise RunFolderInUse(
                str(self.path), int(holder) if holder.isdigit() else None
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    @contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Turn a failed write of ``name`` into one line: :class:`DiskFull` (naming the folder and
        the free space) when the disk or quota is full, else a MosaicValueError."""
        try:
            yield
        except (OSError, RuntimeError) as exc:
            cause = _os_error_in(exc)
            if cause is None:
                raise
            if cause.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(str(self.path), name, _free_bytes(self.path)) from None
            raise MosaicValueError(
                f"cannot write {name} in run folder {str(self.path)!r}: {cause.strerror or cause}"
            ) from None

    # -- state -----------------------------------------------------------------------------

    def status(self) -> str:
        return run_status(self.path)

    def summary(self) -> dict[str, Any] | None:
        return _read_summary(self.path)

    def has_metrics(self) -> bool:
        return (self.path / METRICS).is_file()

    def write_config(self, meta: dict[str, Any]) -> None:
        with self._writing(CONFIG):
            write_json(self.path / CONFIG, meta)

    def has_config(self) -> bool:
        return (self.path / CONFIG).is_file()

    def meta(self) -> dict[str, Any]:
        """The ``config.json`` record (settings, versions, chosen trainer strategy), {} if none."""
        head = read_json(self.path / CONFIG) if self.has_config() else {}
        return head if isinstance(head, dict) else {}

    def history(self) -> list[dict[str, Any]]:
        """The evaluation records in ``metrics.jsonl`` ([] if none)."""
        return read_metrics(self.path / METRICS) if self.has_metrics() else []

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The saved state, or None without a checkpoint. Loaded with ``weights_only=True``: a
        file that holds anything but tensors and plain types is refused, never executed."""
        import torch

        path = self.path / CHECKPOINT
        if not path.is_file():
            return None
        self._verify_checkpoint(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling fails in many ways; every one means "not ours"
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            # torch puts the unpickler's own complaint on a later line than its generic advice
            reason = next((ln for ln in lines if "Unpickler error" in ln), None)
            reason = reason or (lines[0] if lines else type(exc).__name__)
            raise MosaicValueError(
                f"{str(path)!r} is not a valid mosaic-fast checkpoint ({reason[:160]}); delete it to start the run over"
            ) from None
        if not isinstance(state, dict) or not {"config", "simulation", "history"} <= set(state):
            raise MosaicValueError(
                f"{str(path)!r} is not a valid mosaic-fast checkpoint (missing config, simulation or history)"
            )
        return state

    def _verify_checkpoint(self, path: Path) -> None:
        """MosaicValueError (one line, naming the file) unless ``path`` matches a digest that
        ``checkpoint.pt.sha256`` lists. A missing digest file is refused too: a checkpoint that
        cannot be checked is not loaded."""
        where = str(path)
        digest_path = self.path / DIGEST
        if not digest_path.is_file():
            raise MosaicValueError(
                f"{where!r} has no digest ({DIGEST} is missing), so it cannot be checked; "
                f"delete {CHECKPOINT} to start the run over, or, if you trust it, run "
                f"'sha256sum {CHECKPOINT} > {DIGEST}' in the folder and resume again"
            )
        listed = _listed_digests(digest_path)
        if not listed:
            raise MosaicValueError(
                f"{str(digest_path)!r} holds no SHA-256 digest, so {where!r} cannot be checked; "
                f"delete {CHECKPOINT} and {DIGEST} to start the run over"
            )
        if sha256_of(path) not in listed:
            raise MosaicValueError(
                f"{where!r} does not match its digest in {DIGEST}: it changed after it was "
                f"written; delete {CHECKPOINT} and {DIGEST} to start the run over"
            )

    def checkpoint_bytes(self) -> int:
        """The size of ``checkpoint.pt`` (0 without one)."""
        try:
            return (self.path / CHECKPOINT).stat().st_size
        except OSError:
            return 0

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write ``checkpoint.pt`` and its digest, each atomically. The digest file lists the new
        digest beside the old ones before the new checkpoint replaces the old, and the new one
        alone after: whenever the process dies, the checkpoint on disk matches a listed digest."""
        import torch

        path, digest_path = self.path / CHECKPOINT, self.path / DIGEST
        with self._writing(CHECKPOINT):
            tmp = _written_temp(path, lambda fh: torch.save(state, fh))
            try:
                new = sha256_of(tmp)
                old = _listed_digests(digest_path) if path.is_file() else []
                _atomic(digest_path, lambda fh: fh.write(_digest_text([new, *old])))
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _atomic(digest_path, lambda fh: fh.write(_digest_text([new])))

    def restart_metrics(self, history: list[dict[str, Any]]) -> None:
        """Make ``metrics.jsonl`` hold exactly ``history`` (drops lines written after the
        checkpoint being resumed)."""
        body = "".join(to_json(r) + "\n" for r in history).encode()
        with self._writing(METRICS):
            _atomic(self.path / METRICS, lambda fh: fh.write(body))

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one complete JSON line and make it durable before returning. (A line cut short
        by a full disk is dropped by :func:`read_metrics` and rewritten on resume.)"""
        line = to_json(record) + "\n"
        with self._writing(METRICS), (self.path / METRICS).open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def finish(self, summary: dict[str, Any]) -> None:
        with self._writing(SUMMARY):
            write_json(self.path / SUMMARY, summary)


# ---------------------------------------------------------------------------------------------
# Reading run folders back (sweeps, summary tables, plots)


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
    summary = _read_summary(path) if status in (COMPLETE, DIVERGED) else None
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


def setting_sort_key(name: str, value: Any) -> tuple:
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
