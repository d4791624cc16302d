"""What a run shows on standard error while it runs: a progress bar, or plain lines."""

from __future__ import annotations

import sys
import time
from typing import Any

from tqdm import tqdm

from ..settings import ExperimentConfig


def _postfix(rec: dict[str, Any]) -> str:
    """The bar's text for the last evaluation, with its round: the bar moves on every round, the
    metrics only at evaluations."""
    return (
        f"{rec['metric']}={rec['node_mean']:.4f} avg={rec['avg_model']:.4f} "
        f"cons={rec['consensus_distance']:.3g} (round {rec['round']})"
    )


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """What the run shows on standard error: the tqdm bar on a terminal; elsewhere (a file, a CI
    log) one plain line per evaluation (round, metrics, elapsed, ETA), since the bar's refreshes
    would run together into one endless line; nothing when ``quiet``."""

    def __init__(self, cfg: ExperimentConfig, done: int, quiet: bool) -> None:
        self.desc, self.total, self.first = f"{cfg.dataset} K={cfg.K}", cfg.rounds, done
        self.start = time.perf_counter()
        self.lines = not quiet and not _is_terminal(sys.stderr)
        self.bar = tqdm(
            total=cfg.rounds,
            initial=done,
            disable=quiet or self.lines,
            desc=self.desc,
            unit="round",
            dynamic_ncols=True,
        )

    def evaluated(self, rec: dict[str, Any], done: int) -> None:
        if self.lines:
            elapsed = time.perf_counter() - self.start
            ran = done - self.first
            eta = _clock(elapsed / ran * (self.total - done)) if ran > 0 else "?"
            sim = rec.get("sim_time_s")
            sim_text = f" sim {sim:.4g}s" if isinstance(sim, (int, float)) else ""
            print(
                f"{self.desc} round {rec['round']}/{self.total}: {rec['metric']} "
                f"{rec['node_mean']:.4f} (avg model {rec['avg_model']:.4f}, consensus "
                f"{rec['consensus_distance']:.3g}){sim_text} elapsed {_clock(elapsed)} eta {eta}",
                file=sys.stderr,
                flush=True,
            )
        else:
            self.bar.set_postfix_str(_postfix(rec))

    def update(self) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False
