"""Video/audio metadata from the container header (PyAV), and the shared open-with-typed-errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import errors


@dataclass(frozen=True)
class VideoInfo:
    """What a media file holds. Times in seconds; num_frames from the header (exact after a scan)."""

    path: str
    has_video: bool
    fps: float  # average frame rate (0 without video)
    num_frames: int
    duration: float  # of the video stream (of the audio for audio-only files)
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: int | None
    audio_channels: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    container_duration: float | None = None  # the whole file's (ffprobe's format=duration), None if unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_container(path: str | Path):
    """av.open with typed errors: missing path, not a file, not media, MP4 missing its index."""
    import av

    path = Path(path)
    if not path.exists():
        raise errors.not_found(path)
    if not path.is_file():
        raise errors.unreadable(path, "not a regular file")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as err:
        if _looks_like_mp4(path):
            raise errors.truncated(path, "it starts like an MP4 but its index (moov atom) is missing") from None
        raise errors.unreadable(path, getattr(err, "strerror", None) or str(err)) from None


def _looks_like_mp4(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(12)
    return len(head) == 12 and head[4:8] == b"ftyp"


def probe(path: str | Path, *, require_video: bool = True, count_frames: bool = False) -> VideoInfo:
    """Read metadata without decoding. `count_frames` demuxes the whole video stream to count
    its packets exactly (and to catch files shorter than their header promises)."""
    with open_container(path) as container:
        video = video_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and require_video:
            raise errors.no_video(path)
        if video is None and audio is None:
            raise errors.unreadable(path, "no audio or video stream")
        info = _audio_only_info(path, container, audio) if video is None else _video_info(path, container, video, audio)
        if video is not None and (count_frames or info.num_frames == 0):
            info = _with_count(path, container, video, info)
        if video is not None and info.num_frames == 0:
            raise errors.empty_video(path)
        if video is not None and info.fps <= 0:
            raise errors.unreadable(path, "its video stream has no frame rate")
        return info


def video_stream(container):
    """The first video stream that is not cover art (an attached picture), or None."""
    import av

    def bits(flag) -> int:  # av >= 18 has an IntFlag; av 14.1-17 a Flag, which int() refuses
        return getattr(flag, "value", flag)

    attached = bits(av.stream.Disposition.attached_pic)
    return next((s for s in container.streams.video if not bits(s.disposition) & attached), None)


def _video_info(path, container, video, audio) -> VideoInfo:
    rate = video.average_rate or video.guessed_rate or video.base_rate
    fps = float(rate) if rate else 0.0
    num_frames = int(video.frames or 0)
    if video.duration is not None and video.time_base is not None:
        duration = float(video.duration * video.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = num_frames / fps if fps else 0.0
    ctx = video.codec_context
    return VideoInfo(str(path), True, fps, num_frames, duration, int(ctx.width), int(ctx.height), audio is not None,
                     _rate(audio), _channels(audio), ctx.name, audio.codec_context.name if audio else None,
                     _container_duration(container))


def _audio_only_info(path, container, audio) -> VideoInfo:
    if audio.duration is not None and audio.time_base is not None:
        duration = float(audio.duration * audio.time_base)
    else:
        duration = (container.duration or 0) / 1_000_000
    return VideoInfo(str(path), False, 0.0, 0, duration, 0, 0, True, _rate(audio), _channels(audio), None,
                     audio.codec_context.name, _container_duration(container))


def _container_duration(container) -> float | None:
    return container.duration / 1_000_000 if container.duration is not None else None


def _with_count(path, container, video, info: VideoInfo) -> VideoInfo:
    counted = len(packet_index(path, container, video)[0])
    if info.num_frames and counted < info.num_frames:
        raise errors.missing_frames(path, info.num_frames, counted)
    fps = info.fps
    duration = info.duration or (counted / fps if fps else 0.0)
    return VideoInfo(**{**asdict(info), "num_frames": counted, "duration": duration})


def packet_index(path, container, video) -> tuple[list[int], set[int]]:
    """Presentation timestamps of every video packet, sorted (frame i has pts[i]), and the
    positions of keyframes in that order. Demuxes the stream without decoding."""
    import av

    entries = []
    try:
        for packet in container.demux(video):
            if packet.size == 0:
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is not None:
                entries.append((pts, packet.is_keyframe))
    except av.error.FFmpegError as err:
        raise errors.truncated(path, f"demuxing stopped at packet {len(entries)} ({err})") from None
    entries.sort()
    if entries:
        container.seek(0, stream=video)
    return [pts for pts, _ in entries], {i for i, (_, key) in enumerate(entries) if key}


def _rate(audio) -> int | None:
    return int(audio.codec_context.sample_rate) if audio is not None else None


def _channels(audio) -> int | None:
    return int(audio.codec_context.channels) if audio is not None else None
