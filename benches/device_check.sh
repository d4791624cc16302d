#!/usr/bin/env bash
# The GPU check in one short run (under 8 minutes on one H200), printing ONE table:
#   - parity: the torch aggregation on CUDA tensors against the Rust kernel on the same values;
#   - aggregation GB/s against the device's copy bandwidth (torch copy_ of the same bytes),
#     n=256, d=1e6, K=1 and 16;
#   - simulation efficiency of one local step per model (GN-LeNet, MF, LSTM) and trainer strategy;
#   - one 64-node Fashion-MNIST round, CUDA against CPU.
#
#   bash benches/device_check.sh                        full sizes (a machine with CUDA)
#   DEVICE_CHECK_SMALL=1 bash benches/device_check.sh   small sizes; without CUDA the device rows
#                                                       run on CPU tensors and say "no CUDA device"
#
# Installs nothing but the package itself: when mosaic_fast (with pytest, for the benches helpers)
# does not import, from the environment or from python/ with a built extension carried along
# (python/mosaic_fast/_core.abi3.so), it runs `bash .ci/setup --test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! python -c "import mosaic_fast, pytest" >/dev/null 2>&1; then
    if PYTHONPATH=python python -c "import mosaic_fast, pytest" >/dev/null 2>&1; then
        export PYTHONPATH="python${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "mosaic_fast does not import: building it with bash .ci/setup --test" >&2
        bash .ci/setup --test
    fi
fi

exec python - <<'PY'
"""Measurements for benches/device_check.sh (see there); one table on stdout."""

import os
import sys
import time
import traceback
from functools import partial

import numpy as np
import torch

import mosaic_fast as mf
from benches.bench_training import SIZES, TARGETS, _problem, _synthetic_data
from mosaic_fast.config import ExperimentConfig
from mosaic_fast.data import load_dataset
from mosaic_fast.engine import Simulation
from mosaic_fast.engine.trainer import TRAINERS, SGDConfig, make_trainer
from mosaic_fast.errors import MosaicError
from mosaic_fast.kernel_torch import aggregate_torch

SMALL = os.environ.get("DEVICE_CHECK_SMALL") == "1"
HAS_CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_CUDA else "cpu")
DEVICE_NAME = torch.cuda.get_device_name(0) if HAS_CUDA else "cpu (no CUDA device)"
# Device rows without CUDA: measured on CPU tensors at small sizes, skipped at full size.
RUN_DEVICE_ROWS = HAS_CUDA or SMALL
ROWS: list[tuple[str, str, str, str, str]] = []
FAILURES: list[str] = []
# Rows still waiting at this many seconds are skipped, so that the run stays under 8 minutes.
DEADLINE_S = 390
START = time.perf_counter()


def device_aggregate(x: torch.Tensor, graphs, fragments, out=None) -> torch.Tensor:
    """The torch path: through mf.aggregate's dispatch for CUDA tensors, directly for the CPU
    stand-in (mf.aggregate would send CPU tensors to the Rust kernel)."""
    if x.device.type == "cpu":
        return aggregate_torch(x, graphs, fragments, out=out)
    return mf.aggregate(x, graphs, fragments, out=out)


