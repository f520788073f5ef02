"""Ahead-of-time compiles of Triton kernels for sm_90, for the kernel tests: the code the interpreter never
runs, and ptxas's register / spill report. No GPU is needed: triton ships ptxas.

A test writes a short script that calls `compile_kernel` for each kernel (and prints `ptxas_report` lines),
ending with print("compiled"); `run(script)` executes it in a fresh Python without TRITON_INTERPRET (the
interpreter replaces the compiler) and returns its stdout, or skips where triton has no CUDA toolchain.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

VARLEN_TABLES = ("cu", "chunk_off", "chunk_seq")  # int32 host tables; None (constexpr) without cu_seqlens


def signature(fn, consts: dict, dtype: str, scalars: dict, states: tuple, bf16_states: tuple = ()) -> dict:
    """Triton signature of `fn`: constexprs, scalar types, fp32 state buffers (bf16 where listed), int32
    tables, and `dtype` for every other pointer (q, k, v, o, gradients)."""
    def kind(name):
        if name in consts:
            return "constexpr"
        if name in scalars:
            return scalars[name]
        if name in bf16_states:
            return "*bf16"
        if name in states:
            return "*fp32"
        return "*i32" if name in VARLEN_TABLES else "*" + dtype

    return {n: kind(n) for n in fn.arg_names}


def compile_kernel(fn, consts: dict, dtype: str, *, scalars: dict, states: tuple, warps: int, stages: int,
                   bf16_states: tuple = ()):
    """triton.compile for sm_90; consts may name more than `fn` takes (the extra are dropped), and without
    IS_VARLEN the varlen tables become None."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    consts = dict(consts)
    if not consts.get("IS_VARLEN", False):
        consts.update({n: None for n in VARLEN_TABLES})
    consts = {n: v for n, v in consts.items() if n in fn.arg_names}
    sig = signature(fn, consts, dtype, scalars, states, bf16_states)
    return triton.compile(ASTSource(fn, sig, consts), target=GPUTarget("cuda", 90, 32),
                          options=dict(num_warps=warps, num_stages=stages))


def ptxas_report(kernel):
    """(registers, spill store bytes, spill load bytes) of a compiled kernel, from `ptxas -v` for sm_90a."""
    import tempfile

    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "k.ptx")
        Path(src).write_text(kernel.asm["ptx"])
        r = subprocess.run([get_ptxas(90).path, "-v", "-arch=sm_90a", src, "-o", os.path.join(d, "k.o")],
                           capture_output=True, text=True)
    regs = re.search(r"Used (\d+) registers", r.stderr)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", r.stderr)
    return (int(regs.group(1)), int(spill.group(1)), int(spill.group(2))) if regs and spill else r.stderr[-300:]


def run(script: str) -> str:
    """Runs `script` (which imports this module as sm90_aot) in a fresh Python without the interpreter."""
    import pytest

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).parent), env.get("PYTHONPATH")) if p)
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and ("ptxas" in r.stderr and "not found" in r.stderr.lower()):
        pytest.skip("this triton build has no CUDA toolchain")
    assert r.returncode == 0 and "compiled" in r.stdout, r.stderr[-4000:]
    return r.stdout
