"""The examples in examples/ run end to end at their ``--tiny`` size and print sensible tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mosaic_fast.data import fashion_mnist, locations

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NUMBER = r"(-?\d+(?:\.\d+)?)"

needs_fashion_mnist = pytest.mark.skipif(
    not any(fashion_mnist.find(root) for root in locations.search_roots("fashion-mnist", None)),
    reason="no local Fashion-MNIST copy (install Debian's dataset-fashion-mnist or set $MOSAIC_DATA)",
)


def run_example(name: str) -> str:
    """The example's standard output; its exit status must be 0."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def table_rows(stdout: str, header: str, first_column: str) -> dict[str, list[float]]:
    """The rows after ``header``: first column (matching ``first_column``) -> its numbers."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == header.split())
    rows = {}
    for line in lines[start + 1 :]:
        match = re.fullmatch(rf"\s*({first_column})((?:\s+{NUMBER})+)\s*", line)
        if match is None:
            break
        rows[match.group(1).strip()] = [float(v) for v in match.group(2).split()]
    return rows


def accuracies_are_probabilities(rows: dict[str, list[float]], columns: int) -> None:
    for name, values in rows.items():
        assert len(values) == columns, (name, values)
        assert all(0 <= v <= 1 for v in values[:2]), (name, values)  # the two accuracies
        assert values[2] >= 0, (name, values)  # consensus distance


@needs_fashion_mnist
def test_own_model():
    out = run_example("own_model.py")
    rows = table_rows(out, "K node-mean accuracy average-model accuracy consensus distance", r"\d+")
    assert list(rows) == ["1", "8"]
    accuracies_are_probabilities(rows, 3)
    assert re.search(r"round\s+node_mean\s+node_std\s+avg_model", out)  # result.metrics
    assert "result.node_model(0): a SmallResNet in eval mode" in out


def test_kernel_in_your_loop():
    out = run_example("kernel_in_your_loop.py")
    rows = table_rows(out, "K node-mean accuracy consensus distance", r"\d+")
    assert list(rows) == ["1", "8"]
    for values in rows.values():
        assert len(values) == 2 and 0 <= values[0] <= 1 and values[1] >= 0


@needs_fashion_mnist
def test_own_topology():
    out = run_example("own_topology.py")
    header = (
        "topology node-mean accuracy average-model accuracy consensus distance sent params/node"
    )
    rows = table_rows(out, header, r"ring of cliques|el-oracle")
    assert list(rows) == ["ring of cliques", "el-oracle"]
    accuracies_are_probabilities(rows, 4)
    # 12 nodes, K=4: el-oracle sends degree 3 copies of every fragment; the clique ring 3 or 4.
    d_el, d_ring = rows["el-oracle"][3] / 3, rows["ring of cliques"][3]
    assert 3 * d_el < d_ring < 4 * d_el


def test_settings_reference_lists_every_setting():
    """docs/reference/settings.md is generated (docs/hooks.py) from the declarations."""
    import importlib.util

    from mosaic_fast.settings import SETTINGS

    spec = importlib.util.spec_from_file_location("hooks", EXAMPLES.parent / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = (EXAMPLES.parent / "docs" / "reference" / "settings.md").read_text()
    table = hooks.on_page_markdown(page, None, None, None)
    listed = set(re.findall(r"^\| `(\w+)` \|", table, flags=re.M))
    assert listed == set(SETTINGS)
