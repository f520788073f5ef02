"""The output contract: data on stdout, everything else on stderr.

`out` prints data (tables, JSON) to stdout. `log`, `warn` and `error` go to stderr. On a
terminal progress is a Rich bar; elsewhere (a SLURM log) `Progress` prints a plain line
every `every` steps, because Rich only prints the final frame to a non-terminal.
"""

from __future__ import annotations

import json
import sys
import time

from rich.console import Console

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def out(obj) -> None:
    """Data to stdout: Rich renderables as they are, dicts/lists as JSON."""
    if isinstance(obj, (dict, list)):
        sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        stdout.print(obj)


def log(msg: str) -> None:
    stderr.print(msg, highlight=False, markup=False)


def _prefixed(prefix: str, style: str, msg: str):
    """`Prefix: msg` with only the prefix styled: messages may hold [brackets] (recipe tables)."""
    from rich.text import Text

    return Text.assemble((prefix, style), " ", msg)


def warn(msg: str) -> None:
    stderr.print(_prefixed("Warning:", "yellow", msg), highlight=False)


def error(msg: str) -> None:
    stderr.print(_prefixed("Error:", "red", msg), highlight=False)


class Progress:
    """Progress over `total` steps: a Rich bar on a terminal, plain lines otherwise."""

    def __init__(self, description: str, total: int, every: int = 1):
        self.description, self.total, self.every, self.done = description, total, max(1, every), 0
        self._start = time.monotonic()
        self._bar = None
        if stderr.is_terminal:
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(console=stderr, transient=True)
            self._task = self._bar.add_task(description, total=total)

    def __enter__(self):
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def advance(self, note: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{self.description} {note}".strip())
        elif self.done % self.every == 0 or self.done == self.total:
            elapsed = time.monotonic() - self._start
            sys.stderr.write(f"{self.description}: {self.done}/{self.total} {note} ({elapsed:.1f}s)\n".replace("  ", " "))
            sys.stderr.flush()

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)
        return False
