"""One trainer for every task: loop, torchrun DDP/FSDP2, checkpoints, resume, signals, metrics log.

    from vsuite.train import TrainConfig, fit
    fit(recipe.train, model, data, recipe, out_dir="runs/x", resume="auto", eval_fn=..., loss_fn=...)

Importing this package imports torch (the config alone: `from vsuite.train.config import TrainConfig`).
"""

from .config import TrainConfig
from .loop import TrainResult, fit, seed_everything

__all__ = ["TrainConfig", "TrainResult", "fit", "seed_everything"]
