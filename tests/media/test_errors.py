"""Every kind of bad media gives its typed DataError with a one-line message; the CLI exits 5."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from vsuite.errors import EXIT_DATA, DataError
from vsuite.media import (BackendUnavailableError, EmptyVideoError, MediaError, MediaNotFoundError,
                          NoAudioStreamError, NoVideoStreamError, TruncatedMediaError, UnreadableMediaError,
                          detect_scenes, iter_frames, load_audio, probe, read_frames)
from vsuite.media import decode as decode_module

VIDEO_CASES = [
    ("missing", MediaNotFoundError, "not found"),
    ("directory", UnreadableMediaError, "not a regular file"),
    ("not_media", UnreadableMediaError, "cannot read"),
    ("truncated", TruncatedMediaError, r"lists 200 frames but only \d+ are in the file"),
    ("truncated_no_index", TruncatedMediaError, r"index \(moov atom\) is missing"),
    ("zero_frames", EmptyVideoError, "zero frames"),
    ("audio_only", NoVideoStreamError, "no video stream"),
]


def check_message(err: MediaError, path) -> None:
    message = str(err)
    assert isinstance(err, DataError) and err.exit_code == EXIT_DATA
    assert "\n" not in message and str(path) in message and ";" in message  # what is wrong; what to do
    assert err.path == str(path)


@pytest.mark.parametrize("case,error,text", VIDEO_CASES)
def test_bad_video_raises_typed_error(bad_media, backend, case, error, text):
    path = bad_media[case]
    with pytest.raises(error, match=text) as info:
        read_frames(path, [0], backend=backend)
    check_message(info.value, path)
    if case == "truncated":  # header intact: a scan finds the gap (streaming is checked below)
        with pytest.raises(error):
            probe(path, count_frames=True)
    else:
        with pytest.raises(error):
            next(iter_frames(path, backend=backend))


def test_truncated_stream_fails_after_the_good_frames(bad_media):
    frames = []
    with pytest.raises(TruncatedMediaError, match="data ends after frame"):
        for index, _, _ in iter_frames(bad_media["truncated"], backend="pyav"):
            frames.append(index)
    assert 0 < len(frames) < 200 and frames == list(range(len(frames)))
    with pytest.raises(TruncatedMediaError):
        detect_scenes(bad_media["truncated"], backend="pyav")


def test_probe_errors(bad_media):
    for case, error, _ in VIDEO_CASES:
        if case != "truncated":  # its header is intact; only a scan or a decode finds the gap
            with pytest.raises(error):
                probe(bad_media[case])
    audio = probe(bad_media["audio_only"], require_video=False)
    assert not audio.has_video and audio.has_audio and audio.audio_sample_rate == 44100


@pytest.mark.parametrize("case,error", [("video_only", NoAudioStreamError), ("zero_frames", NoAudioStreamError),
                                        ("missing", MediaNotFoundError), ("not_media", UnreadableMediaError)])
def test_audio_errors(bad_media, case, error):
    with pytest.raises(error) as info:
        load_audio(bad_media[case])
    check_message(info.value, bad_media[case])


def test_decord_missing_is_reported(monkeypatch, index_video):
    monkeypatch.setattr(decode_module, "decord_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match="pip install decord2"):
        read_frames(index_video, [0], backend="decord")
    assert read_frames(index_video, [0], backend="auto").backend == "pyav"


def test_cli_turns_media_errors_into_one_line_and_exit_5(bad_media, tmp_path):
    """A command that hits bad media prints one `Error:` line, no traceback, and exits 5."""
    script = tmp_path / "bad_media_cli.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from vsuite import cli
        from vsuite.media import read_frames

        @cli.app.command("read-bad")
        def read_bad():
            read_frames({str(bad_media["truncated"])!r}, [0])

        sys.exit(cli.run(["read-bad"]))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={"NO_COLOR": "1", "COLUMNS": "300", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == EXIT_DATA, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error:") and "looks truncated" in lines[0]
