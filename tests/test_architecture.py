"""The package's shape: no import cycles, and no part imports from a part above it.

Imports are read from the source (module level, inside functions and under ``TYPE_CHECKING``
alike: each is a dependency someone must understand), so the check costs no import of torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "mosaic_fast"

# Bottom to top. A part may import from its own line and the lines before it.
LAYERS = [
    # user_code decodes the text of settings that name user code; settings and data use it.
    {
        "errors",
        "_version",
        "_core",
        "files",
        "launch",
        "device",
        "state_dicts",
        "_moved",
        "user_code",
    },
    {"kernel", "data", "network"},
    {"settings"},
    {"topology", "results", "models", "theory"},
    {"tasks"},
    {"engine"},
    {"tracking"},
    {"api"},
    {"sweep"},
    {"cli"},
    {"__main__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def module_names() -> dict[str, Path]:
    names = {"mosaic_fast._core": PACKAGE / "_core.pyi"}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported(module: str, path: Path, names: dict[str, Path]) -> set[str]:
    """The package's modules that ``module`` imports, wherever in its source."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base
                for alias in node.names
            ]
        for target in targets:
            while target and target not in names:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    names = module_names()
    return {m: imported(m, p, names) for m, p in names.items() if p.suffix == ".py"}


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else "<root>"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:  # noqa: C901 (Tarjan reads best whole)
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_every_part_has_a_layer():
    parts = {part(m) for m in module_names()} - {"<root>"}
    assert parts - RANK.keys() == set(), "give the new part a line in LAYERS"


def test_no_part_imports_from_a_part_above_it():
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in targets
        if part(a) != "<root>" and part(a) != part(b) and RANK[part(b)] > RANK[part(a)]
    )
    assert upward == []


def test_only_the_top_level_facade_imports_the_package_root():
    assert sorted(m for m, targets in graph().items() if "mosaic_fast" in targets) == []


def test_the_checker_sees_a_cycle_and_resolves_relative_imports(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / "m.py"
    source.write_text(
        "from . import errors\nfrom ..mosaic_fast import kernel\n"
        "def f():\n    from .engine.build import make_simulation\n"
    )
    names = {
        "mosaic_fast.errors": source,
        "mosaic_fast.kernel": source,
        "mosaic_fast.engine.build": source,
    }
    found = imported("mosaic_fast.m", source, names)
    assert found == {"mosaic_fast.errors", "mosaic_fast.kernel", "mosaic_fast.engine.build"}
