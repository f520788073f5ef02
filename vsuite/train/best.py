"""Keep the best model on validation: OUT/best, a model folder + best.json, rewritten whenever a score beats it.

Used by the finetunes that select a checkpoint on held-out data (segment: mIoU, describe: CIDEr). The trainer's
`eval_fn` scores the model and offers the scores here; rank 0 writes. A resumed run reads best.json first and keeps
competing with its earlier best. FSDP-sharded parameters have no full copy on one rank, so nothing is kept then
(one warning): the checkpoints and their eval lines in metrics.jsonl serve instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..console import log, warn

BEST_FILE = "best.json"


class BestKeeper:
    """OUT/best holds the model whose `metric` (higher is better) was the highest so far on `subset`.

    `extra_files()` -> {name: text or bytes} written beside the weights (tokenizer files, records, the recipe)."""

    def __init__(self, out_dir: Path, env, *, metric: str, subset: str,
                 extra_files: Callable[[], dict] | None = None):
        self.folder, self.env = Path(out_dir) / "best", env
        self.metric, self.subset, self.extra_files = metric, subset, extra_files or dict
        self.best, self.warned = float("-inf"), False
        record = read_record(self.folder)
        if record is not None:
            try:
                self.best = float(record["scores"][metric])
            except (KeyError, TypeError, ValueError):
                pass

    def offer(self, model, step: int, scores: dict) -> bool:
        """Saves `model` as OUT/best when scores[metric] beats the best so far; True if it did."""
        from ..hub import save_model
        from .checkpoint import quiet

        value = float(scores[self.metric])
        if not value > self.best:
            return False
        if any(hasattr(p, "full_tensor") for p in model.parameters()):  # FSDP-sharded: no full copy here
            if not self.warned:
                warn("train.parallel = fsdp: the best-on-validation copy (OUT/best) is not kept; use the "
                     "checkpoints and their eval lines in metrics.jsonl")
                self.warned = True
            return False
        self.best = value
        if self.env.is_main:
            record = {"step": step, "subset": self.subset, "metric": self.metric, "scores": scores}
            extra = {**self.extra_files(), BEST_FILE: json.dumps(record, indent=2) + "\n"}
            with quiet():  # no transformers progress bar in the training log
                save_model(model, self.folder, extra_files=extra)
            log(f"best {self.subset} {self.metric} so far ({value:.4f}) at step {step}: saved {self.folder}")
        return True

    def chosen(self) -> dict | None:
        """best.json of OUT/best, or None when no eval saved one."""
        return read_record(self.folder)


def read_record(folder: Path) -> dict | None:
    """The best.json record of a best folder, or None (missing or unreadable)."""
    path = Path(folder) / BEST_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
