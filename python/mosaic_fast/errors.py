"""Exception hierarchy. Every error mosaic-fast raises on bad input derives from ``MosaicError``."""

from __future__ import annotations


class MosaicError(Exception):
    """Base class of all mosaic-fast errors."""


class MosaicValueError(MosaicError, ValueError):
    """An argument has the right type but a bad value (shape, range, mismatch)."""


class MosaicTypeError(MosaicError, TypeError):
    """An argument has the wrong type, dtype or memory layout."""


class DataNotFoundError(MosaicError, FileNotFoundError):
    """A dataset has no local copy and cannot be downloaded."""


class MosaicInternalError(MosaicError, RuntimeError):
    """A bug inside mosaic-fast (a Rust panic caught at the boundary). Please report it."""


class RunFolderInUse(MosaicError):
    """Another live process holds the run folder's lock."""

    def __init__(self, folder: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"run folder {folder!r} is in use by {holder}")
        self.folder, self.pid = folder, pid


class DiskFull(MosaicError):
    """The disk holding a run folder filled up while a file was written. Nothing written before is
    lost (files are replaced atomically; the last checkpoint stays valid): free some space and
    continue the run with ``--resume``."""

    exit_code = 4

    def __init__(self, folder: str, file: str, free_bytes: int | None) -> None:
        free = "" if free_bytes is None else f", {free_bytes / 1e6:.1f} MB free"
        super().__init__(
            f"no space left on the disk of run folder {folder!r} while writing {file}{free}; "
            "nothing written before is lost: free some space, then continue with --resume"
        )
        self.folder, self.file, self.free_bytes = folder, file, free_bytes


class CheckpointCostWarning(UserWarning):
    """Writing checkpoints takes a large share of a run's time (``checkpoint_every`` is small for
    the model's size); told once per run, with the size of a checkpoint."""


class CallbackError(MosaicError):
    """A user callback raised or returned something invalid; the run stopped after its round."""


class RunDiverged(MosaicError):
    """Training produced a non-finite loss or non-finite parameters; the run was stopped."""

    exit_code = 3

    def __init__(self, round: int, reason: str, lr: float | None) -> None:
        hint = f"; try a smaller --lr (now {lr})" if lr is not None else ""
        super().__init__(f"run diverged at round {round} ({reason}){hint}")
        self.round, self.reason, self.lr = round, reason, lr


class RunInterrupted(MosaicError):
    """SIGINT or SIGTERM stopped the run after a round; a checkpoint was written.

    ``resume_command`` is the line that continues the work (None for a run kept in memory)."""

    def __init__(self, signum: int, resume_command: str | None) -> None:
        import signal

        name = signal.Signals(signum).name
        where = f"; resume with: {resume_command}" if resume_command else ""
        super().__init__(f"stopped by {name}{where}")
        self.signum, self.resume_command = signum, resume_command
        self.exit_code = 128 + signum
