"""The hand-written stub `_core.pyi` names exactly what the extension exports."""

from __future__ import annotations

import ast
from pathlib import Path

import mosaic_fast
from mosaic_fast import _core


def _stub_names() -> dict[str, set[str]]:
    stub = Path(mosaic_fast.__file__).with_name("_core.pyi")
    tree = ast.parse(stub.read_text())
    names: dict[str, set[str]] = {"": set()}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            names[""].add(node.name)
        elif isinstance(node, ast.ClassDef):
            names[""].add(node.name)
            names[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[""].add(node.target.id)
    return names


# Exported only by builds with the cargo feature `bench-probes`.
BENCH_PROBES = {"copy_into"}


def test_stub_matches_extension() -> None:
    stub = _stub_names()
    exported = {n for n in dir(_core) if not n.startswith("_")} | {"__version__"}
    assert stub[""] - BENCH_PROBES == exported - BENCH_PROBES
    assert BENCH_PROBES <= stub[""]
    for cls_name in ("FragmentMap", "Graphs"):
        cls = getattr(_core, cls_name)
        public = {n for n in dir(cls) if not n.startswith("_")}
        assert stub[cls_name] == public, cls_name
