"""The fused Triton aggregation against the Rust kernel, bit for bit, under Triton's interpreter
(``TRITON_INTERPRET=1`` runs the kernel on CPU tensors): K = 1, 4, 16; contiguous, random and block
maps; sampled and uneven graphs; several column blocks per fragment. Sizes are tiny: the interpreter
runs every program instance in numpy."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("triton")

# The interpreter must be chosen before triton is imported: the checks run in a child process.
SCRIPT = r"""
import sys
import numpy as np
import torch
import mosaic_fast as mf
from mosaic_fast.kernel.triton_path import aggregate_triton
sys.path.insert(0, "tests")
from test_kernel_torch import make_graphs, make_map

failures = []
cases = 0
for k in (1, 4, 16):
    rng = np.random.default_rng(k)
    for kind in ("contiguous", "random", "blocks"):
        for mode in ("el-oracle", "uneven-per-fragment"):
            for n in (3, 9):
                d = 13 * k + 5  # not divisible by K (K > 1)
                x = rng.standard_normal((n, d)).astype(np.float32)
                x[0, :3] = -0.0  # a lone receiver keeps the sign of zero
                fragments = make_map(kind, d, k)
                graphs = make_graphs(mode, n, k, rng)
                want = mf.aggregate(x, graphs, fragments)
                out = torch.full((n, d), float("nan"))
                got = aggregate_triton(torch.from_numpy(x), graphs, fragments, out=out, block=8)
                cases += 1
                if got is not out or not np.array_equal(got.numpy().view(np.int32), want.view(np.int32)):
                    failures.append(f"K={k} {kind} {mode} n={n}")
print(cases, "cases;", "failures:", failures)
sys.exit(1 if failures else 0)
"""


def _interpreted(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )


def test_equals_the_rust_kernel_bit_for_bit_under_the_interpreter() -> None:
    res = _interpreted(SCRIPT)
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    assert "36 cases; failures: []" in res.stdout


def test_a_new_output_and_the_argument_checks() -> None:
    res = _interpreted(
        r"""
import numpy as np
import torch
import mosaic_fast as mf
from mosaic_fast.errors import MosaicError
from mosaic_fast.kernel.triton_path import aggregate_triton
x = torch.from_numpy(np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32))
fragments = mf.FragmentMap.contiguous(40, 2)
graphs = mf.sample_graphs(5, 2, 2, seed=0, round=0)
got = aggregate_triton(x, graphs, fragments)  # the default block: one program per row
assert torch.equal(got, torch.from_numpy(mf.aggregate(x.numpy(), graphs, fragments)))
try:
    aggregate_triton(x[:, :30], graphs, fragments)
except MosaicError as exc:
    print("checked:", exc)
