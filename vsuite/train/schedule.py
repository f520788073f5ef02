"""Learning-rate schedules, as pure functions of the step (resuming needs only the step number).

  cosine        linear warmup (from `warmup_start` to lr over W = warmup_steps: with the default 0 that is
                lr/W, 2lr/W, ..., lr), then a cosine from lr down to lr * min_lr_ratio at total_steps
  inverse_sqrt  the same warmup, then lr * sqrt(W / step) (fairseq's inverse_sqrt, used by the TNN paper)
  constant      the same warmup, then lr
  linear        the same warmup, then a straight line from lr down to lr * min_lr_ratio at total_steps
                (the official AVLFormer / SwinBERT `warmup_linear`, which ends at 0)

`lr_at(s)` is the rate used for update s+1 (s = updates already done).
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, warmup_steps: int, total_steps: int, min_lr_ratio: float,
          schedule: str = "cosine", warmup_start: float = 0.0) -> float:
    """Rate for the update that follows `step` completed updates (0-based)."""
    warmup_steps = min(warmup_steps, total_steps)  # a warmup longer than the run ends with the run
    if warmup_steps > 0 and step < warmup_steps:
        return warmup_start + (lr - warmup_start) * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "inverse_sqrt":
        return lr * math.sqrt(max(1, warmup_steps) / (step + 1))
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    floor = lr * min_lr_ratio
    if schedule == "linear":
        return floor + (lr - floor) * (1.0 - progress)
    return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
