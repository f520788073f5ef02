"""Metrics as JSON lines in the run folder (out_dir/metrics.jsonl), written by rank 0.

One line per logged training step: {"step", "loss", "lr", "grad_norm", "tokens_per_s", "tokens",
"elapsed"}; eval lines carry "step" and "eval_*" keys. Floats are written with Python's repr, which
round-trips exactly, so two runs can be compared bit for bit. On resume, lines past the resumed step
(logged after the last checkpoint by a run that then died) are dropped, so the file is one curve.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value


class MetricsLog:
    def __init__(self, path: Path, enabled: bool = True, resume_step: int | None = None):
        self.path, self.enabled = Path(path), enabled
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            self._truncate_after(resume_step)
        self._file = self.path.open("a")

    def _truncate_after(self, step: int) -> None:
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except ValueError:
                continue  # a line cut short by a kill
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(f"{line}\n" for line in keep))
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        if self.enabled:
            self._file.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self.enabled:
            self._file.close()


def read(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file (for tests and tools)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
