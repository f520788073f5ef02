"""Typed errors for bad media. All are DataError (exit code 5).

Each message is one line that says what is wrong with which file and what to do; the CLI
prints it as is. Raise them through the small constructors so the wording stays uniform.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError


class MediaError(DataError):
    """Base class of every media problem; `path` is the file concerned (or None)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line
        self.path = None if path is None else str(path)


class MediaNotFoundError(MediaError):
    """The path does not exist or is not a file."""


class UnreadableMediaError(MediaError):
    """The file exists but FFmpeg cannot open it as a media container."""


class TruncatedMediaError(MediaError):
    """The container opens but its data ends before the frames/samples its header promises."""


class NoVideoStreamError(MediaError):
    """The file has no video stream (e.g. an audio-only file)."""


class NoAudioStreamError(MediaError):
    """Audio is required but the file has no audio stream."""


class EmptyVideoError(MediaError):
    """The video stream holds zero decodable frames."""


class FrameRangeError(MediaError):
    """A requested frame index or timestamp lies outside the video."""


class AudioTooShortError(MediaError):
    """The audio is too short for the requested features."""


class BackendUnavailableError(MediaError):
    """The decoding backend asked for is not installed or cannot open this file."""


def not_found(path: str | Path) -> MediaNotFoundError:
    return MediaNotFoundError(
        f"media file not found: {path}; check the path (and the dataset root it was joined to)", path)


def unreadable(path: str | Path, reason: str = "") -> UnreadableMediaError:
    why = f" ({shorten(reason)})" if reason else ""
    return UnreadableMediaError(
        f"cannot read {path} as audio/video{why}; check that it is a complete media file (try `ffprobe {path}`)", path)


def truncated(path: str | Path, detail: str) -> TruncatedMediaError:
    return TruncatedMediaError(
        f"{path} looks truncated: {detail}; re-download or re-encode the file", path)


def missing_frames(path: str | Path, listed: int, found: int) -> TruncatedMediaError:
    return truncated(path, f"its header lists {listed} frames but only {found} are in the file")


def no_video(path: str | Path) -> NoVideoStreamError:
    return NoVideoStreamError(f"{path} has no video stream; pass a video file (this looks audio-only)", path)


def no_audio(path: str | Path) -> NoAudioStreamError:
    return NoAudioStreamError(
        f"{path} has no audio stream but this step needs audio; use a video with sound or turn audio off", path)


def empty_video(path: str | Path) -> EmptyVideoError:
    return EmptyVideoError(f"{path} has a video stream with zero frames; re-encode or drop this file", path)


def shorten(reason: str, limit: int = 120) -> str:
    reason = " ".join(str(reason).split())
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."
