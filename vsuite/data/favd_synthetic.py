"""Tiny synthetic audible clips in the FAVDBench layout (for the favd-tiny-cpu recipe and tests).

    make_favd_synthetic("data/favd-synth")  ->  ROOT/meta/{train,val,test}.csv, ROOT/annotations_en.json,
                                                ROOT/videos/<split>/<clip id>.mp4

Each clip is a coloured square moving left or right over mid grey, with a fading motion trail behind it, while
a tone plays: a high beep (1000 Hz) or a
low hum (220 Hz). The description has FAVD's shape (summary, visual detail, the sound last), lower case with
". " between sentences, e.g. "a red square moves to the right. it slides across a grey background. a high
beep is heard." Clip ids are `<ytid>_<start_ms>_<end_ms>` with start 0 and end = the clip length in ms.
Every split holds every combination (a memorisation task: the test asks a model to describe what it saw).
"""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

COLOURS = {"red": (230, 40, 40), "blue": (40, 80, 230), "green": (40, 200, 60)}
SOUNDS = {"high": ("beep", 1000.0), "low": ("hum", 220.0)}
DIRECTIONS = ("left", "right")
# Mid grey, about the ImageNet mean the frames are normalised with: the background's tokens then carry little
# that every clip shares, and a tiny randomly initialised encoder's tokens differ mostly where the clips differ.
GREY = (124, 116, 104)


def caption_for(colour: str, direction: str, pitch: str) -> str:
    sound = SOUNDS[pitch][0]
    return (f"a {colour} square moves to the {direction}. it slides across a grey background. "
            f"a {pitch} {sound} is heard.")


def _frames(colour: str, direction: str, num_frames: int, size: int, square: int, trail: int, background):
    """The square with a fading motion trail behind it (the streak a moving object leaves in a real camera:
    it makes the direction visible inside every frame as well as across frames)."""
    import numpy as np

    travel = size - square
    top = (size - square) // 2
    rgb = np.array(COLOURS[colour], np.float32)
    bg = np.array(background, np.float32)
    for i in range(num_frames):
        x = round(i * travel / max(1, num_frames - 1))
        x = x if direction == "right" else travel - x
        img = np.empty((size, size, 3), np.float32)
        img[:] = bg
        for k in range(trail, 0, -1):  # farther behind = closer to the background
            tx = x - k if direction == "right" else x + square - 1 + k
            if 0 <= tx < size:
                a = 1 - k / (trail + 1)
                img[top:top + square, tx] = a * rgb + (1 - a) * bg
        img[top:top + square, x:x + square] = rgb
        yield img.round().astype(np.uint8)


def make_favd_synthetic(root: str | Path, colours=("red", "blue"), *, num_frames: int = 8, fps: int = 8,
                        size: int = 32, square: int = 10, trail: int = 6, background=GREY,
                        sample_rate: int = 16000) -> Path:
    """Write every colour x direction x sound clip into each split; returns the folder."""
    from ..media.synth import sine, write_video

    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    duration_ms = round(1000 * num_frames / fps)
    annotations = {}
    for split in ("train", "val", "test"):
        (root / "videos" / split).mkdir(parents=True, exist_ok=True)
        rows = ["ytid,start,end"]
        for colour, direction, pitch in product(colours, DIRECTIONS, SOUNDS):
            ytid = f"synth-{split}-{colour}-{direction}-{pitch}"
            cid = f"{ytid}_0_{duration_ms}"
            tone = sine(SOUNDS[pitch][1], duration_ms / 1000, sample_rate, amplitude=0.5)
            frames = _frames(colour, direction, num_frames, size, square, trail, background)
            write_video(root / "videos" / split / f"{cid}.mp4", frames, fps, audio=tone, sample_rate=sample_rate)
            rows.append(f"{ytid},0,{duration_ms}")
            annotations[cid] = caption_for(colour, direction, pitch)
        (root / "meta" / f"{split}.csv").write_text("\n".join(rows) + "\n")
    (root / "annotations_en.json").write_text(json.dumps(annotations, indent=1) + "\n")
    return root


__all__ = ["COLOURS", "DIRECTIONS", "GREY", "SOUNDS", "caption_for", "make_favd_synthetic"]
