"""`vsuite finetune RECIPE`: train a video model on its dataset with the shared trainer.

One command for every video task. A finetune recipe names its kind in a `[task]` table,

    [task]
    kind = "classify"        # LVT action recognition (vsuite.tasks.finetune_classify)
    kind = "caption"         # Vriptor-style video captioner on Vript-format data (vsuite.tasks.finetune_caption)
    kind = "describe"        # AVLFormer audible video description on FAVDBench-layout data (vsuite.tasks.finetune_describe)
    kind = "segment"         # AVS segmenter on AVSBench S4 / MS3 (vsuite.tasks.finetune_segment)

and vsuite.recipes resolves the recipe against the tables of the task "finetune-<kind>" (TASK_TABLES), so
each kind has its own typed [model] / [data] / [eval] tables while [train] is always vsuite.train.TrainConfig.
To add a kind: register "finetune-<kind>" in vsuite.recipes.TASK_TABLES (its "task" table is
vsuite.train.config.FinetuneTaskConfig), add the kind to FinetuneTaskConfig.kind and to KINDS below, and
give the module a `run(recipe, *, resume)` function.
"""

from __future__ import annotations

import importlib

# kind -> module with run(recipe, *, resume)
KINDS = {"classify": "vsuite.tasks.finetune_classify", "caption": "vsuite.tasks.finetune_caption"}

KINDS["describe"] = "vsuite.tasks.finetune_describe"  # FAVD / AVLFormer
KINDS["segment"] = "vsuite.tasks.finetune_segment"  # AVS with bidirectional generation (AVSBench)


def run(recipe, *, resume: str = "auto"):
    """Dispatch a resolved finetune recipe (recipe.task == "finetune-<kind>") to its task module."""
    kind = recipe.tables["task"].kind
    return importlib.import_module(KINDS[kind]).run(recipe, resume=resume)
