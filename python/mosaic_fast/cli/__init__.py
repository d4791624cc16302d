"""The ``mosaic-fast`` command line. Subcommands live in their own modules and are imported on
first use, so ``mosaic-fast --help`` stays fast (torch is not imported until a command runs)."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from types import FrameType
from typing import TYPE_CHECKING, TextIO, cast

import click

# name -> (module, attribute, one-line help)
_COMMANDS = {
    "run": ("mosaic_fast.cli.run", "run", "Run one Mosaic Learning experiment."),
    "datasets": (
        "mosaic_fast.cli.datasets",
        "datasets",
        "List datasets and where a local copy was found.",
    ),
    "sweep": ("mosaic_fast.cli.sweep", "sweep", "Run a grid of experiments and summarise them."),
    "plot": ("mosaic_fast.cli.plot", "plot", "Draw the paper's figures from run or sweep folders."),
    "theory": (
        "mosaic_fast.cli.theory",
        "theory",
        "Consensus analysis of the quadratic model (paper Sec. 4.2).",
    ),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module_name, attr, _ = _COMMANDS[cmd_name]
        return cast(click.Command, getattr(importlib.import_module(module_name), attr))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, _, help_) in _COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mosaic-fast")
def main() -> None:
    """mosaic-fast: decentralized learning with model fragmentation (Mosaic Learning)."""
    _log_to_stderr()
    click.get_current_context().call_on_close(_trackers_finished)


def _trackers_finished() -> None:
    """A command ends once the trackers of its runs have written everything (they finish in the
    background after each run); nothing to wait for when no run was tracked."""
    tracking = sys.modules.get("mosaic_fast.tracking")
    if tracking is not None:
        tracking.wait()


# StreamHandler is subscriptable at run time only from Python 3.11.
if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:
    _StreamHandler = logging.StreamHandler


class _Stderr(_StreamHandler):
    """Plain lines on whatever ``sys.stderr`` is now (click's test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING else text


def _log_to_stderr() -> None:
    """mosaic-fast's log records (``logging.getLogger("mosaic_fast")``: tracker notes, warnings)
    as plain lines on standard error, unless a logging configuration already handles them."""
    package = logging.getLogger("mosaic_fast")
    if logging.getLogger().handlers or any(isinstance(h, _Stderr) for h in package.handlers):
        return
    package.addHandler(_Stderr())
    package.setLevel(logging.INFO)
    package.propagate = False


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    line: str | None = None,
) -> str:
    return f"warning: {message}\n"


class _Interrupted(SystemExit):
    """Ctrl-C outside a run's own handler (while the command starts, loads data, ...)."""


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    """SIGINT outside a run's own handler: the command ends with ``Error: interrupted`` (exit
    130), wherever it was (a SystemExit, which click passes on, unlike a KeyboardInterrupt that
    it prints as "Aborted!"). The process is then on its way out: a second Ctrl-C must not
    break the unwinding (or torch's exit handlers) with a traceback."""
    if _torch_importing():
        _interrupt_after_torch_import()
        return
    _ignore_interrupts()
    raise _Interrupted(130)


def _torch_importing() -> bool:
    """Whether torch is mid-import. Its C++ runs Python there (pybind11), and an exception raised
    inside such a call aborts the process (``terminate called after throwing ...``)."""
    for name, module in list(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        if name.partition(".")[0] == "torch" and getattr(spec, "_initializing", False):
            return True
    return False


_resend: list[threading.Thread] = []  # the one thread that re-sends a deferred Ctrl-C


def _interrupt_after_torch_import() -> None:
    """Send the Ctrl-C again once torch's import is over (about a second at most)."""
    if _resend:
        return

    def resend() -> None:
        while _torch_importing():
            time.sleep(0.02)
        _resend.clear()  # a later torch import may defer this one again
        os.kill(os.getpid(), signal.SIGINT)

    _resend.append(threading.Thread(target=resend, name="mosaic-fast-interrupt", daemon=True))
    _resend[0].start()


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def console() -> None:
    """The ``mosaic-fast`` executable (and ``python -m mosaic_fast``): ``main``, then an exit that
    a torch.distributed run needs (``engine.distributed.exit_process``)."""
    warnings.formatwarning = _one_line_warning  # a command line shows warnings as one line
    try:
        # Inside the try: a Ctrl-C right after the handler is set is caught below.
        signal.signal(signal.SIGINT, _interrupt_once)
        main(prog_name="mosaic-fast")
        code: int | str | None = 0
    except _Interrupted:
        click.echo("Error: interrupted", err=True)
        code = 130
    except SystemExit as exc:
        code = exc.code
    _ignore_interrupts()  # ending: a late Ctrl-C must not interrupt the exit handlers
    if "torch.distributed" not in sys.modules:  # no process group without it (--help stays fast)
        sys.exit(code)
    try:
        from ..engine.distributed import exit_process
    except ImportError:  # a Ctrl-C cut torch's import short: no process group can exist
        sys.exit(code)
    exit_process(code)


__all__ = ["console", "main"]
