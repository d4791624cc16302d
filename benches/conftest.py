"""Benchmarks double as smoke tests: `pytest benches --benchmark-disable` runs each once at a small
size. With timings enabled they run at the sizes the targets name and print a summary table."""

from __future__ import annotations

import os
from typing import Any

import pytest

SUMMARY: list[dict[str, Any]] = []


@pytest.fixture(scope="session")
def full_size(pytestconfig: pytest.Config) -> bool:
    """True when timings are wanted (benchmarks enabled) or MOSAIC_BENCH_FULL=1 is set."""
    disabled = bool(pytestconfig.getoption("benchmark_disable", default=False))
    return os.environ.get("MOSAIC_BENCH_FULL") == "1" or not disabled


def min_seconds(benchmark: Any) -> float | None:
    """Fastest round of a finished benchmark, or None when benchmarks are disabled."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    return float(stats.stats.min)


def time_rounds(benchmark: Any, sim: Any) -> None:
    """Time ``sim``'s synchronous rounds: one warm-up, then 5 rounds (1 when benchmarks are
    disabled, the smoke test), each a fresh round index."""
    counter = iter(range(10_000))
    benchmark.pedantic(
        lambda: sim.train_round(next(counter)),
        rounds=1 if benchmark.disabled else 5,
        iterations=1,
        warmup_rounds=1,
    )
    assert sim.rounds_done >= 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("mosaic-fast benchmark summary")
    for row in SUMMARY:
        terminalreporter.write_line("  ".join(f"{k}={v}" for k, v in row.items()))
