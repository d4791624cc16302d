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
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import MosaicValueError
from ..kernel_torch import fragment_columns
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
        # NCCL reduces device tensors only; gloo CPU ones.
        on = torch.device("cuda", torch.cuda.current_device()) if _nccl() else torch.device("cpu")
        t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=on)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def _columns(X: torch.Tensor, coords: slice | torch.Tensor) -> torch.Tensor:
    return X[:, coords] if isinstance(coords, slice) else X.index_select(1, coords)


def _width(coords: slice | torch.Tensor) -> int:
    return coords.stop - coords.start if isinstance(coords, slice) else len(coords)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _nccl() -> bool:
    return dist.get_backend() == "nccl"


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
        self.columns = fragment_columns(self.fragments, self.device)

    def any_rank(self, flag: bool) -> bool:
        return self.ranks.any_true(flag)

    def _local_steps(self, t: int, graphs: Any) -> torch.Tensor:
        """The block's ``local_steps`` steps, then the fragments other ranks' nodes receive from
        this block (one ``all_to_all_single``) and every node's losses on every rank."""
        cfg = self.cfg
        block = torch.zeros(len(self.block_nodes), device=self.device)
        with self._seeded_randomness(t):
            for _ in range(cfg.local_steps):  # a block of every node steps as one process would
                batch = self.node_data.batch(self.sampler.next(cfg.batch_size, self.block_nodes))
                block += self.trainer.step_rows(self.X, self.block_rows, batch)
        total = torch.zeros(cfg.nodes, device=self.device)
        lo, hi = self.ranks.block
        total[lo:hi] = block
        # Every node's losses on every rank: one sum in which each entry has one non-zero term.
        dist.all_reduce(total)
        exchanged = (self.ranks.world - 1) * cfg.nodes * total.element_size()
        if self.ranks.world > 1:
            exchanged += self._exchange(graphs)
            self._stale = True  # other blocks' rows now hold only the fragments received
        self.bytes_between_ranks = float(exchanged)
        return total

    def _exchange(self, graphs: Any) -> int:
        """Send every (sender of this block, fragment) that some node of another rank receives
        in ``graphs`` to that rank, once, and write what arrives into ``X``; returns the bytes
        all ranks received. Every rank derives the same plan from the same graphs."""
        plan, world, me, X = self._plan(graphs), self.ranks.world, self.ranks.rank, self.X
        sizes = [
            [
                sum(len(rows) * _width(cols) for rows, cols in plan[src][dest])
                for dest in range(world)
            ]
            for src in range(world)
        ]
        send = self._buffer("send", sum(sizes[me]))
        at = 0
        for dest in range(world):
            for rows, cols in plan[me][dest]:
                count = len(rows) * _width(cols)
                torch.index_select(
                    _columns(X, cols), 0, rows, out=send[at : at + count].view(len(rows), -1)
                )
                at += count
        incoming = [sizes[src][me] for src in range(world)]
        receive = self._buffer("receive", sum(incoming))
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
        return X.element_size() * sum(map(sum, sizes))

    def _buffer(self, name: str, numel: int) -> torch.Tensor:
        """A float32 vector of ``numel`` reused across rounds (no fresh pages every round)."""
        store = self._buffers.get(name)
        if store is None or store.numel() < numel:
            store = self._buffers[name] = torch.empty(numel, device=self.device)
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
