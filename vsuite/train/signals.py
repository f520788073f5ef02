"""Stopping a training run cleanly: stop requests, the PREEMPTED marker, the resume command.

Stop requests (the handlers only record them; the loop acts at the next update boundary, so nothing
is interrupted inside a collective or a save; with several ranks the loop agrees on the answer):
  - SIGTERM, SIGUSR1 (preemption, SLURM time limit) or a file OUT/STOP (a stop request written by
    examples/slurm/pretrain.sbatch on SIGUSR1): finish the update, save, write OUT/PREEMPTED (JSON:
    step, checkpoint, reason, resume command), then exit 75 (EX_TEMPFAIL) -- or 0 when the process
    is a torchrun worker. Why: torchrun reports any non-zero worker exit as a ChildFailedError
    traceback and exits 1, and a torchrun that is itself signalled ends with a SignalException
    traceback; so the job script never signals torchrun, it writes OUT/STOP, and it requeues when it
    finds OUT/PREEMPTED. A healthy requeue then reads as one line in the job log.
  - SIGINT (Ctrl-C), the first: finish the update, save, exit 130 with one line saying what was saved
    and how to resume. A second Ctrl-C (or Ctrl-C after another stop request) aborts at once without
    saving (KeyboardInterrupt), and the message names the last complete checkpoint.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

STOP_FILE = "STOP"  # written by the job script: "save and stop at the next update boundary"
MARKER_FILE = "PREEMPTED"  # written by rank 0 after the checkpoint of a preemption is complete

# What a stop request asks for (agreed over ranks by taking the maximum).
NONE, PREEMPT, INTERRUPT = 0, 1, 2

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def under_torchrun() -> bool:
    """True in a worker started by torchrun (torchelastic sets TORCHELASTIC_RUN_ID for its workers)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


class StopFlag:
    """`with StopFlag(out_dir / STOP_FILE) as stop:`; the previous handlers come back on exit.

    `poll()` at each update boundary: NONE, PREEMPT or INTERRUPT; `reason` says what asked
    ("SIGUSR1", "SIGINT", "stop request runs/x/STOP").
    """

    def __init__(self, stop_file: Path | None = None, signals=STOP_SIGNALS, announce: bool = True):
        self.stop_file = Path(stop_file) if stop_file is not None else None
        self.signals, self.announce = signals, announce
        self.reason: str | None = None
        self.kind = NONE
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.reason is not None:
            raise KeyboardInterrupt  # second request: abort now (loop.py says what is left on disk)
        self.reason = signal.Signals(signum).name
        self.kind = INTERRUPT if signum == signal.SIGINT else PREEMPT
        if signum == signal.SIGINT and self.announce:
            # os.write, not print: a handler may run in the middle of another write to stderr
            os.write(2, b"Ctrl-C: finishing this update and saving a checkpoint "
                        b"(Ctrl-C again to stop at once without saving)\n")

    def poll(self) -> int:
        if self.kind == NONE and self.stop_file is not None and self.stop_file.exists():
            try:  # the job script writes "SIGUSR1 job 4242 <time>": name the signal behind the request
                first = (self.stop_file.read_text().split() or [""])[0]
            except OSError:
                first = ""
            via = f"{first} (via {self.stop_file})" if first.startswith("SIG") else f"a stop request ({self.stop_file})"
            self.reason, self.kind = via, PREEMPT
        return self.kind

    def clear_stop_file(self) -> None:
        if self.stop_file is not None:
            self.stop_file.unlink(missing_ok=True)

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        return False


def resume_command(out_dir: Path) -> str:
    """The command that continues this run: this process's vsuite command line with `--resume auto`."""
    argv = list(sys.argv)
    main = argv[0] if argv else ""
    if not (Path(main).name == "vsuite" or main.endswith(os.path.join("vsuite", "__main__.py"))):
        return f"rerun with --out {out_dir} --resume auto"  # fit() called from Python
    args, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg == "--resume":
            skip = True  # drop its value too
        elif not arg.startswith("--resume="):
            args.append(arg)
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(out_dir)]
    command = "vsuite " + shlex.join([*args, "--resume", "auto"])
    return f"torchrun [same options] -m {command}" if under_torchrun() else command


def write_marker(out_dir: Path, **record) -> Path:
    """OUT/PREEMPTED, atomically (a job script may read it the moment the workers exit)."""
    path = Path(out_dir) / MARKER_FILE
    tmp = path.with_name(f".{MARKER_FILE}.tmp")
    tmp.write_text(json.dumps({**record, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_marker(out_dir: Path) -> dict | None:
    path = Path(out_dir) / MARKER_FILE
    return json.loads(path.read_text()) if path.exists() else None


def clear_marker(out_dir: Path) -> None:
    """At the start of a run: an old marker would make the job script requeue a finished run."""
    (Path(out_dir) / MARKER_FILE).unlink(missing_ok=True)
