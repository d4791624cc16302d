"""Shared by the kernel tests: run a script under several kernel thread counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def digests_by_thread_count(
    script: str, counts: tuple[str, ...] = ("1", "2", "3")
) -> dict[str, str]:
    """Run ``script`` (which prints ``{"threads": ..., "digest": ...}``) once per
    ``MOSAIC_NUM_THREADS`` in ``counts``; check that the kernel used that many threads and return
    each count's digest."""
    digests = {}
    for threads in counts:
        env = {**os.environ, "MOSAIC_NUM_THREADS": threads}
        res = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        report = json.loads(res.stdout)
        assert report["threads"] == int(threads)
        digests[threads] = report["digest"]
    return digests
