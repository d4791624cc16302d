"""The README's examples are real: its command lines name real commands and options, its kernel
example runs (at a smaller size) and its API example passes only settings that exist."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

import mosaic_fast as mf
from mosaic_fast.cli import main
from mosaic_fast.settings import SETTINGS

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def command_lines() -> list[list[str]]:
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            for command in line.split("#")[0].split("&&"):
                words = shlex.split(command)
                if words[:1] == ["mosaic-fast"]:
                    lines.append(words[1:])
    return lines


def test_the_readme_has_the_two_fresh_machine_commands():
    bash = "\n".join(blocks("bash"))
    assert "bash .ci/setup && mosaic-fast run" in bash
    assert re.search(r"^bash \.ci/run$", bash, flags=re.M)
    assert "bash .ci/setup --test" in (README.parent / ".ci" / "run").read_text()


@pytest.mark.parametrize("words", command_lines(), ids=lambda w: " ".join(w[:3]))
def test_every_command_line_names_real_options(words):
    command = main.get_command(click.Context(main), words[0])
    assert command is not None, f"no command mosaic-fast {words[0]}"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    unknown = [w for w in words[1:] if w.startswith("--") and w not in known]
    assert unknown == [], f"mosaic-fast {words[0]} has no {unknown}"


def test_the_kernel_example_runs_at_a_smaller_size():
    (code,) = [b for b in blocks("python") if "mf.aggregate" in b]
    small = code.replace("1_000_000", "10_000")
    namespace: dict = {}
    exec(compile(small, "README kernel example", "exec"), namespace)  # noqa: S102
    params = namespace["params"]
    assert params.shape == (64, 10_000) and params.dtype.name == "float32"
    w = namespace["graphs"].mixing_matrix(0)
    assert w.shape == (64, 64) and abs(w.sum(axis=1) - 1).max() < 1e-12


def test_the_api_example_passes_only_real_settings():
    (code,) = [b for b in blocks("python") if "mf.Experiment(" in b]
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in (
            "mf.Experiment",
            "exp.replace",
        ):
            names |= {k.arg for k in node.keywords}
    accepted = set(SETTINGS) | {"model", "train", "test", "trackers"}
    assert names and names <= accepted, names - accepted
    assert callable(mf.Experiment)
