#!/usr/bin/env bash
# The FIRST DivShare comparison of docs/REPRODUCTION.md, kept so that its table can be re-made: it
# ran the asynchronous engine's earlier rules (async_semantics=v1: one SGD step per communication,
# one FIFO per sender, sending after averaging) on min-share links, set explicitly below since
# both defaults changed. docs/reproduce_divshare.sh is the study in DivShare's own setting.
# ("DivShare, Swift, AD-PSGD and synchronous
# EL/Mosaic under communication stragglers"): 16 nodes on DivShare's network (60 Mbit/s links,
# stragglers at 60/6 = 10 Mbit/s), 10 % and 50 % stragglers, seeds 0, 1, 2, run one cell at a time
# on one thread. Re-running continues where it stopped (complete cells are skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-docs/results}
# DATA: the folder holding ml-latest-small/ (MovieLens as GroupLens publishes it). It reaches the
# runs through $MOSAIC_DATA, so the run folders' config.json does not record a local path.
DATA=${DATA:-${MOSAIC_DATA:?set DATA (or MOSAIC_DATA) to the folder holding ml-latest-small/}}
export MOSAIC_DATA="$DATA"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MOSAIC_NUM_THREADS=1

# Shared by every cell: the network (declared step time, so simulated times do not depend on the
# machine), degree J = 4, one local step between communications, evaluations at fixed simulated
# times only (eval_every = rounds turns the per-round schedule off), a time budget that binds.
LINKS="--set nodes=16 --set degree=4 --set local_steps=1 --set bandwidth=60Mbit \
    --set straggler_slowdown=6 --set straggler_kind=comm \
    --set async_semantics=v1 --set bandwidth_sharing=min-share"
NET="$LINKS --set latency=1ms"
AXES="--stragglers 0.1,0.5 --seeds 0,1,2"
# Fashion-MNIST (CIFAR-10 stand-in), Dirichlet(0.1) label skew, GN-LeNet: 10 simulated seconds
# (200 steps of the fastest nodes), evaluated every 2.5 s on a fixed 500-image test subset.
FMNIST="--dataset fashion-mnist --set step_time=0.05 --set partition=dirichlet --set alpha=0.1 \
    --set batch_size=16 --set lr=0.05 --set test_samples=500 --set rounds=600 --set eval_every=600 \
    --set time_budget=10 --set eval_every_s=2.5 --set target=0.25"
# MovieLens ml-latest-small, matrix factorisation (default lr 0.2, batch 64, 20-dim embeddings):
# 12 simulated seconds (240 steps), evaluated every second. The budget is 12 s, not longer,
# because Swift's and AD-PSGD's send queues pass the engine's 4 GiB limit at about 16 s.
MOVIELENS="--dataset movielens --set step_time=0.05 --set rounds=600 --set eval_every=600 \
    --set time_budget=12 --set eval_every_s=1 --set target=1.1"

# algorithm and K of each compared method (folder name: method)
METHODS=(
    "divshare-K8 --algorithm divshare --K 8"
    "swift --algorithm swift --K 1"
    "adpsgd --algorithm adpsgd --K 1"
    "el-K1 --algorithm mosaic --K 1"
    "mosaic-K8 --algorithm mosaic --K 8"
)

for method in "${METHODS[@]}"; do
    read -r name options <<<"$method"
    # shellcheck disable=SC2086  # the option strings are meant to split into words
    time mosaic-fast sweep $MOVIELENS $NET $options $AXES -q --out "$OUT/divshare-movielens/$name"
done
for method in "${METHODS[@]}"; do
    read -r name options <<<"$method"
    # shellcheck disable=SC2086
    time mosaic-fast sweep $FMNIST $NET $options $AXES -q --out "$OUT/divshare-fmnist/$name"
done
# The same MovieLens comparison where the fast links keep up: with 0.5 s steps a 60 Mbit/s node
# sends a step's 4 models (4 x 0.11 s) within the step, so only the stragglers' queues grow.
# 120 simulated seconds: the same 240 steps as above.
MOVIELENS_SLOW="--dataset movielens --set step_time=0.5 --set rounds=600 --set eval_every=600 \
    --set time_budget=120 --set eval_every_s=10 --set target=1.1"
for method in "${METHODS[@]}"; do
    read -r name options <<<"$method"
    # shellcheck disable=SC2086
    time mosaic-fast sweep $MOVIELENS_SLOW $NET $options $AXES -q \
        --out "$OUT/divshare-movielens-step0.5/$name"
done
# Control: no communication at all (every message arrives after 1000 s, long after the budget),
# so each node trains on its own data only. One seed on Fashion-MNIST (a cell takes a minute),
# three on MovieLens; which nodes are stragglers does not matter without messages.
# shellcheck disable=SC2086
time mosaic-fast sweep $FMNIST $LINKS --set latency=1000s --algorithm divshare --K 8 \
    --stragglers 0.1 --seeds 0 -q --out "$OUT/divshare-fmnist/local-only"
# shellcheck disable=SC2086
time mosaic-fast sweep $MOVIELENS $LINKS --set latency=1000s --algorithm divshare --K 8 $AXES -q \
    --out "$OUT/divshare-movielens/local-only"
# Lock files are only meaningful while a process writes.
find "$OUT"/divshare-* -name .lock -delete
