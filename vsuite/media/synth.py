"""Tiny synthetic media for tests: every file is made here with PyAV (libx264 + AAC).

- `make_index_video`: each frame shows its own index as a 4x4 grid of dark/bright blocks
  (16 bits, MSB top-left, row-major); `read_index` reads it back from any decoded frame.
  Big flat blocks survive H.264 compression, so decoders can be checked frame-exactly.
- `make_cut_video`: solid-colour scenes with a moving square, hard cuts at known frames and
  an optional fade out to black and back in; returns where everything was planted.
- `make_bar_video`: a white vertical bar moving left or right (for classifier tests).
- `make_scene_video`, `scene_frame`: scenes of given styles and lengths, including dark ones (a dim title
  on black, a night shot: mean RGB < 12) and fades, to check scene detection next to dark frames.
- `make_audio_file`, `sine`: sine tones at a known frequency (audio-only files).
- `make_zero_frame_video`, `make_truncated`, `make_not_media`: bad media.

Files stay small (default 64x96, a few seconds). numpy and av are imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

INDEX_BITS = 16
_DARK, _BRIGHT = 40, 215

# RGB colours whose HSV values differ strongly pairwise (content score well above 27).
SCENE_COLOURS = ((230, 60, 40), (40, 90, 220), (60, 200, 70), (250, 240, 40), (150, 40, 200), (20, 180, 200))


def index_pattern(index: int, height: int = 64, width: int = 96):
    """HxWx3 uint8 frame whose 4x4 blocks spell `index` in binary (bright = 1)."""
    import numpy as np

    if not 0 <= index < 2**INDEX_BITS:
        raise ValueError(f"index {index} does not fit in {INDEX_BITS} bits")
    frame = np.empty((height, width, 3), np.uint8)
    for bit in range(INDEX_BITS):
        row, col = divmod(bit, 4)
        value = _BRIGHT if (index >> (INDEX_BITS - 1 - bit)) & 1 else _DARK
        frame[_span(row, height), _span(col, width)] = value
    return frame


def read_index(frame) -> int:
    """Decode the index drawn by `index_pattern` from a decoded HxWx3 frame (numpy or torch)."""
    import numpy as np

    arr = np.asarray(frame.numpy() if hasattr(frame, "numpy") else frame, dtype=np.float32)
    height, width = arr.shape[:2]
    value = 0
    for bit in range(INDEX_BITS):
        row, col = divmod(bit, 4)
        rows, cols = _span(row, height, inset=True), _span(col, width, inset=True)
        value = (value << 1) | int(arr[rows, cols].mean() > (_DARK + _BRIGHT) / 2)
    return value


def _span(i: int, size: int, inset: bool = False) -> slice:
    lo, hi = i * size // 4, (i + 1) * size // 4
    pad = (hi - lo) // 4 if inset else 0  # read block centres only: edges blur under compression
    return slice(lo + pad, hi - pad)


def sine(freq: float, duration: float, sample_rate: int = 16000, amplitude: float = 0.5):
    """float32 sine wave [n] with n = round(duration * sample_rate)."""
    import numpy as np

    t = np.arange(round(duration * sample_rate), dtype=np.float64) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_video(path: str | Path, frames: Iterable, fps: int = 24, *, audio=None, sample_rate: int = 44100,
                gop: int = 12, crf: int = 18, faststart: bool = False, codec: str = "libx264") -> Path:
    """Encode HxWx3 uint8 RGB frames (and optionally a mono float waveform) into an MP4."""
    import av
    import numpy as np

    path = Path(path)
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"g": str(gop), "crf": str(crf)} if codec == "libx264" else {}
        chunks = _audio_chunks(container, audio, sample_rate, fps) if audio is not None else None
        for i, frame in enumerate(_chain(first, frames)):
            packets = video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
            container.mux(packets)
            if chunks is not None:
                container.mux(next(chunks, []))
        container.mux(video.encode())
        if chunks is not None:
            for packets in chunks:
                container.mux(packets)
    return path


def _chain(first, rest):
    yield first
    yield from rest


def _audio_chunks(container, audio, sample_rate: int, fps: int):
    """Generator of AAC packet lists: one chunk of audio per video frame, then the tail and flush."""
    import av
    import numpy as np

    stream = container.add_stream("aac", rate=sample_rate)
    stream.layout = "mono"
    audio = np.asarray(audio, dtype=np.float32).reshape(1, -1)
    step = max(1, sample_rate // fps)
    for start in range(0, audio.shape[1], step):
        chunk = np.ascontiguousarray(audio[:, start:start + step])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, start
        yield stream.encode(frame)
    yield stream.encode(None)


def make_index_video(path: str | Path, num_frames: int = 48, fps: int = 24, size: tuple[int, int] = (64, 96), *,
                     tone_hz: float | None = None, sample_rate: int = 44100, gop: int = 12,
                     faststart: bool = False) -> Path:
    """Video whose frame i shows `index_pattern(i)`; with `tone_hz`, a mono sine audio track."""
    height, width = size
    frames = (index_pattern(i, height, width) for i in range(num_frames))
    audio = sine(tone_hz, num_frames / fps, sample_rate) if tone_hz else None
    return write_video(path, frames, fps, audio=audio, sample_rate=sample_rate, gop=gop, faststart=faststart)


@dataclass
class PlantedScenes:
    """Where `make_cut_video` put its scene changes (frame indices)."""

    path: Path
    num_frames: int
    fps: int
    cuts: list[int]  # first frame of each new scene after a hard cut
    fade_black: tuple[int, int] | None = None  # [first, end) of the all-black frames
    fade_cut: int | None = None  # where a fade detector should split: middle of the black run
    scene_starts: list[int] = field(default_factory=list)  # all expected scene starts, 0 first


def make_cut_video(path: str | Path, num_frames: int = 120, fps: int = 24, size: tuple[int, int] = (64, 96), *,
                   cuts: tuple[int, ...] = (30, 60), fade: tuple[int, int, int] | None = (85, 6, 6),
                   tone_hz: float | None = None, sample_rate: int = 44100) -> PlantedScenes:
    """Solid-colour scenes (each with a moving grey square) separated by hard cuts at `cuts`.

    `fade = (start, fade_len, black_len)`: from frame `start` the picture fades to black over
    `fade_len` frames, stays black for `black_len` frames, then fades into a new scene over
    `fade_len` frames. Scene colours come from SCENE_COLOURS in order. `tone_hz` adds a mono sine audio track.
    """
    import numpy as np

    height, width = size
    boundaries = sorted(cuts)
    black = fade_cut = None
    if fade is not None:
        start, fade_len, black_len = fade
        black = (start + fade_len, start + fade_len + black_len)
        fade_cut = (black[0] + black[1]) // 2
        boundaries.append(black[1])  # the new scene's colour begins with the fade-in

    def frame(i: int):
        scene = sum(i >= b for b in boundaries)
        img = np.empty((height, width, 3), np.uint8)
        img[:] = SCENE_COLOURS[scene % len(SCENE_COLOURS)]
        side = max(4, height // 6)
        x = (i * 2) % (width - side)
        img[height // 3: height // 3 + side, x: x + side] = 128
        if black is not None:
            alpha = _fade_alpha(i, fade[0], black, fade[1])
            img = (img.astype(np.float32) * alpha).round().astype(np.uint8)
        return img

    audio = sine(tone_hz, num_frames / fps, sample_rate) if tone_hz else None  # optional mono tone track
    out = write_video(path, (frame(i) for i in range(num_frames)), fps, audio=audio, sample_rate=sample_rate)
    starts = sorted([0, *cuts, *([fade_cut] if fade_cut is not None else [])])
    return PlantedScenes(out, num_frames, fps, sorted(cuts), black, fade_cut, starts)


def _fade_alpha(i: int, start: int, black: tuple[int, int], fade_len: int) -> float:
    if i < start or i >= black[1] + fade_len:
        return 1.0
    if i < black[0]:
        return 1.0 - (i - start + 1) / (fade_len + 1)
    if i < black[1]:
        return 0.0
    return (i - black[1] + 1) / (fade_len + 1)


def make_bar_video(path: str | Path, direction: str = "right", num_frames: int = 16, fps: int = 8,
                   size: tuple[int, int] = (64, 64), bar_width: int = 8) -> Path:
    """A white vertical bar on black moving left-to-right (`right`) or right-to-left (`left`)."""
    import numpy as np

    if direction not in ("left", "right"):
        raise ValueError(f"direction must be 'left' or 'right', got {direction!r}")
    height, width = size
    travel = width - bar_width

    def frame(i: int):
        x = round(i * travel / max(1, num_frames - 1))
        x = x if direction == "right" else travel - x
        img = np.zeros((height, width, 3), np.uint8)
        img[:, x: x + bar_width] = 255
        return img

    return write_video(path, (frame(i) for i in range(num_frames)), fps)


def make_audio_file(path: str | Path, tone_hz: float = 440.0, duration: float = 2.0, sample_rate: int = 44100,
                    codec: str = "aac", channels: int = 1) -> Path:
    """Audio-only file with a sine tone: `aac` in .m4a/.mp4, or `pcm_s16le` in .wav."""
    import av
    import numpy as np

    path = Path(path)
    wave = sine(tone_hz, duration, sample_rate)
    layout = "mono" if channels == 1 else "stereo"
    data = np.repeat(wave[None], channels, axis=0)
    fmt = "fltp" if codec == "aac" else "s16p"
    if fmt == "s16p":
        data = (data * 32767).astype(np.int16)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate)
        stream.layout = layout
        for start in range(0, data.shape[1], 1024):
            chunk = np.ascontiguousarray(data[:, start:start + 1024])
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout=layout)
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_zero_frame_video(path: str | Path, size: tuple[int, int] = (64, 96)) -> Path:
    """An AVI whose MPEG-4 video stream holds no frames (MP4 muxers drop empty tracks)."""
    import av

    path = Path(path)
    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=24)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path


def make_truncated(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """Copy the first `keep` fraction of the bytes of `src` (use a faststart MP4 so the header survives)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def make_not_media(path: str | Path) -> Path:
    """A file with a video extension that is plain text."""
    path = Path(path)
    path.write_text("this is not a video, just text with an .mp4 name\n" * 20)
    return path