def row(check: str, config: str, device: str, result: str, versus: str = "") -> None:
    ROWS.append((check, config, device, result, versus))
    print(f"  done: {check} {config}", file=sys.stderr, flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_seconds(fn, device: torch.device, reps: int) -> float:
    fn()  # warm-up: allocations, index tensors, kernel selection
    sync(device)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def guarded(check: str, config: str, fn) -> None:
    """Run one measurement; a failure becomes a row (and a non-zero exit), not the run's end."""
    if time.perf_counter() - START > DEADLINE_S:
        row(check, config, DEVICE_NAME, f"skipped: past the {DEADLINE_S} s budget")
        return
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - every failure is reported in the table
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        FAILURES.append(f"{check} {config}: {message}")
        row(check, config, DEVICE_NAME, f"ERROR {type(exc).__name__}: {message}")
        traceback.print_exc(file=sys.stderr)


def make_map(kind: str, d: int, k: int) -> mf.FragmentMap:
    if kind == "contiguous":
        return mf.FragmentMap.contiguous(d, k)
    if kind == "random":
        return mf.FragmentMap.random(d, k, seed=0)
    return mf.FragmentMap.blocks(d, k, block_size=64, seed=0)


def uneven_graphs(n: int, k: int) -> mf.Graphs:
    """A user topology per fragment: random in-degrees 0..8, node 0 without in-neighbours."""
    rng = np.random.default_rng(k)
    lists = []
    for _ in range(k):
        edges = [
            (int(src), dst)
            for dst in range(1, n)
            for src in rng.choice(
                np.delete(np.arange(n), dst), size=rng.integers(0, min(9, n)), replace=False
            )
        ]
        lists.append(np.array(edges, dtype=np.int64).reshape(-1, 2))
    return mf.Graphs.from_edges(n, lists, round=0)


def difference(got: torch.Tensor, want: np.ndarray) -> str:
    """Max |diff| and whether every value is bit-identical (the torch path promises equality)."""
    got_np = got.cpu().numpy()
    same = np.array_equal(got_np.view(np.int32), want.view(np.int32))
    diff = float(np.max(np.abs(got_np - want))) if got_np.size else 0.0
    ulp = float(np.max(np.abs(got_np - want) / np.spacing(np.abs(want)))) if diff else 0.0
    verdict = "bit-identical" if same else f"{np.count_nonzero(got_np != want)} values differ"
    if not same:
        FAILURES.append(f"parity: {verdict}, max|diff|={diff:.3g}")
    return f"max|diff|={diff:.3g} ({ulp:.0f} ulp); {verdict}"


def parity_check(x: torch.Tensor, host: np.ndarray, graphs, fragments, config: str) -> None:
    got = device_aggregate(x, graphs, fragments)
    want = mf.aggregate(host, graphs, fragments)  # the Rust kernel
    row("parity vs Rust", config, DEVICE_NAME, difference(got, want))


def parity_rows() -> None:
    n, d = (12, 5_003) if SMALL else (64, 200_003)
    g = torch.Generator(device=DEVICE).manual_seed(0)
    x = torch.randn(n, d, generator=g, device=DEVICE)
    host = x.cpu().numpy()
    for kind in ("contiguous", "random", "blocks"):
        for k in (1, 16):
            fragments = make_map(kind, d, k)
            for label, graphs in (
                ("el-oracle", mf.sample_graphs(n, k, min(8, n - 1), seed=1, round=3)),
                ("uneven edges", uneven_graphs(n, k)),
            ):
                config = f"n={n} d={d} {kind} K={k} {label}"
                check = partial(parity_check, x, host, graphs, fragments, config)
                guarded("parity vs Rust", config, check)


def bandwidth_check(
    x: torch.Tensor, out: torch.Tensor, kind: str, k: int, copy_gbps: float, config: str
) -> None:
    n, d = x.shape
    fragments = make_map(kind, d, k)
    graphs = mf.sample_graphs(n, k, 8, seed=0, round=0)
    call = partial(device_aggregate, x, graphs, fragments, out=out)
    seconds = best_seconds(call, DEVICE, 3 if SMALL else 5)
    gbps = 8 * n * d / seconds / 1e9  # read every input once, write every output once
    result = f"{gbps:.3g} GB/s ({seconds * 1e3:.3g} ms)"
    row("aggregation GB/s", config, DEVICE_NAME, result, f"{gbps / copy_gbps:.0%} of copy")
    want = mf.aggregate(x.cpu().numpy(), graphs, fragments)
    row("parity vs Rust", config, DEVICE_NAME, difference(out, want))


def bandwidth_rows() -> None:
    n, d = (32, 100_000) if SMALL else (256, 1_000_000)
    g = torch.Generator(device=DEVICE).manual_seed(1)
    x = torch.rand(n, d, generator=g, device=DEVICE)
    out = torch.empty_like(x)
    copy_s = best_seconds(partial(out.copy_, x), DEVICE, 3 if SMALL else 5)
    copy_gbps = 2 * x.nbytes / copy_s / 1e9
    row("copy bandwidth", f"n={n} d={d} torch copy_", DEVICE_NAME, f"{copy_gbps:.3g} GB/s")
    for kind, k in (("contiguous", 1), ("contiguous", 16), ("random", 16)):
        config = f"n={n} d={d} {kind} K={k} degree 8"
        check = partial(bandwidth_check, x, out, kind, k, copy_gbps, config)
        guarded("aggregation GB/s", config, check)


def efficiency_check(model: str, n: int, problem, strategy: str, config: str) -> None:
    spec, batch, single_step = problem
    X = spec.init_params(0).to(DEVICE).repeat(n, 1).contiguous()
    trainer = make_trainer(spec, n, SGDConfig(0.01), DEVICE, strategy)
    reps = 1 if SMALL else {"mf": 10, "gn-lenet": 3, "lstm": 2}[model]
    t_net = best_seconds(partial(trainer.step, X, batch), DEVICE, reps)
    t_single = best_seconds(single_step, DEVICE, reps)
    result = f"{t_single / t_net:.2f} (step {t_net * 1e3:.3g} ms)"
    row("simulation efficiency", config, DEVICE_NAME, result, f"target {TARGETS[model]}")


def efficiency_rows() -> None:
    for model in ("gn-lenet", "mf", "lstm"):
        n, batch_size = (4, 4) if SMALL else SIZES[model]
        problem = _problem(model, n, batch_size)
        for strategy, trainer_type in TRAINERS.items():
            if isinstance(problem[0], trainer_type.spec_type):
                config = f"{model} n={n} B={batch_size} {strategy}"
                check = partial(efficiency_check, model, n, problem, strategy, config)
                guarded("simulation efficiency", config, check)


def fashion_mnist() -> tuple[object, str]:
    try:
        return load_dataset("fashion-mnist", download=False), "real data"
    except MosaicError:
        return _synthetic_data("gn-lenet", 60_000), "synthetic data, Fashion-MNIST shapes"


def round_check(cfg: ExperimentConfig, data, config: str, seconds: dict[str, float]) -> None:
    device = torch.device(cfg.device)
    sim = Simulation(cfg, device, data=data)
    rounds = iter(range(100))
    t = best_seconds(lambda: sim.train_round(next(rounds)), device, 1 if SMALL else 3)
    seconds[device.type] = t
    versus = ""
    if device.type == "cuda" and "cpu" in seconds:
        versus = f"{seconds['cpu'] / t:.1f}x faster than CPU"
    name = DEVICE_NAME if device.type == "cuda" else "cpu"
    row("round time", f"{config} {sim.trainer.strategy}", name, f"{t * 1e3:.4g} ms", versus)


def round_rows() -> None:
    nodes = 12 if SMALL else 64  # the default degree 8 needs more than 8 nodes
    data, source = fashion_mnist()
    seconds: dict[str, float] = {}
    for device in ["cpu"] + (["cuda"] if HAS_CUDA else []):
        cfg = ExperimentConfig(
            dataset="fashion-mnist", nodes=nodes, device=device, test_samples=100
        ).resolved()
        config = (
            f"fashion-mnist n={nodes} K={cfg.K} degree={cfg.degree} H={cfg.local_steps} "
            f"B={cfg.batch_size} ({source})"
        )
        guarded("round time", config, partial(round_check, cfg, data, config, seconds))
    if not HAS_CUDA:
        row("round time", f"fashion-mnist n={nodes}", "cuda", "no CUDA device")


def main() -> int:
    print(
        f"device check: {DEVICE_NAME}, torch {torch.__version__}, mosaic-fast {mf.__version__}"
        f"{', small sizes' if SMALL else ''}",
        file=sys.stderr,
    )
    if RUN_DEVICE_ROWS:
        guarded("parity vs Rust", "setup", parity_rows)
        guarded("aggregation GB/s", "setup", bandwidth_rows)
        guarded("simulation efficiency", "setup", efficiency_rows)
    else:
        for check in ("parity vs Rust", "aggregation GB/s", "simulation efficiency"):
            row(check, "full size", "cuda", "no CUDA device")
    guarded("round time", "setup", round_rows)
    header = ("check", "configuration", "device", "result", "versus")
    widths = [max(len(r[i]) for r in [header, *ROWS]) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in (header, *ROWS)
    ]
    print(lines[0])
    print("-+-".join("-" * w for w in widths))
    print("\n".join(lines[1:]))
    print(f"\n{len(ROWS)} rows in {time.perf_counter() - START:.0f} s; {len(FAILURES)} failures")
    for failure in FAILURES:
        print(f"FAILED: {failure}")
    return 1 if FAILURES else 0


sys.exit(main())
PY
