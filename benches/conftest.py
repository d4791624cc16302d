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


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("mosaic-fast benchmark summary")
    for row in SUMMARY:
        terminalreporter.write_line("  ".join(f"{k}={v}" for k, v in row.items()))
