"""``mosaic-fast run``: one experiment (or one per K of a comma list) from options and/or a TOML file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import MosaicValueError, RunDiverged
from ..launch import process_rank
from ..settings import SETTINGS, ExperimentConfig, load_toml
from .common import OneLineCommand, one_line_errors
from .options import config_option, given, setting_options

# Settings of the demo that `mosaic-fast run` without --dataset performs (README): Fashion-MNIST with
# Dirichlet(0.1) label skew, K=1 against K=8 on sparse graphs (degree 2, where fragments have
# room to help: at degree 8 of 16 nodes EL already mixes almost fully), evaluated every 5 rounds so
# the early gain shows; ~1-2 minutes on 2 cores. They fill only what neither the command line nor
# --config sets. With --dataset, ExperimentConfig's paper-like defaults apply.
RUN_DEFAULTS: dict[str, Any] = {
    "K": "1,8",
    "degree": 2,
    "rounds": 20,
    "local_steps": 2,
    "batch_size": 16,
    "eval_every": 5,
    "test_samples": 500,
}

_F = TypeVar("_F", bound=Callable[..., Any])  # a command function, typed as it was

# `run` takes a comma list of K values: one run per K.
_LISTS = ("K",)


def run_options(func: _F) -> _F:
    """One option per setting plus ``--config FILE``; every default is None (= unset)."""
    func = setting_options(
        lists=_LISTS,
        notes={"K": "A comma list such as 1,8 runs one experiment per K into OUT/K=<k>/."},
        demo=RUN_DEFAULTS,
    )(func)
    return config_option(func)


def parse_k_list(value: Any) -> list[int]:
    """``8``, ``"1,8"`` or ``(1, 8)`` -> [1, 8]. MosaicValueError names a bad entry."""
    K = SETTINGS["K"]
    try:
        if isinstance(value, str):
            return [K.parse(text) for text in value.split(",")]
        if isinstance(value, (list, tuple)) and value:
            return [K.coerce(v) for v in value]
        return [K.coerce(value)]
    except MosaicValueError:
        raise MosaicValueError(
            f"K={value!r} must be an integer or a comma list of integers such as 1,8"
        ) from None


def _merged(options: dict[str, Any]) -> dict[str, Any]:
    config_file = options.pop("config_file", None)
    from_file = load_toml(config_file, lists=_LISTS) if config_file is not None else {}
    from_line = given(options)
    demo = "dataset" not in from_file and "dataset" not in from_line
    values = dict(RUN_DEFAULTS) if demo else {}
    return {**values, **from_file, **from_line}


def configs_from_options(**options: Any) -> list[ExperimentConfig]:
    """One resolved ExperimentConfig per K of the (possibly comma-listed) ``K`` option."""
    values = _merged(options)
    ks = parse_k_list(values.pop("K", ExperimentConfig.K))
    base = ExperimentConfig.from_dict(values)
    return [dataclasses.replace(base, K=k).resolved() for k in ks]


def config_from_options(**options: Any) -> ExperimentConfig:
    """The resolved ExperimentConfig of the options (``K`` must then name a single value)."""
    configs = configs_from_options(**options)
    if len(configs) != 1:
        raise MosaicValueError(f"K must be a single value here, got {len(configs)} values")
    return configs[0]


def default_out_dir(cfg: ExperimentConfig, ks: list[int]) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.dataset}-K{'+'.join(map(str, ks))}-{stamp}"


def comparison_table(rows: list[tuple[int, dict[str, Any]]]) -> str:
    """Final metrics per K as an aligned text table (a diverged run's row says so)."""
    metric = next((s["final"]["metric"] for _, s in rows if "final" in s), "metric")
    head = [
        "K",
        f"node-mean {metric}",
        "node std",
        f"avg-model {metric}",
        "best node-mean (round)",
        "consensus dist",
        "sent params/node",
    ]
    body = [
        [
            str(k),
            f"{s['final']['node_mean']:.4f}",
            f"{s['final']['node_std']:.4f}",
            f"{s['final']['avg_model']:.4f}",
            f"{s['best_node_mean']:.4f} ({s['best_node_mean_round']})",
            f"{s['final']['consensus_distance']:.4g}",
            f"{s['final']['sent_params_per_node']:.0f}",
        ]
        if "final" in s
        else [str(k), f"diverged at round {s['round']}", "", "", "", "", ""]
        for k, s in rows
    ]
    widths = [max(len(r[j]) for r in [head, *body]) for j in range(len(head))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *body]]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def _resume_targets(folder: Path) -> list[Path]:
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MosaicValueError(f"--resume {str(folder)!r} {what}")
    if (folder / "config.json").exists():
        return [folder]
    subs = sorted(p for p in folder.glob("K=*") if (p / "config.json").exists())
    if not subs:
        raise MosaicValueError(f"--resume {str(folder)!r} holds no run (no config.json)")
    return subs


