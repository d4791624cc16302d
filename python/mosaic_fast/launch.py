"""How this process was launched: alone, or as one rank of a torchrun job (no torch import here,
so the command line can ask cheaply)."""

from __future__ import annotations

import os

# Set by torchrun (and torch.distributed.launch) in every process it starts.
_LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (its rendezvous variables are set)."""
    return all(name in os.environ for name in _LAUNCHER_VARIABLES)


def process_rank() -> int | None:
    """This process's rank when torchrun started it, else None."""
    return int(os.environ["RANK"]) if launched_by_torchrun() else None


def launch_problem(distributed: bool) -> str | None:
    """Why this process cannot run with ``distributed`` as set (one line), or None."""
    if distributed and not launched_by_torchrun():
        return (
            "distributed=True needs processes started by torchrun, e.g. torchrun "
            "--nproc-per-node 2 -m mosaic_fast run --distributed ...; without torchrun, "
            "run without --distributed"
        )
    if not distributed and launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        return (
            f"torchrun started this process as one of {os.environ['WORLD_SIZE']} ranks: add "
            "--distributed to shard the nodes over them"
        )
    return None
