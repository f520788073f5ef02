"""Sampling protocols, checked by hand against the documented formulas."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vsuite.media.sampling import (FrameSample, SamplingRecord, sample_clips, sample_fps, sample_uniform,
                                   sample_vript_scene, sample_whole_video, segment_frames, seq_indices, time_to_index,
                                   uniform_indices, vript_positions)


def test_uniform_is_segment_centre():
    # a + floor((2i + 1) L / 2N): 10 frames in 4 parts -> centres 1.25, 3.75, 6.25, 8.75
    assert uniform_indices(4, 0, 10) == [1, 3, 6, 8]
    assert uniform_indices(1, 0, 10) == [5]
    assert uniform_indices(10, 0, 10) == list(range(10))
    assert uniform_indices(5, 0, 2) == [0, 0, 1, 1, 1]  # more samples than frames repeat frames
    assert uniform_indices(3, 100, 130) == [105, 115, 125]


def test_sample_uniform_whole_and_segment():
    s = sample_uniform(48, 24.0, 4)
    assert s.indices == (6, 18, 30, 42) and s.timestamps == (0.25, 0.75, 1.25, 1.75)
    assert s.protocol == "uniform" and len(s) == 4
    # [0.5, 1.5) s at 24 fps = frames [12, 36): centres of two halves of 24 frames
    assert sample_uniform(48, 24.0, 2, start=0.5, end=1.5).indices == (18, 30)
    assert sample_uniform(3600, 30.0, 64).indices[:3] == (28, 84, 140)  # 3600/64 = 56.25 per part


def test_segment_frames_half_open():
    assert segment_frames(48, 24.0) == (0, 48)
    assert segment_frames(48, 24.0, 0.5, 1.0) == (12, 24)  # frame 24 (t = 1.0) is not in [0.5, 1.0)
    assert segment_frames(48, 24.0, 0.51, 1.01) == (13, 25)  # first timestamp >= 0.51 is 13/24
    assert segment_frames(48, 24.0, 0.501, 0.51) == (12, 13)  # shorter than a frame: the one on screen
    assert segment_frames(48, 24.0, 1.5, 99.0) == (36, 48)  # clipped to the video
    with pytest.raises(ValueError):
        segment_frames(48, 24.0, 1.0, 0.5)


def test_time_to_index_tolerates_float_error():
    assert time_to_index(0.7, 30.0) == 21  # 0.7 * 30 = 20.999999999999996
    assert time_to_index(0.0999, 10.0) == 0 and time_to_index(1 / 24, 24.0) == 1


def test_sample_fps():
    s = sample_fps(48, 24.0, 2.0)
    assert s.indices == (0, 12, 24, 36) and s.timestamps == (0.0, 0.5, 1.0, 1.5)
    assert sample_fps(48, 24.0, 2.0, max_frames=2).indices == (12, 36)  # k = 1, 3 of 0..3
    s = sample_fps(100, 30.0, 7.0)  # 3.333 s -> 24 samples at k/7 s, frame floor(30k/7)
    assert len(s) == 24 and s.indices[:5] == (0, 4, 8, 12, 17) and s.indices[-1] == 98
    assert sample_fps(48, 24.0, 1.0, start=0.25, end=1.75).indices == (6, 30)
    assert sample_fps(10, 10.0, 40.0).indices[:4] == (0, 0, 0, 0)  # above the video's rate: repeats


def test_sample_clips_multi_view():
    clips = sample_clips(100, 25.0, 3, 8, 2)
    # span 15 frames, starts 0..85 (86 of them) in 3 parts, centres floor((2k+1) 86 / 6)
    assert [c.indices[0] for c in clips] == [14, 43, 71]
    assert clips[2].indices == tuple(range(71, 86, 2))
    assert [c.params["clip"] for c in clips] == [0, 1, 2] and clips[0].protocol == "clips"
    short = sample_clips(10, 25.0, 2, 8, 2)  # clip longer than the video: last frame repeats
    assert [c.indices for c in short] == [(0, 2, 4, 6, 8, 9, 9, 9)] * 2
    assert sample_clips(64, 25.0, 1, 16, 4)[0].indices[0] == 2  # a single clip is centred


def test_vript_thresholds():
    assert vript_positions(5.99) == (0.2, 0.5, 0.8)
    assert vript_positions(6.0) == vript_positions(29.99) == (0.15, 0.4, 0.6, 0.85)
    assert vript_positions(30.0) == (0.15, 0.3, 0.5, 0.7, 0.85)


def test_sample_vript_scene():
    assert sample_vript_scene(1000, 25.0, 10.0, 14.0).indices == (270, 300, 330)  # 10.8, 12.0, 13.2 s
    assert sample_vript_scene(1000, 25.0, 10.0, 30.0).indices == (325, 450, 550, 675)  # 13, 18, 22, 27 s
    s = sample_vript_scene(1000, 25.0, 0.0, 40.0)
    assert s.indices == (150, 300, 500, 700, 850) and s.timestamps == (6.0, 12.0, 20.0, 28.0, 34.0)
    assert s.protocol == "vript" and s.params["positions"] == [0.15, 0.3, 0.5, 0.7, 0.85]


def official_get_seq_frames(total_num_frames, desired_num_frames):
    """A transcription of vriptor/stllm/test/video_utils.py `get_seq_frames` (mutonix/Vript 3dd89c7)."""
    import numpy as np

    seg_size = float(total_num_frames - 1) / desired_num_frames
    seq = []
    for i in range(desired_num_frames):
        start = int(np.round(seg_size * i))
        end = int(np.round(seg_size * (i + 1)))
        seq.append((start + end) // 2)
    return seq


def test_whole_video_indices_equal_get_seq_frames():
    # by hand: 10 frames, 4 parts of 9/4 = 2.25 -> bounds 0, 2, 4 (4.5 rounds half to even), 7, 9
    assert seq_indices(10, 4) == [1, 3, 5, 8]
    for total in (1, 2, 5, 63, 64, 65, 100, 1000, 1799, 4321, 86399):
        n = min(total, 64)  # load_video takes min(len(video), num_frm) frames
        assert seq_indices(total, n) == official_get_seq_frames(total, n), total
        sample = sample_whole_video(total, 30.0)
        assert list(sample.indices) == official_get_seq_frames(total, n) and sample.protocol == "vriptor_seq"
        assert sample.timestamps == tuple(i / 30.0 for i in sample.indices)
    # the segment-centre rule used before differs in 18 of the 64 positions of a 1000-frame video
    assert sum(a != b for a, b in zip(seq_indices(1000, 64), uniform_indices(64, 0, 1000))) == 18
    assert sample_whole_video(1000, 25.0, 8).indices == tuple(official_get_seq_frames(1000, 8))
    with pytest.raises(ValueError):
        seq_indices(10, 0)


def test_sampling_record_round_trips_json():
    sample = sample_uniform(48, 24.0, 4)
    record = SamplingRecord.from_sample(sample, fps=24.0, backend="pyav", resolution=(64, 96))
    data = json.loads(json.dumps(record.to_dict()))
    assert data == {"protocol": "uniform", "frames": 4, "indices": [6, 18, 30, 42],
                    "timestamps": [0.25, 0.75, 1.25, 1.75], "fps": 24.0, "backend": "pyav",
                    "resolution": [64, 96], "params": {"num_frames": 4, "start": None, "end": None}}
    assert isinstance(sample, FrameSample)


def test_bad_arguments():
    with pytest.raises(ValueError):
        uniform_indices(0, 0, 10)
    with pytest.raises(ValueError):
        sample_uniform(0, 24.0, 4)
    with pytest.raises(ValueError):
        sample_fps(48, 0.0, 1.0)


def test_media_imports_stay_light():
    modules = "vsuite.media, " + ", ".join(f"vsuite.media.{m}" for m in
                                           ("audio", "decode", "errors", "probe", "sampling", "scenes", "synth"))
    code = (f"import sys, {modules}; "
            "print(sorted(m for m in ('torch', 'av', 'decord', 'numpy', 'torchaudio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