def gain_lines(folders: dict[int, Path]) -> list[str]:
    """For every K with a K = 1 run beside it (same seed): the node-average's gain over K = 1 at
    each evaluated round (positive is better) and its peak."""
    from ..results.layout import COMPLETE
    from ..results.records import read_run
    from ..results.summary import paired_gain_by_round, peak_gain

    runs = {k: read_run(f) for k, f in folders.items()}
    if 1 not in runs or runs[1].status != COMPLETE:
        return []
    lines = []
    for k, run in sorted(runs.items()):
        if k == 1:
            continue
        rounds, mean, half, _ = paired_gain_by_round([run], [runs[1]])
        if not len(rounds):
            continue
        peak, _, at = peak_gain(rounds, mean, half)
        points = ", ".join(f"{t}: {g:+.4f}" for t, g in zip(rounds, mean, strict=True) if t > 0)
        lines.append(
            f"K={k} gain over K=1 in node-mean {run.metric} (same seed; by round) {points}; "
            f"peak {peak:+.4f} at round {at:.0f}"
        )
    return lines


def _run_each(
    jobs: list[tuple[int, Path, Callable[..., dict[str, Any]]]],  # ...: lambdas bind cfg=cfg
) -> tuple[list[tuple[int, dict[str, Any]]], list[RunDiverged]]:
    """Run every (K, run folder, start) job; a diverged one is recorded and the others go on."""
    rows, diverged = [], []
    for k, target, start in jobs:
        try:
            rows.append((k, start(target)))
        except RunDiverged as exc:
            rows.append((k, {"round": exc.round}))
            diverged.append(exc)
    return rows, diverged


def _resume_jobs(
    folder: Path, quiet: bool
) -> list[tuple[int, Path, Callable[..., dict[str, Any]]]]:
    from ..api import Experiment
    from ..results.layout import config_of

    return [
        (config_of(t).K, t, lambda t: Experiment.resume(t, quiet=quiet).summary)
        for t in _resume_targets(folder)
    ]


@click.command("run", cls=OneLineCommand)
@run_options
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output folder. [default: runs/<dataset>-K<k>-<timestamp>]",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--resume",
    "resume",
    type=click.Path(file_okay=False),
    default=None,
    help="Continue the interrupted run in DIR from its checkpoint (other options are ignored).",
)
def run(out: str | None, quiet: bool, resume: str | None, **options: Any) -> None:
    """Run Mosaic Learning.

    Without --dataset (and no dataset in --config) this is the quick demo: Fashion-MNIST, Dirichlet(0.1)
    label skew, 16 nodes of degree 2, K=1 vs K=8, 20 rounds (~1-2 min on 2 cores). With --dataset, the paper-like
    defaults of that dataset apply (100 rounds, degree 8, el-oracle, random fragments within each
    layer). With K=1 among the Ks, the node-average's gain over it is printed by round.
    """
    with one_line_errors():
        if resume is not None:
            jobs = _resume_jobs(Path(resume), quiet)
        else:
            from ..api import Experiment

            configs = configs_from_options(**options)
            ks = [c.K for c in configs]
            root = Path(out) if out is not None else default_out_dir(configs[0], ks)
            jobs = [
                (
                    cfg.K,
                    root / f"K={cfg.K}" if len(configs) > 1 else root,
                    lambda t, cfg=cfg: (
                        Experiment.from_config(cfg)
                        .run(t, quiet=quiet, group=root if len(configs) > 1 else None)
                        .summary
                    ),
                )
                for cfg in configs
            ]
        rows, diverged = _run_each(jobs)
        if diverged and len(jobs) == 1:
            raise diverged[0]  # a lone run: its one error line says everything
        if process_rank() not in (None, 0):
            return  # rank 0 reports for all
        if resume is None:
            click.echo(f"results in {root}")
        click.echo(comparison_table(rows))
        for line in gain_lines({k: target for k, target, _ in jobs} if len(jobs) > 1 else {}):
            click.echo(line)
        if diverged:
            raise diverged[0]
