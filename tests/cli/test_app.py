"""The CLI shell: version, help without torch, completions, error contract."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_vsuite

ROOT = Path(__file__).resolve().parents[2]
VSUITE = shutil.which("vsuite") or "vsuite"  # the installed console script


def test_version():
    r = run_vsuite("--version")
    assert r.code == 0 and r.stdout.strip().startswith("vsuite ")


def test_help_does_not_import_torch():
    code = ("import sys; from vsuite.cli import run; rc = run(['--help']);"
            "assert 'torch' not in sys.modules, 'torch imported by --help'; print('ok', rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ok 0" in out.stdout
    assert "bench-kernels" in out.stdout and "Exit codes" in out.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completions_are_current(shell):
    """completions/ must be what the current app generates (regenerate: see README)."""
    env = {**os.environ, "_VSUITE_COMPLETE": f"source_{shell}"}
    generated = subprocess.run([VSUITE], capture_output=True, text=True, env=env).stdout
    shipped = (ROOT / "completions" / f"vsuite.{shell}").read_text()
    assert generated == shipped, f"completions/vsuite.{shell} is stale: regenerate it (README, 'Shell completion')"


def test_completion_suggests_commands():
    env = {**os.environ, "_VSUITE_COMPLETE": "complete_bash", "COMP_WORDS": "vsuite be", "COMP_CWORD": "1"}
    out = subprocess.run([VSUITE], capture_output=True, text=True, env=env)
    assert "bench-kernels" in out.stdout


def test_unknown_command_is_usage_error():
    r = run_vsuite("no-such-command")
    assert r.code == 2 and "Traceback" not in r.stderr


def test_internal_errors_are_one_line_without_debug(monkeypatch, capsys):
    from vsuite import cli

    @cli.app.command("boom", hidden=True)
    def boom():
        raise RuntimeError("kaboom")

    try:
        assert cli.run(["boom"]) == 1
        err = capsys.readouterr().err
        assert "internal error: RuntimeError: kaboom" in err and "Traceback" not in err
        with pytest.raises(RuntimeError):
            cli.run(["--debug", "boom"])
    finally:
        cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.name != "boom"]


def test_vsuite_errors_map_to_exit_codes(capsys):
    from vsuite import cli
    from vsuite.errors import DeviceError

    @cli.app.command("needs-gpu", hidden=True)
    def needs_gpu():
        raise DeviceError("CUDA is not available on this machine; use --device cpu")

    try:
        assert cli.run(["needs-gpu"]) == 6
        assert capsys.readouterr().err.strip() == "Error: CUDA is not available on this machine; use --device cpu"
    finally:
        cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.name != "needs-gpu"]


def test_bad_seq_is_one_line_usage_error():
    assert_one_line_error(run_vsuite("bench-kernels", "--seq", "-5"), 2)
    assert_one_line_error(run_vsuite("bench-kernels", "--seq", "abc"), 2)