# Styles of `make_scene_video` segments whose mean RGB is below 12 (PySceneDetect's fade threshold).
DARK_STYLES = ("black", "title", "night")


def scene_frame(style, i: int, height: int = 64, width: int = 96, alpha: float = 1.0):
    """Frame `i` of one `make_scene_video` segment, HxWx3 uint8 RGB.

    `style`: an RGB colour (solid colour with a moving grey square, bright), "black", "title" (a dim
    grey caption bar on black, mean RGB ~5) or "night" (a dark blue scene with a dim moving square,
    mean RGB ~9). `alpha` scales the picture (fades).
    """
    import numpy as np

    img = np.zeros((height, width, 3), np.uint8)
    side = max(4, height // 6)
    x = (i * 2) % (width - side)
    if style == "title":
        img[height // 2 - height // 10: height // 2 + height // 10, width // 5: width - width // 5] = 36
    elif style == "night":
        img[:] = (4, 7, 16)
        img[height // 3: height // 3 + side, x: x + side] = (40, 40, 52)
    elif style != "black":
        img[:] = style
        img[height // 3: height // 3 + side, x: x + side] = 128
    return img if alpha == 1.0 else (img.astype(np.float32) * alpha).round().astype(np.uint8)


def make_scene_video(path: str | Path, segments, fps: int = 24, size: tuple[int, int] = (64, 96),
                     gop: int = 12) -> Path:
    """A video made of `segments`, each `(style, num_frames)` or `(style, num_frames, fade)` with
    style as in `scene_frame` and fade "out" (the picture dims to black over the segment) or "in"
    (it rises from black). Consecutive segments meet with a hard cut; for dark openings, fades,
    dark endings and night scenes next to cuts (the cases PySceneDetect's two detectors split)."""
    height, width = size

    def frames():
        for seg in segments:
            style, count = seg[0], seg[1]
            fade = seg[2] if len(seg) > 2 else None
            for i in range(count):
                alpha = 1.0 if fade is None else (count - i) / (count + 1) if fade == "out" else (i + 1) / (count + 1)
                yield scene_frame(style, i, height, width, alpha)

    return write_video(path, frames(), fps, gop=gop)
