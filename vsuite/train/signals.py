"""Preemption: SIGTERM / SIGUSR1 set a flag; the loop finishes the step, saves, and exits 75.

The handler only records the signal (never raises inside a collective or a save). The loop asks
`requested()` at each step boundary; with several ranks the answer is agreed by an all-reduce, so
every rank stops after the same step even if the signal reached them at different times.
Under torchrun add `--signals-to-handle SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1` so torchrun forwards
SIGUSR1 to the workers (examples/slurm/pretrain.sbatch does).
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopFlag:
    """Install with `with StopFlag() as stop:`; the previous handlers come back on exit."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = signals
        self.signame: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signame is None:
            self.signame = signal.Signals(signum).name

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

    @property
    def requested(self) -> bool:
        return self.signame is not None
