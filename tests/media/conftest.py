"""Synthetic media for the media tests, made once per session (a few seconds in total)."""

from __future__ import annotations

import pytest

from vsuite.media import synth
from vsuite.media.decode import decord_available

NO_DECORD = pytest.mark.skipif(not decord_available(), reason="decord not installed")
BACKENDS = ["pyav", pytest.param("decord", marks=NO_DECORD)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each decoding backend in turn (decord skipped where it is not installed)."""
    return request.param


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def index_video(media_dir):
    """48 frames, 24 fps, 96x64 (a width decord pads badly), 440 Hz AAC tone at 44.1 kHz."""
    return synth.make_index_video(media_dir / "index.mp4", num_frames=48, fps=24, size=(64, 96), tone_hz=440.0)


@pytest.fixture(scope="session")
def index_video_wide(media_dir):
    """60 frames, 30 fps, 128x64, keyframe every 5 frames, video only."""
    return synth.make_index_video(media_dir / "index_wide.mp4", num_frames=60, fps=30, size=(64, 128), gop=5)


@pytest.fixture(scope="session")
def long_video(media_dir):
    """400 frames of 96x64 for streaming tests."""
    return synth.make_index_video(media_dir / "long.mp4", num_frames=400, fps=25, size=(64, 96), gop=50)


@pytest.fixture(scope="session")
def cut_video(media_dir):
    return synth.make_cut_video(media_dir / "cuts.mp4", num_frames=120, fps=24, cuts=(30, 60), fade=(85, 6, 6))


@pytest.fixture(scope="session")
def tone_m4a(media_dir):
    return synth.make_audio_file(media_dir / "tone.m4a", tone_hz=440.0, duration=2.0, sample_rate=44100)


@pytest.fixture(scope="session")
def tone_wav_stereo(media_dir):
    return synth.make_audio_file(media_dir / "tone.wav", tone_hz=1000.0, duration=1.5, sample_rate=22050,
                                 codec="pcm_s16le", channels=2)


@pytest.fixture(scope="session")
def bad_media(media_dir, index_video_wide):
    """Every kind of bad input, by name."""
    full = synth.make_index_video(media_dir / "faststart.mp4", num_frames=200, fps=24, faststart=True)
    return {
        "missing": media_dir / "does_not_exist.mp4",
        "directory": media_dir,
        "not_media": synth.make_not_media(media_dir / "notes.mp4"),
        "truncated": synth.make_truncated(full, media_dir / "truncated.mp4", keep=0.5),
        "truncated_no_index": synth.make_truncated(index_video_wide, media_dir / "truncated_no_moov.mp4", keep=0.5),
        "zero_frames": synth.make_zero_frame_video(media_dir / "zero_frames.avi"),
        "audio_only": synth.make_audio_file(media_dir / "audio_only.m4a", duration=1.0),
        "video_only": index_video_wide,
    }
