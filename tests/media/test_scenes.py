"""Scene detection: planted hard cuts and fades, PySceneDetect's rules checked on hand-made frames
(the comparison with PySceneDetect itself is in test_scenes_pyscenedetect.py)."""

from __future__ import annotations

import colorsys

import torch

from vsuite.media import SceneDetector, detect_scenes, scenes_from_cuts
from vsuite.media.scenes import downscale, rgb_to_hsv
from vsuite.media.synth import SCENE_COLOURS, make_scene_video


def test_detects_planted_cuts_and_fade(cut_video, backend):
    scenes = detect_scenes(cut_video.path, backend=backend)
    starts = [s.start_frame for s in scenes]
    black_start, black_end = cut_video.fade_black
    # frame-exact: hard cuts at 30 and 60, the fade split in the middle of the black run (94), and, as
    # PySceneDetect finds too, a content cut at the first black frame: the dimmed colour's hue and
    # saturation vanish there at once (content score ~92)
    assert starts == [0, *cut_video.cuts, black_start, cut_video.fade_cut] == [0, 30, 60, 91, 94]
    assert black_start < cut_video.fade_cut < black_end
    # contiguous half-open scenes covering the video, times = frame / fps
    assert scenes[0].start_frame == 0 and scenes[-1].end_frame == cut_video.num_frames
    assert all(a.end_frame == b.start_frame for a, b in zip(scenes, scenes[1:]))
    assert all(s.start_time == s.start_frame / 24 and s.end_time == s.end_frame / 24 for s in scenes)
    assert scenes[1].to_dict() == {"start_frame": starts[1], "end_frame": starts[2],
                                   "start_time": starts[1] / 24, "end_time": starts[2] / 24}


def solid(colour, n: int, size=(32, 48)) -> torch.Tensor:
    return torch.tensor(colour, dtype=torch.uint8).expand(n, *size, 3).clone()


def cuts_of(frames, **kwargs) -> list[int]:
    detector = SceneDetector(**kwargs)
    detector.push(frames)
    return detector.cuts()


def test_min_scene_len_merges_close_cuts_like_pyscenedetect():
    a, b, c, d, e = SCENE_COLOURS[:5]
    frames = torch.cat([solid(a, 30), solid(b, 6), solid(c, 30)])  # cuts at 30 and 36
    assert cuts_of(frames, min_scene_len=15) == [30]
    loose = SceneDetector(min_scene_len=5)
    for frame in frames:  # frame by frame gives the same as one batch
        loose.push(frame)
    assert loose.cuts() == [30, 36] and loose.num_frames == 66
    # flash filter MERGE: 36 and 42 come too soon after 30, so they start a merge that ends with one
    # cut at the last frame above the threshold (72) once 15 quiet frames followed it
    frames = torch.cat([solid(a, 30), solid(b, 6), solid(c, 6), solid(d, 30), solid(e, 30)])
    assert cuts_of(frames) == [30, 72]
    assert cuts_of(frames[:86]) == [30]  # 86 - 72 < 15: the merge is still open at the end
    # before the first cut no merge starts: a cut closer than 15 frames to frame 0 is simply dropped
    assert cuts_of(torch.cat([solid(a, 10), solid(b, 30), solid(c, 30)])) == [40]


def test_fade_rules_at_the_ends_and_between_scenes():
    a, b = SCENE_COLOURS[:2]
    black = (0, 0, 0)
    frames = torch.cat([solid(black, 10), solid(a, 30), solid(black, 10), solid(b, 30), solid(black, 8)])
    # content: 10 is < 15 frames from frame 0 (dropped), 40 a cut, 50 and 80 merged away (too close,
    # then too few quiet frames); fades: the black run 40..49 splits at 45; the 10-frame opening
    # run is < min_scene_len from frame 0, the closing run only splits with add_final_scene
    assert cuts_of(frames) == [40, 45]
    assert cuts_of(frames, detect_fades=False) == [40]
    assert cuts_of(frames, add_final_scene=True) == [40, 45, 80]
    assert cuts_of(frames, fade_bias=1.0) == [40, 50]  # split where the threshold is crossed back
    assert cuts_of(frames, fade_bias=-1.0) == [40]  # split at the fade out: the content cut
    assert cuts_of(frames, fade_bias=-0.5) == [40, 42]  # 40 + round(10 * 0.25) (round half to even)


