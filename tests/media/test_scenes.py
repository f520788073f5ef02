"""Scene detection finds planted hard cuts and a fade through black."""

from __future__ import annotations

import colorsys

import pytest
import torch

from vsuite.media import SceneDetector, detect_scenes, scenes_from_cuts
from vsuite.media.scenes import rgb_to_hsv
from vsuite.media.synth import SCENE_COLOURS


def test_detects_planted_cuts_and_fade(cut_video, backend):
    scenes = detect_scenes(cut_video.path, backend=backend)
    starts = [s.start_frame for s in scenes]
    assert len(starts) == len(cut_video.scene_starts)
    for found, planted in zip(starts, cut_video.scene_starts):
        assert abs(found - planted) <= 1, (starts, cut_video.scene_starts)
    black_start, black_end = cut_video.fade_black
    assert black_start <= starts[-1] < black_end  # the fade is split inside the black frames
    # contiguous half-open scenes covering the video, times = frame / fps
    assert scenes[0].start_frame == 0 and scenes[-1].end_frame == cut_video.num_frames
    assert all(a.end_frame == b.start_frame for a, b in zip(scenes, scenes[1:]))
    assert all(s.start_time == s.start_frame / 24 and s.end_time == s.end_frame / 24 for s in scenes)
    assert scenes[1].to_dict() == {"start_frame": starts[1], "end_frame": starts[2],
                                   "start_time": starts[1] / 24, "end_time": starts[2] / 24}


def solid(colour, n: int, size=(32, 48)) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.uint8).expand(n, *size, 3).clone()


def test_min_scene_len_suppresses_close_cuts():
    a, b, c = SCENE_COLOURS[:3]
    frames = torch.cat([solid(a, 30), solid(b, 6), solid(c, 30)])  # cuts at 30 and 36
    detector = SceneDetector(min_scene_len=15)
    detector.push(frames)
    assert detector.cuts() == [30]
    loose = SceneDetector(min_scene_len=5)
    for frame in frames:  # frame by frame gives the same as one batch
        loose.push(frame)
    assert loose.cuts() == [30, 36] and loose.num_frames == 66


def test_dark_runs_at_the_ends_do_not_split_and_fades_are_optional():
    a, b = SCENE_COLOURS[:2]
    black = (0, 0, 0)
    frames = torch.cat([solid(black, 10), solid(a, 30), solid(black, 10), solid(b, 30), solid(black, 8)])
    detector = SceneDetector()
    detector.push(frames)
    assert detector.cuts() == [45]  # middle of the black run 40..49 only
    no_fades = SceneDetector(detect_fades=False)
    no_fades.push(frames)
    assert 45 not in no_fades.cuts()


def test_rgb_to_hsv_matches_colorsys_on_opencv_scale():
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (200, 3), generator=gen, dtype=torch.uint8)
    ours = rgb_to_hsv(rgb)
    for pixel, hsv in zip(rgb.tolist(), ours.tolist()):
        h, s, v = colorsys.rgb_to_hsv(*(x / 255 for x in pixel))
        assert hsv == pytest.approx([h * 180 % 180, s * 255, v * 255], abs=1e-3)


def test_scenes_from_cuts():
    scenes = scenes_from_cuts([10, 25], 40, 10.0)
    assert [(s.start_frame, s.end_frame) for s in scenes] == [(0, 10), (10, 25), (25, 40)]
    assert [(s.start_time, s.end_time) for s in scenes] == [(0.0, 1.0), (1.0, 2.5), (2.5, 4.0)]
    assert scenes[1].num_frames == 15 and scenes[1].duration == 1.5
