"""Readers for real dataset layouts: text corpora for pretraining (text.py, tokenizers.py), and the
video datasets. Import the module you need; this package imports nothing heavy by itself.
"""

from __future__ import annotations

from pathlib import Path


def data_roots() -> list[Path]:
    """Where a recipe's relative data paths are looked up, in order: the working directory, then the vsuite
    checkout (the folder holding recipes/: the parent of $VSUITE_RECIPES when set), so shipped recipes
    that name `data/...` run from anywhere."""
    from ..recipes import recipes_dir  # one rule for where the checkout is (recipes.py imports no data module)

    return [Path.cwd(), recipes_dir().parent]
