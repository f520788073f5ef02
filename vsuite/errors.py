"""Typed errors and the exit codes the CLI maps them to (documented in the README).

Every error a user can cause is one of these: the CLI prints its message as one line on
stderr and exits with its code; a traceback appears only with --debug.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug: rerun with --debug and report it
EXIT_USAGE = 2  # bad command-line arguments (also Typer's own usage errors)
EXIT_RECIPE = 3  # invalid recipe file or key=value override
EXIT_MODEL = 4  # model or checkpoint not found, hub unreachable without a cached copy
EXIT_DATA = 5  # unreadable or invalid input data or media
EXIT_DEVICE = 6  # the device or dtype asked for is not available on this machine
EXIT_DIVERGED = 7  # training stopped on a NaN/inf loss; the last good checkpoint is kept
EXIT_PREEMPTED = 75  # stopped by SIGTERM/SIGUSR1 after saving a checkpoint (EX_TEMPFAIL: requeue)
EXIT_INTERRUPTED = 130  # Ctrl-C

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug): rerun with --debug and report it",
    EXIT_USAGE: "bad command-line arguments",
    EXIT_RECIPE: "invalid recipe or key=value override",
    EXIT_MODEL: "model or checkpoint not found, or the hub unreachable without a cached copy",
    EXIT_DATA: "unreadable or invalid input data or media",
    EXIT_DEVICE: "device or dtype not available on this machine",
    EXIT_DIVERGED: "training stopped on a NaN or infinite loss; the last good checkpoint is kept",
    EXIT_PREEMPTED: "stopped by SIGTERM/SIGUSR1 after saving a checkpoint; requeue and resume with --resume auto",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class VsuiteError(Exception):
    """Base class: `str(err)` is the one-line message shown to the user."""

    exit_code = EXIT_INTERNAL


class UsageError(VsuiteError):
    exit_code = EXIT_USAGE


class RecipeError(VsuiteError):
    exit_code = EXIT_RECIPE


class ModelNotFoundError(VsuiteError):
    exit_code = EXIT_MODEL


class DataError(VsuiteError):
    exit_code = EXIT_DATA


class DeviceError(VsuiteError):
    exit_code = EXIT_DEVICE


class DivergedError(VsuiteError):
    exit_code = EXIT_DIVERGED


class PreemptedError(VsuiteError):
    """Raised after a checkpoint was saved on SIGTERM/SIGUSR1, so SLURM can requeue."""

    exit_code = EXIT_PREEMPTED


class InterruptedRunError(VsuiteError):
    """Ctrl-C during training: raised after the checkpoint was saved (or, on a second Ctrl-C, without one)."""

    exit_code = EXIT_INTERRUPTED
