"""Shared helpers for the test suite (importable: tests/ is on sys.path via conftest rootdir)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


def run_vsuite(*args: str, env: dict | None = None, cwd=None, timeout: float = 300) -> Result:
    """Run the real `vsuite` entry point in a subprocess (exit codes, streams, no tracebacks)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vsuite", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, code: int) -> None:
    assert result.code == code, f"exit {result.code} != {code}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("Error:"), result.stderr
