"""The run folder's one writer: create, lock, resume, append metrics, checkpoint and finish.
Reading folders back (sweeps, tables, figures) is :mod:`mosaic_fast.results.records`; the file
names and states both use are :mod:`mosaic_fast.results.layout`.

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
The names of :mod:`~mosaic_fast.results.layout` and :mod:`~mosaic_fast.results.records` stay
importable from here.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import DiskFull, MosaicValueError, RunFolderInUse
from .layout import (
    CHECKPOINT,
    CONFIG,
    DIGEST,
    FRESH,
    LOCK,
    METRICS,
    RUN_FILES,
    SUMMARY,
    atomic_write,
    read_json,
    read_metrics,
    read_summary,
    run_status,
    to_json,
    write_json,
    written_temp,
)

__all__ = [
    "RunFolder",
    "discard_unstarted",
    "sha256_of",
]


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
    process gets :class:`RunFolderInUse` naming the holder's PID); leaving releases it. A folder
    it created is removed again if the run failed before writing anything into it (bad input
    found once the folder was open), so no empty folder is left behind."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._created = False

    def __enter__(self) -> RunFolder:
        self._created = not self.path.exists()
        self._create()
        self._lock()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._lock_fd is None:
            return
        if exc_type is not None and self._created and self._holds_only_its_lock():
            shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)  # closing the descriptor drops the flock
        self._lock_fd = None

    def _holds_only_its_lock(self) -> bool:
        try:
            return [p.name for p in self.path.iterdir()] == [LOCK]
        except OSError:
            return False

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
        return read_summary(self.path)

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
            tmp = written_temp(path, lambda fh: torch.save(state, fh))
            try:
                new = sha256_of(tmp)
                old = _listed_digests(digest_path) if path.is_file() else []
                atomic_write(digest_path, lambda fh: fh.write(_digest_text([new, *old])))
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            atomic_write(digest_path, lambda fh: fh.write(_digest_text([new])))

    def restart_metrics(self, history: list[dict[str, Any]]) -> None:
        """Make ``metrics.jsonl`` hold exactly ``history`` (drops lines written after the
        checkpoint being resumed)."""
        body = "".join(to_json(r) + "\n" for r in history).encode()
        with self._writing(METRICS):
            atomic_write(self.path / METRICS, lambda fh: fh.write(body))

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
