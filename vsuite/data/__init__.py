"""Readers for real dataset layouts: text corpora for pretraining (text.py, tokenizers.py), and the
video datasets. Import the module you need; this package imports nothing heavy by itself.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_roots() -> list[Path]:
    """Where a recipe's relative data paths are looked up, in order: the working directory, then the vsuite
    checkout (the folder holding recipes/: the parent of $VSUITE_RECIPES when set), so shipped recipes
    that name `data/...` run from anywhere."""
    recipes = os.environ.get("VSUITE_RECIPES")
    checkout = Path(recipes).parent if recipes else Path(__file__).resolve().parents[2]
    return [Path.cwd(), checkout]
