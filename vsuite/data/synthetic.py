"""A tiny synthetic action-recognition dataset in the Kinetics list layout: a bar moving left vs right.

    make_bar_dataset("data/bars")   ->  data/bars/{train.csv, test.csv, videos/*.mp4}

train.csv / test.csv have the header `path,label` with labels "left" / "right". Videos differ in length,
bar width and frame size, so the held-out videos are not copies of the training ones; the class is the
direction of motion. Horizontal flips swap the classes: train with data.random_flip = false.
"""

from __future__ import annotations

import random
from pathlib import Path


def make_bar_dataset(folder: str | Path, train_per_class: int = 24, test_per_class: int = 8, *, seed: int = 0,
                     sizes: tuple[tuple[int, int], ...] = ((32, 32), (32, 40), (40, 32)),
                     frames: tuple[int, int] = (12, 24), bar_widths: tuple[int, int] = (3, 6), fps: int = 8) -> Path:
    """Write the videos and the two lists; returns the folder."""
    from ..media.synth import make_bar_video

    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        rows = ["path,label"]
        for k in range(per_class):
            for direction in ("left", "right"):
                name = f"videos/{split}_{direction}_{k:03d}.mp4"
                make_bar_video(folder / name, direction=direction, num_frames=rng.randint(*frames), fps=fps,
                               size=rng.choice(sizes), bar_width=rng.randint(*bar_widths))
                rows.append(f"{name},{direction}")
        (folder / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return folder
