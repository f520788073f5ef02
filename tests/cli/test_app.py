"""The CLI shell: version, help without torch, completions, error contract."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_vsuite

ROOT = Path(__file__).resolve().parents[2]
# this interpreter's vsuite, not whatever `vsuite` is first on PATH (an unactivated venv, another install)
VSUITE = [sys.executable, "-m", "vsuite"]


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
    generated = subprocess.run(VSUITE, capture_output=True, text=True, env=env).stdout
    shipped = (ROOT / "completions" / f"vsuite.{shell}").read_text()
    assert generated == shipped, f"completions/vsuite.{shell} is stale: regenerate it (README, 'Shell completion')"


def test_completion_suggests_commands():
    env = {**os.environ, "_VSUITE_COMPLETE": "complete_bash", "COMP_WORDS": "vsuite be", "COMP_CWORD": "1"}
    out = subprocess.run(VSUITE, capture_output=True, text=True, env=env)
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


@pytest.mark.parametrize("argv", [["--debug", "needs-gpu"], ["needs-gpu", "--debug"]])
def test_debug_is_accepted_before_and_after_the_command(argv):
    """The error text says "rerun with --debug": that must work wherever the user puts it."""
    from vsuite import cli
    from vsuite.errors import DeviceError

    @cli.app.command("needs-gpu", hidden=True)
    def needs_gpu():
        raise DeviceError("no GPU")

    try:
        with pytest.raises(DeviceError, match="no GPU"):  # --debug: the exception (and traceback) comes through
            cli.run(argv)
        assert cli.run(["needs-gpu"]) == 6
        assert cli.run(["needs-gpu", "--", "--debug"]) == 2  # after `--` it is an argument, not the option
    finally:
        cli.app.registered_commands[:] = [c for c in cli.app.registered_commands if c.name != "needs-gpu"]


def test_debug_after_the_command_in_a_real_process():
    r = run_vsuite("bench-kernels", "--heads", "0", "--debug")
    assert r.code == 1 and "Traceback" in r.stderr and "UsageError: --heads 0" in r.stderr
    assert_one_line_error(run_vsuite("bench-kernels", "--heads", "0"), 2)