"""
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "checked:" in res.stdout


def test_not_offered_when_turned_off() -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mosaic_fast.kernel import triton_path as k; print(k.available())",
        ],
        env={**os.environ, "MOSAIC_DEVICE_KERNEL": "torch"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert res.stdout.strip() == "False"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fused_kernel_equals_the_rust_kernel() -> None:
    import mosaic_fast as mf
    from mosaic_fast.kernel.triton_path import aggregate_triton

    rng = np.random.default_rng(5)
    for k, kind in ((1, "contiguous"), (4, "random"), (16, "blocks")):
        n, d = 37, 5_000 * k + 3
        x = rng.standard_normal((n, d)).astype(np.float32)
        fragments = (
            mf.FragmentMap.contiguous(d, k)
            if kind == "contiguous"
            else mf.FragmentMap.random(d, k, seed=1)
            if kind == "random"
            else mf.FragmentMap.blocks(d, k, block_size=64, seed=1)
        )
        graphs = mf.sample_graphs(n, k, 8, seed=2, round=1)
        want = mf.aggregate(x, graphs, fragments)
        got = aggregate_triton(torch.from_numpy(x).cuda(), graphs, fragments).cpu().numpy()
        assert np.array_equal(got.view(np.int32), want.view(np.int32)), (k, kind)
        # and mf.aggregate routes CUDA tensors to it
        routed = mf.aggregate(torch.from_numpy(x).cuda(), graphs, fragments).cpu().numpy()
        assert np.array_equal(routed.view(np.int32), want.view(np.int32)), (k, kind)


def test_a_failing_fused_kernel_falls_back_to_the_torch_path(monkeypatch) -> None:
    """If the fused kernel does not build or run on the GPU at hand, CUDA tensors take the torch
    index path from then on, with one warning; the arguments' own errors are not swallowed."""
    from types import SimpleNamespace

    from mosaic_fast import kernel
    from mosaic_fast.errors import MosaicValueError
    from mosaic_fast.kernel import triton_path as kernel_triton

    calls = []

    def broken(*args, **kwargs):
        calls.append("triton")
        raise RuntimeError("PTX compilation failed\nmore")

    monkeypatch.setattr(kernel_triton, "available", lambda: True)
    monkeypatch.setattr(kernel_triton, "aggregate_triton", broken)
    monkeypatch.setattr(kernel, "aggregate_torch", lambda *a, **k: calls.append("torch") or "ok")
    monkeypatch.setattr(kernel, "_TRITON_FAILED", [])
    cuda = SimpleNamespace(device=SimpleNamespace(type="cuda"))
    with pytest.warns(RuntimeWarning, match=r"fused Triton aggregation failed \(RuntimeError: PTX"):
        assert kernel.device_aggregate(cuda, None, None) == "ok"
    assert kernel.device_aggregate(cuda, None, None) == "ok"
    assert calls == ["triton", "torch", "torch"]

    def refused(*args, **kwargs):
        raise MosaicValueError("params has 3 columns")

    monkeypatch.setattr(kernel, "_TRITON_FAILED", [])
    monkeypatch.setattr(kernel_triton, "aggregate_triton", refused)
    with pytest.raises(MosaicValueError, match="params has 3 columns"):
        kernel.device_aggregate(cuda, None, None)


COMPILE = r"""
import re, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from mosaic_fast.kernel.triton_path import LAUNCH_OPTIONS, _kernel

capability = int(sys.argv[1])
signature = {
    "x_ptr": "*fp32", "out_ptr": "*fp32", "cols_ptr": "*i64", "col_start": "i64", "n_cols": "i32",
    "n_nodes": "i32", "indptr_ptr": "*i64", "senders_ptr": "*i64", "scale_ptr": "*fp32",
    "stride": "i32", "GATHER": "constexpr", "BLOCK": "constexpr",
}
for gather in (False, True):
    source = ASTSource(_kernel(), signature, constexprs={"GATHER": gather, "BLOCK": 1024})
    try:
        compiled = triton.compile(
            source, target=GPUTarget("cuda", capability, 32), options=dict(LAUNCH_OPTIONS)
        )
    except (RuntimeError, FileNotFoundError) as exc:  # no ptxas with this triton
        print("SKIP", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        sys.exit(0)
    ops = set(re.findall(r"\b(fma\.[\w.]*|(?:add|mul|sub|div)\.[\w.]*f32)\b", compiled.asm["ptx"]))
    print(gather, sorted(ops))
"""


@pytest.mark.parametrize("capability", [80, 90])
def test_the_kernel_compiles_for_gpus_without_fused_multiply_adds(capability: int) -> None:
    """Compiled here, without a GPU, with the launch's options, for A100 (sm_80) and H100/H200
    (sm_90), in a process without the interpreter: the PTX adds and multiplies in IEEE
    round-to-nearest and holds no fma."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    res = subprocess.run(
        [sys.executable, "-c", COMPILE, str(capability)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    if res.stdout.startswith("SKIP"):
        pytest.skip(f"cannot compile for sm_{capability} here: {res.stdout[5:]}")
    assert res.stdout.splitlines() == [
        "False ['add.rn.f32', 'mul.rn.f32']",
        "True ['add.rn.f32', 'mul.rn.f32']",
    ]
