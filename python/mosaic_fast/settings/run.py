"""Settings of how a run is carried out: seeds, evaluation, the machine, the trainer."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import MosaicValueError
from .choices import DEVICES, INITS, TRACKERS, TRAINERS
from .setting import setting


@dataclass(frozen=True)
class Seeding:
    """The seed and how the nodes' initial models are drawn."""

    seed: int = setting(
        0,
        help="Seed of the initial model, partition, data order and graphs.",
        at_least=0,
        axis=True,
    )
    init: str = setting(
        "shared",
        help="Initial models: shared (every node starts from one seeded model, as EL's code) or "
        "per-node (node i from its own seeded draw, the paper's random x_0^(i)).",
        choices=INITS,
        axis=True,
    )


@dataclass(frozen=True)
class Evaluation:
    """When and on how much of the test set the models are evaluated."""

    eval_every: int = setting(
        10,
        help="Evaluate every this many rounds (and at round 0 and the last round).",
        at_least=1,
    )
    eval_at: str | None = setting(
        None,
        help="Rounds to evaluate at instead of --eval-every, increasing: 5,10,20 or ranges "
        "FIRST:LAST:STEP, e.g. 5:100:5,125:300:25 (dense early, sparse later); round 0 and the "
        "last round always.",
    )
    test_samples: int | None = setting(
        2000,
        help="Test samples used for classification metrics (fixed subsample); 0 = the whole test set.",
        at_least=1,
        none_alias=0,
    )


@dataclass(frozen=True)
class Machine:
    """Where and how a run executes; none of these changes its results."""

    data_dir: str | None = setting(
        None,
        help="Folder holding local dataset copies (else $MOSAIC_DATA, system folders, the cache).",
        changes_results=False,
        resumable=True,
    )
    device: str = setting(
        "cpu",
        help="Torch device (cuda:N picks a GPU).",
        choices=DEVICES,
        also=("cuda-index",),
        changes_results=False,
        resumable=True,
    )
    deterministic: bool = setting(
        True,
        help="Deterministic device results: torch's deterministic algorithms, no TF32, no atomic "
        "scatter-adds (off: possibly faster on CUDA, rounding may vary from run to run).",
        changes_results=False,
        resumable=True,
    )
    distributed: bool = setting(
        False,
        help="Shard the nodes over the ranks torchrun started (gloo on CPU, NCCL on CUDA; "
        "torchrun --nproc-per-node R -m mosaic_fast run --distributed ...): same results.",
        changes_results=False,
        resumable=True,
    )
    dist_timeout: float = setting(
        600.0,
        help="Seconds a distributed collective may wait before the run fails (a rank died or hangs); "
        "it also bounds how long a stalled rank holds the others, and every wait for rank 0's "
        "evaluations and checkpoints.",
        at_least=1,
        changes_results=False,
        resumable=True,
    )
    checkpoint_every: int = setting(
        0,
        help="Write OUT/checkpoint.pt every this many rounds (0 = never).",
        at_least=0,
        changes_results=False,
        resumable=True,
    )
    tracker: str | None = setting(
        None,
        help="Experiment trackers to send the run to, a comma list of tensorboard, mlflow, wandb "
        '(each an optional extra: pip install "mosaic-fast[tensorboard]"); offline by default.',
        changes_results=False,
        resumable=True,
    )
    mlflow_uri: str | None = setting(
        None,
        help="MLflow tracking URI (sqlite:///FILE.db, http://HOST:PORT) or a folder for a local "
        "store (default: mlflow.db in the sweep folder or in OUT/tracking/).",
        changes_results=False,
        resumable=True,
    )


@dataclass(frozen=True)
class Trainer:
    """How local SGD runs over the nodes."""

    trainer: str = setting(
        "auto",
        help="How local SGD runs over nodes (auto: the task's fastest).",
        choices=TRAINERS,
        axis=True,
    )


def evaluation_rounds(eval_at: str, rounds: int) -> tuple[int, ...]:
    """The rounds ``eval_at`` names (``5,10,20`` or ``FIRST:LAST:STEP`` ranges, comma-joined),
    strictly increasing, each in 1..``rounds``; MosaicValueError names a bad entry."""
    out: list[int] = []
    for item in eval_at.split(","):
        parts = item.strip().split(":")
        try:
            numbers = [int(p) for p in parts]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 3) or min(numbers) < 1:
            raise MosaicValueError(
                f"eval_at={eval_at!r}: {item.strip()!r} is not a round (a positive integer) "
                "or a range FIRST:LAST:STEP"
            )
        if len(numbers) == 3 and numbers[1] < numbers[0]:
            raise MosaicValueError(
                f"eval_at={eval_at!r}: range {item.strip()!r} ends before it starts"
            )
        first, last, step = numbers if len(numbers) == 3 else (numbers[0], numbers[0], 1)
        for r in range(first, last + 1, step):
            if out and r <= out[-1]:
                raise MosaicValueError(
                    f"eval_at={eval_at!r} must increase: round {r} follows round {out[-1]}"
                )
            if r > rounds:
                raise MosaicValueError(
                    f"eval_at={eval_at!r} names round {r}, beyond rounds={rounds}"
                )
            out.append(r)
    return tuple(out)


def tracker_names(tracker: str | None) -> tuple[str, ...]:
    """The trackers of the ``tracker`` setting's comma list (``"tensorboard,mlflow"``), each
    once; MosaicValueError names an unknown one (and the nearest known name)."""
    if tracker is None:
        return ()
    names: list[str] = []
    for item in tracker.split(","):
        name = item.strip().lower()
        if name not in TRACKERS:
            near = difflib.get_close_matches(name, TRACKERS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise MosaicValueError(
                f"tracker {item.strip()!r} is not one of {', '.join(TRACKERS)}{hint}"
            )
        if name not in names:
            names.append(name)
    return tuple(names)
