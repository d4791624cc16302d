"""Where the nodes' local steps run: in one process, or in blocks on ``torch.distributed`` ranks.

Both placements answer the same questions of a synchronous simulation: run a round's local steps
(:meth:`Placement.local_steps`), make every row of the buffer current (:meth:`Placement.current`),
agree on a flag, evaluate, gather the state a checkpoint holds. The simulation does not know
which one it runs on.

Ranks (:class:`RankBlocks`): rank ``r`` of ``R`` trains a contiguous block of nodes with
``Trainer.step_rows``; every rank draws the same graphs from the seed, so after the local steps
one ``all_to_all_single`` carries each (sender, fragment) that some node of another rank receives
to that rank once, or, where steps write few coordinates (``Trainer.write_log``) and every rank
holds every current row, each rank broadcasts the pieces of rows its steps wrote instead, when
that is fewer bytes (see :mod:`.distributed`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist

from ..kernel.torch_path import fragment_columns
from .distributed import Ranks


class Placement:
    """One process: every node's steps here, every row current, nothing to agree on."""

    def attach(self, sim: Any) -> None:
        """Called once the simulation holds its parts."""

    def local_steps(self, sim: Any, t: int, graphs: Any) -> torch.Tensor:
        """Round ``t``'s local steps of every node (before gossip over ``graphs``); returns each
        node's summed losses (n,)."""
        cfg = sim.cfg
        total = torch.zeros(cfg.nodes, device=sim.device)
        # The round's sample indices in one copy that does not block the host; each step's are
        # a view of them, so the steps queue on the device without a sync.
        idx = sim.node_data.indices(sim.sampler.next_steps(cfg.local_steps, cfg.batch_size))
        with sim._seeded_randomness(t):
            for step in range(cfg.local_steps):
                batch = sim.node_data.batch(idx[step])
                total += sim.trainer.step(sim.X, batch)
        return total

    def current(self, X: torch.Tensor) -> torch.Tensor:
        """``X`` with every row current."""
        return X

    def any_rank(self, flag: bool) -> bool:
        """Whether ``flag`` holds on any rank."""
        return flag

    def evaluated(self, sim: Any, evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The evaluation record ``evaluate`` makes."""
        return evaluate()

    def gather_state(self, sim: Any) -> None:
        """Make the per-node state a checkpoint holds whole here (nothing to do)."""


OneProcess = Placement


class RankBlocks(Placement):
    """This rank's block of nodes (see the module docstring); everything else is the
    one-process engine on an identical buffer."""

    def __init__(self, ranks: Ranks) -> None:
        self.ranks = ranks
        self.bytes_between_ranks = 0.0
        self._stale = False  # whether other blocks' rows miss fragments nobody here received
        self._buffers: dict[str, torch.Tensor] = {}

    def attach(self, sim: Any) -> None:
        sim.trainer.optimizer.require_row_steps()
        self.sim = sim
        lo, hi = self.ranks.block
        self.block_nodes = np.arange(lo, hi, dtype=np.int64)
        self.block_rows = torch.arange(lo, hi, device=sim.device)
        self._none = torch.zeros(0, dtype=torch.int64, device=sim.device)
        self.columns = fragment_columns(sim.fragments, sim.device)

    def any_rank(self, flag: bool) -> bool:
        return self.ranks.any_true(flag)

    def local_steps(self, sim: Any, t: int, graphs: Any) -> torch.Tensor:
        """The block's ``local_steps`` steps, then what other ranks need of them (the written
        pieces of rows or the received fragments, whichever is fewer bytes) and every node's
        losses on every rank."""
        cfg, trainer = sim.cfg, sim.trainer
        lo, hi = self.ranks.block
        # Written pieces can replace fragments only while every rank holds every current row.
        log = self.ranks.world > 1 and bool(trainer.write_widths) and not self._stale
        trainer.write_log = {} if log else None
        self.bytes_between_ranks = 0.0
        block = torch.zeros(hi - lo, device=sim.device)
        with sim._seeded_randomness(t):
            for _ in range(cfg.local_steps):  # a block of every node steps as one process would
                batch = sim.node_data.batch(sim.sampler.next(cfg.batch_size, self.block_nodes))
                block += trainer.step_rows(sim.X, self.block_rows, batch)
        written, trainer.write_log = trainer.write_log, None
        if self.ranks.world == 1:
            return block
        return self._share(block, written, graphs)

    def _share(self, block: torch.Tensor, written: Any, graphs: Any) -> torch.Tensor:
        """Every node's losses, and the rows other ranks need, exchanged after the steps."""
        trainer, X = self.sim.trainer, self.sim.X
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
        if pieces is not None and self._piece_bytes(counts) < _bytes(sizes, X):
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
        device = self.sim.device
        mine = torch.zeros(len(counts) + self.ranks.widest, dtype=torch.float64, device=device)
        mine[: len(counts)] = torch.tensor(counts, dtype=torch.float64)
        mine[len(counts) : len(counts) + len(block)] = block
        rows = torch.empty(self.ranks.world, len(mine), dtype=torch.float64, device=device)
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
        return torch.int32 if self.ranks.widest * self.sim.X.shape[1] < 2**31 else torch.int64

    def _piece_bytes(self, counts: list[list[int]]) -> int:
        """Bytes all ranks receive when every rank's written pieces (id and values, padded to
        the longest rank's) go to every other rank; ``counts[rank][g]``: pieces of width
        ``write_widths[g]``."""
        world = self.ranks.world
        return world * (world - 1) * self._packed_length(counts) * self._index_dtype().itemsize

    def _packed_length(self, counts: list[list[int]]) -> int:
        widths: tuple[int, ...] = self.sim.trainer.write_widths
        return max(sum(c * (1 + w) for c, w in zip(row, widths, strict=True)) for row in counts)

    def _share_pieces(self, pieces: dict[int, torch.Tensor], counts: list[list[int]]) -> int:
        """Every block's written pieces to every other rank, written into ``X``: one all-gather
        of integer buffers holding per width the piece ids, then the values' bits; returns the
        bytes all ranks received."""
        dtype, X, world = self._index_dtype(), self.sim.X, self.ranks.world
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
            for w, c in zip(self.sim.trainer.write_widths, row, strict=True):
                ids = packed[owner, at : at + c].long()
                values = packed[owner, at + c : at + c + c * w].to(torch.int32).view(X.dtype)
                X[lo:hi].view(-1, w).index_copy_(0, ids, values.view(c, w))
                at += c * (1 + w)
        return self._piece_bytes(counts)

    def _exchange(
        self,
        plan: list[list[list[tuple[torch.Tensor, slice | torch.Tensor]]]],
        sizes: list[list[int]],
    ) -> int:
        """Send every (sender of this block, fragment) that some node of another rank receives
        (``plan``) to that rank, once, and write what arrives into ``X``; returns the bytes all
        ranks received. Every rank derives the same plan from the same graphs."""
        world, me, X = self.ranks.world, self.ranks.rank, self.sim.X
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
            store = self._buffers[name] = torch.empty(numel, dtype=dtype, device=self.sim.device)
        return store[:numel]

    def _plan(self, graphs: Any) -> list[list[list[tuple[torch.Tensor, slice | torch.Tensor]]]]:
        """``plan[src][dest]``: (sender rows of rank src's block, fragment coordinates) pairs, per
        fragment in order, that rank dest needs from rank src this round."""
        world, n = self.ranks.world, self.sim.cfg.nodes
        owner = np.repeat(np.arange(world), [hi - lo for lo, hi in self.ranks.blocks])
        plan: list[list[list[tuple[torch.Tensor, slice | torch.Tensor]]]] = [
            [[] for _ in range(world)] for _ in range(world)
        ]
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
                            (torch.as_tensor(rows, device=self.sim.device), self.columns[k])
                        )
        return plan

    def current(self, X: torch.Tensor) -> torch.Tensor:
        """The buffer with every block's current rows (fetched from their owners when the last
        exchange sent only fragments)."""
        if self._stale:
            self.ranks.share_rows(X)
            self._stale = False
        return X

    def evaluated(self, sim: Any, evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Rank 0's evaluation (all ranks hold the same buffer), on every rank, plus the bytes
        all ranks received in the last round's exchange."""
        sim.params()  # every row current
        rec = evaluate() if self.ranks.is_root else None
        rec = cast(dict[str, Any], self.ranks.share(rec))  # rank 0's record
        rec["bytes_between_ranks"] = self.bytes_between_ranks if sim.rounds_done else 0.0
        return rec

    def gather_state(self, sim: Any) -> None:
        """Every block's per-node state from its owner: optimizer rows, module buffers, data
        order (a collective: every rank calls it at the same point)."""
        sim.params()
        for tensor in sim.trainer.optimizer.node_tensors():
            self.ranks.share_rows(tensor)
        for buffer in sim.model.node_buffers():
            self.ranks.share_rows(buffer)
        lo, hi = self.ranks.block
        mine = sim.sampler.state_dict()
        states = self.ranks.gather({k: v[lo:hi] for k, v in mine.items()})
        merged = {k: [item for state in states for item in state[k]] for k in mine}
        sim.sampler.load_state_dict(merged)


def _columns(X: torch.Tensor, coords: slice | torch.Tensor) -> torch.Tensor:
    return X[:, coords] if isinstance(coords, slice) else X.index_select(1, coords)


def _width(coords: slice | torch.Tensor) -> int:
    return coords.stop - coords.start if isinstance(coords, slice) else len(coords)


def _plan_sizes(
    plan: list[list[list[tuple[torch.Tensor, slice | torch.Tensor]]]],
) -> list[list[int]]:
    """``sizes[src][dest]``: coordinates rank src sends rank dest under ``plan``."""
    return [
        [sum(len(rows) * _width(cols) for rows, cols in to_dest) for to_dest in from_src]
        for from_src in plan
    ]


def _bytes(sizes: list[list[int]], X: torch.Tensor) -> int:
    return X.element_size() * sum(map(sum, sizes))
