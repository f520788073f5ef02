"""Fixtures of the `vsuite caption` tests: planted-cut videos with and without sound."""

from __future__ import annotations

import pytest

from vsuite.media.synth import make_cut_video

@pytest.fixture(scope="session")
def cut_video(tmp_path_factory):
    """120 frames at 24 fps, cuts at 30 and 60, a fade to black and back near 94, a 440 Hz tone."""
    return make_cut_video(tmp_path_factory.mktemp("video") / "planted.mp4", tone_hz=440.0)


@pytest.fixture(scope="session")
def silent_video(tmp_path_factory):
    """The same cuts without an audio track."""
    return make_cut_video(tmp_path_factory.mktemp("silent") / "silent.mp4")
