"""``run_experiment``: a Simulation driven round by round, with the run folder and resumable checkpoints."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from .. import runfiles as records
from ..config import ExperimentConfig
from ..errors import MosaicValueError
from .simulation import Simulation, resolve_device

# Settings that may differ between the interrupted run and its resumption.
_RESUMABLE_CHANGES = ("rounds", "checkpoint_every", "device", "data_dir")


def _versions() -> dict[str, str]:
    return {
        "mosaic_fast": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def summarize(
    cfg: ExperimentConfig, history: list[dict[str, Any]], lower_is_better: bool
) -> dict[str, Any]:
    pick = min if lower_is_better else max
    best = pick(history, key=lambda r: r["node_mean"])
    return {
        "complete": True,
        "rounds": cfg.rounds,
        "final": history[-1],
        "best_node_mean": best["node_mean"],
        "best_node_mean_round": best["round"],
        "best_avg_model": pick(r["avg_model"] for r in history),
        "wall_time_s": history[-1]["wall_time_s"],
    }


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg_dict.items() if k not in _RESUMABLE_CHANGES}


def _postfix(rec: dict[str, Any]) -> dict[str, str]:
    return {
        rec["metric"]: f"{rec['node_mean']:.4f}",
        "avg": f"{rec['avg_model']:.4f}",
        "cons": f"{rec['consensus_distance']:.3g}",
    }


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | Path | None,
    *,
    quiet: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Run one experiment and return its summary (see the run folder contract in DESIGN/README).

    ``out_dir`` None keeps everything in memory. A folder that already holds metrics is refused
    unless ``resume`` is set; ``resume`` continues from ``out_dir/checkpoint.pt`` (or starts over
    when there is no checkpoint yet) and returns the stored summary of a complete run.
    """
    cfg = config.resolved()
    device = resolve_device(cfg.device)
    out = Path(out_dir) if out_dir is not None else None
    checkpoint = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        summary_path = out / records.SUMMARY
        if resume and summary_path.exists():
            summary = records.read_json(summary_path)
            if summary.get("complete"):
                return summary
        if resume and (out / records.CHECKPOINT).exists():
            checkpoint = records.load_checkpoint(out / records.CHECKPOINT)
            if _comparable(checkpoint["config"]) != _comparable(cfg.to_dict()):
                raise MosaicValueError(
                    f"checkpoint in {str(out)!r} was written by a different configuration"
                )
        elif not resume and (out / records.METRICS).exists():
            raise MosaicValueError(
                f"{str(out)!r} already holds a run; pass resume or choose another folder"
            )

    sim = Simulation(cfg, device)
    history: list[dict[str, Any]] = []
    if checkpoint is not None:
        sim.load_state_dict(checkpoint["simulation"])
        history = list(checkpoint["history"])
        if sim.rounds_done > cfg.rounds:
            raise MosaicValueError(
                f"checkpoint is at round {sim.rounds_done}, beyond rounds={cfg.rounds}"
            )

    if out is not None:
        meta = {
            "config": cfg.to_dict(),
            "versions": _versions(),
            "n_params": sim.n_params,
            "metric": sim.spec.metric,
            "lower_is_better": sim.spec.lower_is_better,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if checkpoint is None or not (out / records.CONFIG).exists():
            records.write_json(out / records.CONFIG, meta)
        # Drop records written after the checkpoint (or by an earlier attempt without one).
        records.rewrite_metrics(out / records.METRICS, history)

    def log(rec: dict[str, Any]) -> None:
        history.append(rec)
        if out is not None:
            records.append_metrics(out / records.METRICS, rec)

    if not history:
        log(sim.metrics())
    bar = tqdm(
        total=cfg.rounds,
        initial=sim.rounds_done,
        disable=quiet,
        desc=f"{cfg.dataset} K={cfg.K}",
        unit="round",
        dynamic_ncols=True,
    )
    bar.set_postfix(_postfix(history[-1]))
    with bar:
        for t in range(sim.rounds_done, cfg.rounds):
            sim.train_round(t)
            done = t + 1
            if done % cfg.eval_every == 0 or done == cfg.rounds:
                log(sim.metrics())
                bar.set_postfix(_postfix(history[-1]))
            if out is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
                state = {
                    "config": cfg.to_dict(),
                    "simulation": sim.state_dict(),
                    "history": history,
                }
                records.save_checkpoint(out / records.CHECKPOINT, state)
            bar.update(1)

    summary = summarize(cfg, history, sim.spec.lower_is_better)
    if out is not None:
        records.write_json(out / records.SUMMARY, summary)
    return summary
