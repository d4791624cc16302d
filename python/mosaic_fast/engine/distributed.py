"""Nodes sharded over ``torch.distributed`` ranks (launched by torchrun), same results as one process.

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

import numpy as np
import torch
import torch.distributed as dist

from ..errors import MosaicValueError
from ..kernel.torch_path import fragment_columns
from ..launch import launch_problem
from .simulation import Simulation


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


def _columns(X: torch.Tensor, coords: slice | torch.Tensor) -> torch.Tensor:
    return X[:, coords] if isinstance(coords, slice) else X.index_select(1, coords)


def _width(coords: slice | torch.Tensor) -> int:
    return coords.stop - coords.start if isinstance(coords, slice) else len(coords)


def _plan_sizes(plan: list) -> list[list[int]]:
    """``sizes[src][dest]``: coordinates rank src sends rank dest under ``plan``."""
    return [
        [sum(len(rows) * _width(cols) for rows, cols in to_dest) for to_dest in from_src]
        for from_src in plan
    ]


def _bytes(sizes: list[list[int]], X: torch.Tensor) -> int:
    return X.element_size() * sum(map(sum, sizes))


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


class DistributedSimulation(Simulation):
    """A :class:`Simulation` whose local steps run block-wise on the ranks (see the module
    docstring); everything else is the one-process engine on an identical buffer."""

    def __init__(self, cfg, device, ranks: Ranks, **kwargs: Any) -> None:
        super().__init__(cfg, device, **kwargs)
        self.trainer.optimizer.require_row_steps()
        self.ranks = ranks
        lo, hi = ranks.block
        self.block_nodes = np.arange(lo, hi, dtype=np.int64)
        self.block_rows = torch.arange(lo, hi, device=self.device)
        self.bytes_between_ranks = 0.0
        self._stale = False  # whether other blocks' rows miss fragments nobody here received
        self._buffers: dict[str, torch.Tensor] = {}
        self._none = torch.zeros(0, dtype=torch.int64, device=self.device)
        self.columns = fragment_columns(self.fragments, self.device)

    def any_rank(self, flag: bool) -> bool:
        return self.ranks.any_true(flag)

    def _local_steps(self, t: int, graphs: Any) -> torch.Tensor:
        """The block's ``local_steps`` steps, then what other ranks need of them (the written
        pieces of rows or the received fragments, whichever is fewer bytes) and every node's
        losses on every rank."""
        cfg, trainer = self.cfg, self.trainer
        lo, hi = self.ranks.block
        # Written pieces can replace fragments only while every rank holds every current row.
        log = self.ranks.world > 1 and bool(trainer.write_widths) and not self._stale
        trainer.write_log = {} if log else None
        self.bytes_between_ranks = 0.0
        block = torch.zeros(hi - lo, device=self.device)
        with self._seeded_randomness(t):
            for _ in range(cfg.local_steps):  # a block of every node steps as one process would
                batch = self.node_data.batch(self.sampler.next(cfg.batch_size, self.block_nodes))
                block += trainer.step_rows(self.X, self.block_rows, batch)
        written, trainer.write_log = trainer.write_log, None
        world = self.ranks.world
        if world == 1:
            return block
        pieces = None
        if written is not None:
            pieces = {
                w: torch.unique(torch.cat(written.get(w, [self._none])))
                for w in trainer.write_widths
            }
        # Every node's losses and every rank's piece counts on every rank, in one collective.
        total, counts, exchanged = self._gather_losses(
            block, [len(ids) for ids in pieces.values()] if pieces is not None else []
        )
        plan = self._plan(graphs)
        sizes = _plan_sizes(plan)
        if pieces is not None and self._piece_bytes(counts) < _bytes(sizes, self.X):
            exchanged += self._share_pieces(pieces, counts)  # every row stays current
        else:
            exchanged += self._exchange(plan, sizes)
            self._stale = True  # other blocks' rows now hold only the fragments received
        self.bytes_between_ranks = float(exchanged)
        return total

    def _gather_losses(
        self, block: torch.Tensor, counts: list[int]
    ) -> tuple[torch.Tensor, list[list[int]], int]:
        """Every node's losses (n,), every rank's ``counts`` (rank order), and the bytes all
        ranks received: one all-gather of float64 rows, ``counts`` then the block's losses
        (float32 values and integers below 2**53 are exact in float64)."""
        mine = torch.zeros(len(counts) + self.ranks.widest, dtype=torch.float64, device=self.device)
        mine[: len(counts)] = torch.tensor(counts, dtype=torch.float64)
        mine[len(counts) : len(counts) + len(block)] = block
        rows = torch.empty(self.ranks.world, len(mine), dtype=torch.float64, device=self.device)
        dist.all_gather_into_tensor(rows.view(-1), mine)
        total = torch.cat(
            [
                rows[r, len(counts) : len(counts) + hi - lo]
                for r, (lo, hi) in enumerate(self.ranks.blocks)
            ]
        ).to(block.dtype)
        world = self.ranks.world
        return total, rows[:, : len(counts)].long().tolist(), world * (world - 1) * mine.nbytes

    def _index_dtype(self) -> torch.dtype:
        """int32 piece ids while every block's rows hold fewer than 2**31 coordinates."""
        return torch.int32 if self.ranks.widest * self.X.shape[1] < 2**31 else torch.int64

    def _piece_bytes(self, counts: list[list[int]]) -> int:
        """Bytes all ranks receive when every rank's written pieces (id and values, padded to
        the longest rank's) go to every other rank; ``counts[rank][g]``: pieces of width
        ``write_widths[g]``."""
        world = self.ranks.world
        return world * (world - 1) * self._packed_length(counts) * self._index_dtype().itemsize

    def _packed_length(self, counts: list[list[int]]) -> int:
        widths = self.trainer.write_widths
        return max(sum(c * (1 + w) for c, w in zip(row, widths, strict=True)) for row in counts)

    def _share_pieces(self, pieces: dict[int, torch.Tensor], counts: list[list[int]]) -> int:
        """Every block's written pieces to every other rank, written into ``X``: one all-gather
        of integer buffers holding per width the piece ids, then the values' bits; returns the
        bytes all ranks received."""
        dtype, X, world = self._index_dtype(), self.X, self.ranks.world
        length, me = self._packed_length(counts), self.ranks.rank
        packed = self._buffer("pieces", world * length, dtype).view(world, length)
        lo, hi = self.ranks.block
        at = 0
        for (w, ids), c in zip(pieces.items(), counts[me], strict=True):
            packed[me, at : at + c] = ids
            values = X[lo:hi].reshape(-1, w).index_select(0, ids)
            packed[me, at + c : at + c + c * w] = values.view(torch.int32).reshape(-1)
            at += c * (1 + w)
        dist.all_gather_into_tensor(packed.view(-1), packed[me].clone())
        for owner, row in enumerate(counts):
            if owner == me:
                continue
            lo, hi = self.ranks.blocks[owner]
            at = 0
            for w, c in zip(self.trainer.write_widths, row, strict=True):
                ids = packed[owner, at : at + c].long()
                values = packed[owner, at + c : at + c + c * w].to(torch.int32).view(X.dtype)
                X[lo:hi].view(-1, w).index_copy_(0, ids, values.view(c, w))
                at += c * (1 + w)
        return self._piece_bytes(counts)

    def _exchange(self, plan: list, sizes: list[list[int]]) -> int:
        """Send every (sender of this block, fragment) that some node of another rank receives
        (``plan``) to that rank, once, and write what arrives into ``X``; returns the bytes all
        ranks received. Every rank derives the same plan from the same graphs."""
        world, me, X = self.ranks.world, self.ranks.rank, self.X
        send = self._buffer("send", sum(sizes[me]), X.dtype)
        at = 0
        for dest in range(world):
            for rows, cols in plan[me][dest]:
                count = len(rows) * _width(cols)
                torch.index_select(
                    _columns(X, cols), 0, rows, out=send[at : at + count].view(len(rows), -1)
                )
                at += count
        incoming = [sizes[src][me] for src in range(world)]
        receive = self._buffer("receive", sum(incoming), X.dtype)
        dist.all_to_all_single(receive, send, incoming, sizes[me])
        at = 0
        for src in range(world):
            for rows, cols in plan[src][me]:
                count = len(rows) * _width(cols)
                values = receive[at : at + count].view(len(rows), -1)
                if isinstance(cols, slice):
                    X[:, cols].index_copy_(0, rows, values)
                else:
                    X[rows.unsqueeze(1), cols.unsqueeze(0)] = values
                at += count
        return _bytes(sizes, X)

    def _buffer(self, name: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
        """A vector of ``numel`` reused across rounds (no fresh pages every round)."""
        store = self._buffers.get(name)
        if store is None or store.numel() < numel or store.dtype != dtype:
            store = self._buffers[name] = torch.empty(numel, dtype=dtype, device=self.device)
        return store[:numel]

    def _plan(self, graphs: Any) -> list[list[list[tuple[torch.Tensor, torch.Tensor]]]]:
        """``plan[src][dest]``: (sender rows of rank src's block, fragment coordinates) pairs, per
        fragment in order, that rank dest needs from rank src this round."""
        world, n = self.ranks.world, self.cfg.nodes
        owner = np.repeat(np.arange(world), [hi - lo for lo, hi in self.ranks.blocks])
        plan: list[list[list]] = [[[] for _ in range(world)] for _ in range(world)]
        for k in range(graphs.n_fragments):
            indptr, senders = graphs.in_csr(k)
            senders = np.asarray(senders, dtype=np.int64)
            receivers = np.repeat(np.arange(n), np.diff(np.asarray(indptr)))
            cross = owner[senders] != owner[receivers]
            pairs = np.unique(senders[cross] * world + owner[receivers[cross]])
            src_nodes, dests = pairs // world, pairs % world
            for src_rank in range(world):
                for dest in range(world):
                    rows = src_nodes[(owner[src_nodes] == src_rank) & (dests == dest)]
                    if len(rows):
                        plan[src_rank][dest].append(
                            (torch.as_tensor(rows, device=self.device), self.columns[k])
                        )
        return plan

    def params(self) -> torch.Tensor:
        """The buffer with every block's current rows (fetched from their owners when the last
        exchange sent only fragments)."""
        if self._stale:
            self.ranks.share_rows(self.X)
            self._stale = False
        return self.X

    @torch.no_grad()
    def metrics(self) -> dict[str, Any]:
        """Rank 0's evaluation (all ranks hold the same buffer), on every rank, plus the bytes
        all ranks received in the last round's exchange."""
        self.params()  # every row current
        rec = super().metrics() if self.ranks.is_root else None
        rec = self.ranks.share(rec)
        rec["bytes_between_ranks"] = self.bytes_between_ranks if self.rounds_done else 0.0
        return rec

    def _gather_node_state(self) -> None:
        """Every block's per-node state from its owner: optimizer rows, module buffers, data order."""
        for tensor in self.trainer.optimizer.node_tensors():
            self.ranks.share_rows(tensor)
        if self.module_model is not None:
            for buffer in self.module_model.buffers.values():
                self.ranks.share_rows(buffer)
        lo, hi = self.ranks.block
        mine = self.sampler.state_dict()
        states = self.ranks.gather({k: v[lo:hi] for k, v in mine.items()})
        merged = {k: [item for state in states for item in state[k]] for k in mine}
        self.sampler.load_state_dict(merged)

    def state_dict(self) -> dict[str, Any]:
        """The whole network's state, as one process holds it (a collective: every rank calls it
        at the same point); it resumes with any number of ranks, or none."""
        self.params()
        self._gather_node_state()
        return super().state_dict()
