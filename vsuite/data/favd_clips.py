"""Frames and audio of one audible clip as AVLFormer takes them (shared by `vsuite describe` and the FAVD
finetune; the model's numbers come in a ClipProtocol, so this module never imports models).

Frames: `num_frames` segment-centre uniform frames over the video (the official preprocessing extracts 32
frames spread over the clip), short side resized to image_size, centre crop (training: a random crop of
the same size), x/255, (x - mean) / std -> [S, 3, size, size].
Audio: the clip's audio file if given, else the video's audio track, mono, resampled to sample_rate, cut or
zero-padded at the end to exactly `audio_samples` (the official pads/truncates to 10 s at 32 kHz) -> [N].
A video without an audio track is NoAudioStreamError (a DataError, exit 5): AVLFormer needs sound.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClipProtocol:
    num_frames: int
    image_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    sample_rate: int
    audio_samples: int

    def record(self) -> dict:
        return {"frames": self.num_frames, "frame_sampling": "uniform (segment centres)",
                "resolution": [self.image_size, self.image_size], "audio_sample_rate": self.sample_rate,
                "audio_seconds": self.audio_samples / self.sample_rate, "audio": "mono, cut or zero-padded at the end"}


def load_clip_frames(path: str | Path, protocol: ClipProtocol, *, rng: random.Random | None = None,
                     backend: str = "auto"):
    """[S, 3, size, size] float32 normalised frames of the video at `path`."""
    from ..media import probe, read_frames, sample_uniform
    from ..media import errors as media_errors
    from .video_transforms import normalize, resize_short_side, to_float

    info = probe(path)
    if info.num_frames < 1:
        raise media_errors.empty_video(path)
    sample = sample_uniform(info.num_frames, info.fps or 1.0, protocol.num_frames)
    x = resize_short_side(to_float(read_frames(path, sample, backend=backend).frames), protocol.image_size)
    h, w = x.shape[-2:]
    size = protocol.image_size
    if rng is not None:
        top, left = rng.randint(0, h - size), rng.randint(0, w - size)
    else:
        top, left = (h - size) // 2, (w - size) // 2
    x = x[..., top:top + size, left:left + size]
    return normalize(x, protocol.image_mean, protocol.image_std).contiguous()


def load_clip_audio(path: str | Path, protocol: ClipProtocol):
    """[audio_samples] float32 mono waveform of the audio (or video) file at `path`."""
    import torch.nn.functional as F

    from ..media import load_audio, probe
    from ..media import errors as media_errors

    info = probe(path, require_video=False)
    if not info.has_audio:
        raise media_errors.no_audio(path)
    wave = load_audio(path, protocol.sample_rate)
    n = protocol.audio_samples
    return wave[:n] if wave.shape[0] >= n else F.pad(wave, (0, n - wave.shape[0]))


def load_clip(video: str | Path, audio: str | Path | None, protocol: ClipProtocol, *,
              rng: random.Random | None = None, backend: str = "auto"):
    """(frames [S, 3, H, W], waveform [N]) of one clip; the audio comes from `audio` or the video's track."""
    wave = load_clip_audio(audio or video, protocol)  # checked first: no sound, no frames decoded
    return load_clip_frames(video, protocol, rng=rng, backend=backend), wave


__all__ = ["ClipProtocol", "load_clip", "load_clip_audio", "load_clip_frames"]
