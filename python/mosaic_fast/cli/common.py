"""What every command shares: one-line errors with the exit codes the README documents.

Exit codes: 0 done; 2 bad usage or bad input (including a run folder in use); 3 the run diverged;
4 the disk filled up (``DiskFull``: the folder stays resumable); 128 + signal number (130 SIGINT,
143 SIGTERM) when a signal stopped the run after a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..errors import MosaicError
from ..launch import process_rank


class OneLineError(click.ClickException):
    """Printed as a single ``Error: ...`` line; exit status 2 unless given."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class OneLineCommand(click.Command):
    """A command whose option-parsing errors are one line, like our own MosaicErrors."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise OneLineError(exc.format_message()) from None


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn mosaic-fast errors (and Ctrl-C outside a round) into one line and their exit code."""
    try:
        yield
    except MosaicError as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        rank = process_rank()
        if rank is not None:  # torchrun interleaves every rank's output: say whose line it is
            message = f"rank {rank}: {message}"
        raise OneLineError(message, getattr(exc, "exit_code", 2)) from None
    except KeyboardInterrupt:
        raise OneLineError("interrupted", 130) from None
