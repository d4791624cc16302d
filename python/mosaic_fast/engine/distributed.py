"""Nodes sharded over ``torch.distributed`` ranks (launched by torchrun), same results as one process.

This module joins the ranks (:class:`Ranks`); :class:`.placement.RankBlocks` runs a synchronous
simulation's steps on them.

Rank ``r`` of ``R`` trains a contiguous block of nodes (``blocks``: the first ``n % R`` ranks hold
one node more) with ``Trainer.step_rows``: a node's minibatches come from its own stream and its
optimizer state is its own, so the block-wise steps equal the one-process steps exactly for the
loop and sparse trainers (and the grouped ones on CPU for blocks of two or more nodes). Every rank
draws the same graphs from the seed, so every rank knows who sends what to whom: after the local
steps, one ``all_to_all_single`` carries each (sender, fragment) that some node of another rank
receives to that rank once (DESIGN §4; never more than whole rows would take, and 2-8x less with
many ranks or sparse graphs). Every rank then averages its buffer with the same Rust kernel: its
own block's rows come out bit for bit as in one process; other blocks' rows are fetched from their
owners only when the whole buffer is read (evaluations, checkpoints, callbacks: ``params``).
Where steps write few coordinates (plain SGD on MF: ``Trainer.write_log``) and every rank holds
every current row, each rank broadcasts the pieces of rows its steps wrote instead, when that is
fewer bytes: every row then stays current on every rank.

Rank 0 alone evaluates and writes the run folder; records, its checks and errors reach the other
ranks by broadcast, so all ranks take the same branches. Checkpoints gather every block's per-node
state (optimizer rows, module buffers, data order) and hold the whole network: a run resumes with
any number of ranks.

Backend: gloo on CPU, NCCL on CUDA (``cuda:LOCAL_RANK``). A collective that waits longer than
``dist_timeout`` seconds fails; a rank that dies closes its connections, which fails the others'
next collective at once.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from ..errors import MosaicValueError
from ..launch import launch_problem


def blocks(n_nodes: int, world: int) -> list[tuple[int, int]]:
    """Contiguous ``[lo, hi)`` node blocks of ``world`` ranks; the first ``n % world`` hold one more."""
    base, extra = divmod(n_nodes, world)
    out, lo = [], 0
    for r in range(world):
        hi = lo + base + (1 if r < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out


@dataclass(frozen=True)
class Ranks:
    """This process's place among the ranks: ``rank`` of ``world``, and every rank's block."""

    rank: int
    world: int
    blocks: tuple[tuple[int, int], ...]

    @property
    def block(self) -> tuple[int, int]:
        return self.blocks[self.rank]

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def widest(self) -> int:
        """Nodes in the largest block."""
        return max(hi - lo for lo, hi in self.blocks)

    @classmethod
    def start(cls, n_nodes: int, device_type: str, timeout_s: float) -> Ranks:
        """Join (or reuse) the process group torchrun set up; refuses more ranks than nodes."""
        problem = launch_problem(True)
        if problem is not None:
            raise MosaicValueError(problem)
        if not dist.is_initialized():
            backend = "nccl" if device_type == "cuda" else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
            # Left to interpreter teardown, gloo's threads can abort the process after the run.
            atexit.register(_leave_process_group)
        rank, world = dist.get_rank(), dist.get_world_size()
        if world > n_nodes:
            raise MosaicValueError(
                f"{world} ranks for nodes={n_nodes}: every rank needs at least one node; "
                f"use at most {n_nodes} ranks"
            )
        return cls(rank, world, tuple(blocks(n_nodes, world)))

    def device(self, device: torch.device) -> torch.device:
        """The device this rank computes on: ``cuda:LOCAL_RANK`` for CUDA runs."""
        if device.type == "cuda":
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return device

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        box = [value if self.is_root else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def share_rows(self, tensor: torch.Tensor) -> None:
        """Make every rank's ``tensor`` (leading dim = nodes) hold each block's rows from its
        owner, in place."""
        for owner, (lo, hi) in enumerate(self.blocks):
            dist.broadcast(tensor[lo:hi], src=owner)

    def barrier(self) -> None:
        """Wait until every rank got here."""
        dist.barrier()

    def any_true(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank (a signal one rank received stops them all)."""
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=_collective_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather_counts(self, counts: list[int]) -> list[list[int]]:
        """Every rank's ``counts`` (equally long), in rank order (one tensor collective, no
        pickling)."""
        on = _collective_device()
        mine = torch.tensor(counts, dtype=torch.int64, device=on)
        out = torch.empty(self.world * len(counts), dtype=torch.int64, device=on)
        dist.all_gather_into_tensor(out, mine)
        return out.view(self.world, len(counts)).tolist()


def _leave_process_group() -> None:
    """At interpreter exit (processes of users' own scripts)."""
    if dist.is_initialized():
        dist.destroy_process_group()
        # gloo's workers free their last collectives' tensors a moment after the collective
        # returns, and need the GIL for it; during interpreter teardown taking the GIL ends the
        # thread and aborts the process (pytorch/pytorch#179291). Let them finish first.
        time.sleep(0.1)


def exit_process(code: int | str | None) -> NoReturn:
    """End a ``mosaic-fast`` process with exit status ``code`` (``sys.exit`` semantics); after a
    distributed run, without interpreter teardown, where gloo's threads can still abort the
    process (see ``_leave_process_group``). Every file is closed by then."""
    if not (dist.is_available() and dist.is_initialized()):  # torch builds without distributed
        sys.exit(code)
    dist.destroy_process_group()  # no teardown follows, so gloo's workers need no time
    if isinstance(code, str):
        print(code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def _collective_device() -> torch.device:
    """Where small bookkeeping tensors live for collectives: NCCL reduces device tensors only,
    gloo CPU ones."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
