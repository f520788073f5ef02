"""One trainer for every task: loop, torchrun DDP/FSDP2, checkpoints, resume, signals, metrics log.

    from vsuite.train import TrainConfig, fit
    fit(recipe.train, model, data, recipe, out_dir="runs/x", resume="auto", eval_fn=..., loss_fn=...)

`fit` and friends are imported on first use, so that reading a recipe (`vsuite.train.config`) does not import
torch: a bad recipe value is reported before any heavy import.
"""

from __future__ import annotations

from .config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "fit", "parameter_summary", "seed_everything"]


def __getattr__(name: str):
    if name in ("TrainResult", "fit", "parameter_summary", "seed_everything"):
        from . import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