def test_dark_opening_keeps_its_hard_cut():
    """The bug of issue 9: a dark opening (a dim title on black, a night shot: mean RGB < 12) followed
    by a hard cut was merged with the next scene; PySceneDetect keeps the content cut and splits the
    leading dark run at its middle when the threshold detector is on."""
    a, b = SCENE_COLOURS[:2]
    title = solid((0, 0, 0), 40)
    title[:, 12:20, 8:40] = 40  # dim caption bar: mean RGB ~6.7
    assert title.float().mean() < 12
    frames = torch.cat([title, solid(a, 30), solid(b, 30)])
    assert cuts_of(frames, detect_fades=False) == [40, 70]
    assert cuts_of(frames) == [20, 40, 70]
    night = solid((4, 7, 16), 40)  # mean RGB 9
    assert cuts_of(torch.cat([solid(a, 30), night, solid(b, 30)])) == [30, 50, 70]


def test_two_minute_clip_with_dark_opening(media_dir):
    """Issue 9's report: 2 minutes, 20 s scenes, the first a title on black. It gave 5 scenes, the first
    40 s long; now the content detector alone finds all 6 and the fade detector adds the split of the
    leading dark run at 10 s, as PySceneDetect does."""
    fps, scene = 2, 40  # 20 s at 2 fps keeps the file tiny
    segments = [("title", scene)] + [(colour, scene) for colour in SCENE_COLOURS[:5]]
    path = make_scene_video(media_dir / "dark_opening_2min.mp4", segments, fps=fps)
    content = detect_scenes(path, detect_fades=False, backend="pyav")
    assert [(s.start_time, s.end_time) for s in content] == [(20.0 * k, 20.0 * (k + 1)) for k in range(6)]
    both = detect_scenes(path, backend="pyav")
    assert [s.start_time for s in both] == [0.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    assert both[-1].end_time == 120.0


def test_detector_state_does_not_grow_with_the_video():
    detector = SceneDetector()
    for _ in range(3):
        detector.push(solid(SCENE_COLOURS[0], 20, size=(64, 512)))
    assert detector.num_frames == 60 and detector.cuts() == []
    kept = detector._prev_hsv  # one downscaled frame's HSV is all it keeps, not a view into a batch
    assert tuple(kept.shape) == (1, 3, 32, 256) and kept.untyped_storage().nbytes() == 3 * 32 * 256 * 4


def test_rgb_to_hsv_on_opencv_8bit_scale():
    exact = {(255, 0, 0): [0, 255, 255], (0, 255, 0): [60, 255, 255], (0, 0, 255): [120, 255, 255],
             (255, 0, 255): [150, 255, 255], (128, 128, 128): [0, 0, 128], (0, 0, 0): [0, 0, 0],
             (200, 100, 50): [10, 191, 200]}
    for rgb, hsv in exact.items():
        assert rgb_to_hsv(torch.tensor(rgb, dtype=torch.uint8)).tolist() == hsv, rgb
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (500, 3), generator=gen, dtype=torch.uint8)
    ours = rgb_to_hsv(rgb)
    assert ours.dtype == torch.int64 and int(ours[:, 0].max()) < 180
    for pixel, (h, s, v) in zip(rgb.tolist(), ours.tolist()):
        fh, fs, fv = colorsys.rgb_to_hsv(*(x / 255 for x in pixel))
        assert min(abs(h - fh * 180), 180 - abs(h - fh * 180)) <= 1  # integer rounding, circular hue
        assert abs(s - fs * 255) <= 1 and v == round(fv * 255)


def test_downscale_to_pyscenedetect_processing_width():
    frames = torch.randint(0, 256, (2, 20, 200, 3), dtype=torch.uint8)
    assert downscale(frames) is frames  # at most 256 wide: untouched
    wide = torch.randint(0, 256, (2, 60, 1280, 3), dtype=torch.uint8)
    # factor 5: bilinear with half-pixel centres samples source pixel 5 * x + 2 exactly
    assert torch.equal(downscale(wide), wide[:, 2::5, 2::5])
    ramp = torch.arange(640, dtype=torch.float32).div(640 / 255).round().to(torch.uint8)
    ramp = ramp.expand(1, 10, 640).unsqueeze(-1).expand(1, 10, 640, 3).contiguous()
    small = downscale(ramp)  # factor 2.5 -> 256 x 4
    assert tuple(small.shape) == (1, 4, 256, 3)
    ref = torch.nn.functional.interpolate(ramp.permute(0, 3, 1, 2).float(), size=(4, 256), mode="bilinear")
    assert (small.permute(0, 3, 1, 2).float() - ref).abs().max() <= 1  # fixed-point rounding only


def test_scenes_from_cuts():
    scenes = scenes_from_cuts([10, 25], 40, 10.0)
    assert [(s.start_frame, s.end_frame) for s in scenes] == [(0, 10), (10, 25), (25, 40)]
    assert [(s.start_time, s.end_time) for s in scenes] == [(0.0, 1.0), (1.0, 2.5), (2.5, 4.0)]
    assert scenes[1].num_frames == 15 and scenes[1].duration == 1.5
