"""The one results format of every `vsuite eval <benchmark>`: OUT/results.json + OUT/samples.jsonl.

results.json (schema "vsuite.results/1"; lmms-eval's `results[task]` is our `scores`, its
`samples_<task>.jsonl` our samples.jsonl):
    {"schema", "benchmark", "scores": {metric: value, ...}, "n_samples": int,
     "command": "vsuite eval ... (the resolved command line)", "config": {resolved options},
     "model": {"name": str | null, "source": "model" | "predictions", ...},
     "protocol": {"frames", "fps", "decoder", "prompt_hash", ...},
     "vsuite_version", "git_hash", "date" (UTC ISO 8601), "elapsed_s",
     "details": {benchmark-specific extras, e.g. eval lm's per-length rows}}
samples.jsonl: one JSON object per item, in benchmark order: {"id", "target", "response", "score", ...}
(`score` is a number or {metric: number}; extra keys are the benchmark's diagnostics).

Both are written atomically: each to a temporary file in OUT, then renamed; samples.jsonl first, so a
results.json always has its samples beside it. `print_table` puts the scores on stderr.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCHEMA = "vsuite.results/1"
PROTOCOL_KEYS = ("frames", "fps", "decoder", "prompt_hash")
SAMPLE_KEYS = ("id", "target", "response", "score")


def git_hash() -> str | None:
    """The commit of the vsuite checkout (with "-dirty" when it has changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def resolved_command(argv: list[str] | None = None) -> str:
    """The command line as typed (`vsuite ...`), shell-quoted."""
    import shlex

    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["vsuite", *args])


def default_out(benchmark: str, model_folder: str | Path, data: str | Path) -> Path:
    """runs/eval/<benchmark>-<model>-<data stem>; a run's checkpoint (RUN/checkpoints/step-N) is named by its run."""
    folder = Path(model_folder)
    name = folder.parent.parent.name if folder.parent.name == "checkpoints" else folder.name
    return Path("runs") / "eval" / f"{benchmark}-{name}-{Path(data).stem or 'data'}"


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_results(scores: dict, samples: list[dict], command: str, model: dict | None, protocol: dict | None,
                  *, benchmark: str, config: dict | None = None, elapsed_s: float | None = None,
                  details: dict | None = None) -> dict:
    """The results.json document (also what --json prints)."""
    from .. import __version__

    proto = {key: None for key in PROTOCOL_KEYS}
    proto.update(protocol or {})
    return {"schema": SCHEMA, "benchmark": benchmark, "scores": scores, "n_samples": len(samples),
            "command": command, "config": config or {}, "model": model or {"name": None, "source": "predictions"},
            "protocol": proto, "vsuite_version": __version__, "git_hash": git_hash(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "elapsed_s": None if elapsed_s is None else round(float(elapsed_s), 3), "details": details or {}}


def write_results(out_dir: str | Path, scores: dict, samples: list[dict], command: str, model: dict | None,
                  protocol: dict | None, *, benchmark: str, config: dict | None = None,
                  elapsed_s: float | None = None, details: dict | None = None) -> dict:
    """Write OUT/samples.jsonl then OUT/results.json atomically; return the results document.

    Every sample must carry id, target, response and score (ValueError otherwise: a bug of the caller).
    """
    for i, sample in enumerate(samples):
        missing = [k for k in SAMPLE_KEYS if k not in sample]
        if missing:
            raise ValueError(f"sample {i} lacks {', '.join(missing)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = build_results(scores, samples, command, model, protocol, benchmark=benchmark, config=config,
                        elapsed_s=elapsed_s, details=details)
    lines = "".join(json.dumps(s, ensure_ascii=False, default=str) + "\n" for s in samples)
    _atomic_write(out / "samples.jsonl", lines)
    _atomic_write(out / "results.json", json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
    return doc


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def print_table(benchmark: str, scores: dict, note: str = "") -> None:
    """The scores as a two-column table on stderr (floats with 2 decimals)."""
    from rich.table import Table

    from ..console import stderr

    table = Table("metric", "value", title=f"{benchmark}{' ' + note if note else ''}", box=None,
                  title_justify="left")
    for key, value in scores.items():
        table.add_row(str(key), _fmt(value))
    stderr.print(table)
