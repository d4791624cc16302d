#!/usr/bin/env bash
# The GPU check in one short run: under 5 minutes on one H100 or H200, every row printed the moment
# it is measured and appended to $OUT/device_check.txt (when $OUT is set), so that a run cut short
# keeps what it measured.
#
# How to run it on a lent GPU machine (no Rust toolchain, no network there):
#   1. here, build the extension in place with the editable install
#        MATURIN_PEP517_ARGS="--features bench-probes" pip install -q -e . --no-deps
#      which leaves python/mosaic_fast/_core.abi3.so (ignored by git) next to the Python sources;
#   2. run this script from a copy of the working tree with that file carried along, e.g. with the
#      device tool: command "bash benches/device_check.sh", carry ["python/mosaic_fast/_core.abi3.so"],
#      timeout_s 330.
# It never builds, installs or downloads anything: without the extension, or when mosaic_fast does
# not import with ${PYTHON:-python3}, it says so in one line and exits 2.
#
#   bash benches/device_check.sh          full sizes on CUDA
#   bash benches/device_check.sh --cpu    the CPU-side parts here: device rows on CPU tensors at
#                                         small sizes, Triton under TRITON_INTERPRET=1, CUDA-only
#                                         rows say so; budgets x4 (a rehearsal, ~10 minutes on the
#                                         shared 2-core machine)
#
# Steps and their budgets on the GPU (seconds; a step is killed at its limit, the next one runs;
# inside step 1 a section past its budget prints its remaining rows as skipped):
#   step 1, benches/device_check.py, limit 185:
#     environment facts (python, torch, CUDA, cuDNN, device, memory, commit)    by 15 s
#     parity of the fused Triton kernel and the torch path vs the Rust kernel   by 50 s
#     aggregation GB/s vs the copy bandwidth, n=256 d=1e6, K=1 and 16           by 85 s
#     host syncs in a round under torch.cuda's sync debug mode                  by 110 s
#     one 256-node GN-LeNet round vs the 2-core CPU                             by 140 s
#     simulation efficiency per model and strategy (LSTM vmap: cuDNN off)       by 170 s
#   step 2, pytest tests -k cuda (the tests that need CUDA; --cpu adds the Triton tests), limit 45
#   step 3, the device-aware benchmarks as smoke tests (bench_training, bench_module_model,
#     bench_fragmenter with --benchmark-disable), limit 55; the other benches time the CPU's
#     Rust kernel and network model, nothing on the GPU
# Total: at most 185 + 45 + 55 = 285 s, plus about 10 s of imports before and between the steps.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
LOG=""
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT" && LOG="$OUT/device_check.txt"
fi
export DEVICE_CHECK_LOG="$LOG"

say() {
    printf '%s\n' "$*"
    if [ -n "$LOG" ]; then printf '%s\n' "$*" >>"$LOG"; fi
}

# Copy a step's output line by line to the log as it comes.
logged() {
    if [ -n "$LOG" ]; then tee -a "$LOG"; else cat; fi
}

CPU=0
LIMIT1=185 LIMIT2=45 LIMIT3=55
TESTS="cuda"
if [ "${1:-}" = "--cpu" ]; then
    CPU=1 LIMIT1=760 LIMIT2=180 LIMIT3=400 TESTS="cuda or kernel_triton"
    export CUDA_VISIBLE_DEVICES="" TRITON_INTERPRET=1
fi

if [ ! -e python/mosaic_fast/_core.abi3.so ]; then
    say "device check: python/mosaic_fast/_core.abi3.so is missing; build it with the editable install and carry it along (header of benches/device_check.sh); nothing measured"
    exit 2
fi
export PYTHONPATH="$PWD/python:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! problem=$("$PY" -c "import torch, mosaic_fast" 2>&1); then
    say "device check: mosaic_fast does not import with $PY: $(printf '%s' "$problem" | tail -n 1); nothing measured"
    exit 2
fi

say "device check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $PY, $([ $CPU = 1 ] && echo 'CPU stand-in (--cpu)' || echo 'full sizes')"
status=0

# Step 1: the measurements (benches/device_check.py prints and logs each row itself).
args=()
[ $CPU = 1 ] && args=(--cpu)
timeout -k 5 $LIMIT1 "$PY" benches/device_check.py "${args[@]}"
rc=$?
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    say "step 1: stopped at its $LIMIT1 s limit; the rows above are what it measured"
    status=1
elif [ $rc -ne 0 ]; then
    say "step 1: exit status $rc (failed rows above)"
    status=1
fi

if ! "$PY" -c "import pytest" >/dev/null 2>&1; then
    say "steps 2-3: pytest does not import with $PY; the tests were not run"
    exit 1
fi

# Step 2: the tests that need CUDA (skipped without it) and the fused kernel's tests.
say "step 2: pytest tests -k \"$TESTS\""
timeout -k 5 $LIMIT2 "$PY" -m pytest tests -q -p no:cacheprovider -rs -k "$TESTS" 2>&1 | logged
rc=${PIPESTATUS[0]}
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then say "step 2: stopped at its $LIMIT2 s limit"; fi
if [ $rc -ne 0 ] && [ $rc -ne 5 ]; then status=1; fi

# Step 3: the benchmarks as smoke tests (each once, at a small size, on the device they find).
say "step 3: device-aware benchmarks as smoke tests"
timeout -k 5 $LIMIT3 "$PY" -m pytest benches/bench_training.py benches/bench_module_model.py \
    benches/bench_fragmenter.py -q -p no:cacheprovider --benchmark-disable 2>&1 | logged
rc=${PIPESTATUS[0]}
if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then say "step 3: stopped at its $LIMIT3 s limit"; fi
if [ $rc -ne 0 ]; then status=1; fi

say "device check: done, exit status $status"
exit $status
