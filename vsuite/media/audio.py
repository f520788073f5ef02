"""Audio: decode (PyAV) to mono float32, resample (torchaudio), and the two feature recipes
the audio-visual models were trained on.

- VGGish log-mel examples (AVSBench / TPAVI): 16 kHz mono in [-1, 1]; frames of 25 ms
  (400 samples) every 10 ms (160), periodic Hann window, |rfft| with n_fft 512 (magnitude,
  not power); 64 mel bands over 125-7500 Hz, HTK mel scale, triangles linear in *mel* with
  the DC bin zeroed (VGGish's own filterbank, not torchaudio's Hz-linear one); log(mel + 0.01);
  non-overlapping 0.96 s examples of 96 frames -> [n, 96, 64]. VGGish resamples with
  resampy; here torchaudio's sinc resampler does it, so features of resampled audio differ
  slightly from the reference pipeline.
- Kaldi fbank (AST / PaSST-style): torchaudio.compliance.kaldi.fbank with htk_compat=True,
  'hanning' window, 128 mel bins, 10 ms shift, dither 0, use_energy False, after
  subtracting the waveform mean; optionally padded/cut to `target_length` frames and
  normalised as AST does: (x - mean) / (2 * std) with AudioSet's mean -4.2677393 and
  std 4.5689974.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import errors
from .probe import open_container

if TYPE_CHECKING:
    import torch

AST_MEAN = -4.2677393
AST_STD = 4.5689974


@dataclass(frozen=True)
class VGGishParams:
    """torchvggish `vggish_params.py` values."""

    sample_rate: int = 16000
    window_seconds: float = 0.025
    hop_seconds: float = 0.010
    num_mel_bins: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.01
    example_window_seconds: float = 0.96
    example_hop_seconds: float = 0.96

    @property
    def window_length(self) -> int:
        return round(self.sample_rate * self.window_seconds)  # 400

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_seconds)  # 160

    @property
    def fft_length(self) -> int:
        return 1 << (self.window_length - 1).bit_length()  # next power of two: 512

    @property
    def example_frames(self) -> int:
        return round(self.example_window_seconds / self.hop_seconds)  # 96

    @property
    def example_hop_frames(self) -> int:
        return round(self.example_hop_seconds / self.hop_seconds)  # 96


VGGISH = VGGishParams()


# ----------------------------------------------------------------------------- decoding
def load_audio(path: str | Path, sample_rate: int | None = 16000, *, start: float | None = None,
               end: float | None = None, mono: bool = True) -> torch.Tensor:
    """Decode the first audio stream to float32 in [-1, 1]: [N] (mono, channels averaged) or
    [C, N]; resampled to `sample_rate` with torchaudio (None keeps the file's rate).
    `start`/`end` (seconds) decode only that span."""
    import torch

    wave, rate = _decode_audio(path, start, end)
    wave = torch.from_numpy(wave)
    if mono:
        wave = wave.mean(dim=0)
    return resample(wave, rate, sample_rate) if sample_rate else wave


def audio_sample_rate(path: str | Path) -> int:
    """The native sample rate of the first audio stream."""
    with open_container(path) as container:
        if not container.streams.audio:
            raise errors.no_audio(path)
        return int(container.streams.audio[0].codec_context.sample_rate)


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """torchaudio's band-limited sinc resampling along the last dimension (no-op if equal)."""
    import torchaudio

    if int(orig_rate) == int(new_rate):
        return wave
    return torchaudio.functional.resample(wave, int(orig_rate), int(new_rate))


def _decode_audio(path, start: float | None, end: float | None):
    """[C, N] float32 numpy at the file's own rate, and that rate."""
    import av
    import numpy as np

    if start is not None and end is not None and end <= start:
        raise ValueError(f"audio span end {end} must be after its start {start}")
    with open_container(path) as container:
        if not container.streams.audio:
            raise errors.no_audio(path)
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        if stream.duration is not None and stream.time_base is not None:  # drop the encoder's end padding
            length = float(stream.duration * stream.time_base)
            end = length if end is None else min(end, length)
            if start is not None and start >= end:
                raise errors.FrameRangeError(
                    f"audio span starts at {start:.3f}s, past the end of {path} ({length:.3f}s); "
                    "sample within it", path)
        if start:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        to_float = av.AudioResampler(format="fltp")  # keeps layout and rate, converts the sample format
        chunks, first = [], None
        try:
            for frame in container.decode(stream):
                if first is None:
                    first = frame.time or 0.0
                if end is not None and frame.time is not None and frame.time >= end:
                    break
                chunks.extend(out.to_ndarray() for out in to_float.resample(frame))
            chunks.extend(out.to_ndarray() for out in to_float.resample(None))
        except av.error.FFmpegError as err:
            raise errors.truncated(path, f"audio decoding failed ({err})") from None
    if not chunks:
        raise errors.truncated(path, "its audio stream holds no samples")
    wave = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    offset = max(round(((start or 0.0) - (first or 0.0)) * rate), 0)
    stop = None if end is None else offset + round((end - (start or 0.0)) * rate)
    return np.ascontiguousarray(wave[:, offset:stop]), rate


# ----------------------------------------------------------------------------- VGGish
def vggish_mel_matrix(params: VGGishParams = VGGISH, dtype=None) -> torch.Tensor:
    """[fft_length // 2 + 1, num_mel_bins] VGGish filterbank: HTK mel, triangles linear in mel,
    DC row zeroed (mel_features.spectrogram_to_mel_matrix)."""
    import torch

    def mel(hz):
        return 1127.0 * torch.log1p(hz / 700.0)

    bins = params.fft_length // 2 + 1
    bins_mel = mel(torch.linspace(0.0, params.sample_rate / 2, bins, dtype=torch.float64))
    edges = torch.linspace(float(mel(torch.tensor(params.mel_min_hz, dtype=torch.float64))),
                           float(mel(torch.tensor(params.mel_max_hz, dtype=torch.float64))),
                           params.num_mel_bins + 2, dtype=torch.float64)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0, :] = 0.0
    return weights.to(dtype or torch.float32)


def vggish_log_mel(wave: torch.Tensor, sample_rate: int = 16000, params: VGGishParams = VGGISH) -> torch.Tensor:
    """[frames, 64] log-mel of a mono waveform (resampled to 16 kHz if needed); frames are not
    centred: frames = 1 + (N - 400) // 160."""
    import torch
    import torchaudio

    wave = _mono(wave)
    wave = resample(wave, sample_rate, params.sample_rate)
    win, nfft = params.window_length, params.fft_length
    if wave.shape[-1] < win:
        return wave.new_zeros((0, params.num_mel_bins))
    # torch.stft centres the 400-tap window inside the 512-sample frame: padding by
    # (512 - 400) / 2 puts the window exactly over samples [m*hop, m*hop + 400) as VGGish does;
    # where the zeros go inside the FFT frame changes only the phase, not the magnitude.
    spec = torchaudio.functional.spectrogram(
        wave, pad=(nfft - win) // 2, window=torch.hann_window(win, periodic=True, dtype=wave.dtype),
        n_fft=nfft, hop_length=params.hop_length, win_length=win, power=1.0, normalized=False, center=False)
    mel = spec.transpose(-1, -2) @ vggish_mel_matrix(params, wave.dtype)
    return torch.log(mel + params.log_offset)


def vggish_examples(wave: torch.Tensor, sample_rate: int = 16000, *, num_examples: int | None = None,
                    params: VGGishParams = VGGISH) -> torch.Tensor:
    """[n, 96, 64] non-overlapping 0.96 s log-mel examples (the trailing partial one dropped).

    `num_examples` pads by repeating the last example, or cuts, as AVSBench's preprocessing
    does for its 5-s clips (n = 5)."""
    import torch

    log_mel = vggish_log_mel(wave, sample_rate, params)
    size, hop = params.example_frames, params.example_hop_frames
    count = 0 if log_mel.shape[0] < size else 1 + (log_mel.shape[0] - size) // hop
    if count:
        examples = log_mel.unfold(0, size, hop).transpose(1, 2)[:count]
    else:
        examples = log_mel.new_zeros((0, size, log_mel.shape[1]))
    if num_examples is None:
        return examples.contiguous()
    if count == 0:
        raise errors.AudioTooShortError(
            f"audio of {wave.shape[-1] / sample_rate:.2f}s is shorter than one 0.96 s VGGish example; use longer clips")
    if count < num_examples:
        examples = torch.cat([examples, examples[-1:].expand(num_examples - count, -1, -1)])
    return examples[:num_examples].contiguous()


# ----------------------------------------------------------------------------- Kaldi fbank
def kaldi_fbank(wave: torch.Tensor, sample_rate: int = 16000, *, num_mel_bins: int = 128, frame_shift: float = 10.0,
                frame_length: float = 25.0, target_length: int | None = None, normalize: bool = False,
                mean: float = AST_MEAN, std: float = AST_STD, subtract_mean: bool = True) -> torch.Tensor:
    """[frames, num_mel_bins] AST-style Kaldi fbank of a mono waveform at `sample_rate`."""
    import torch
    import torchaudio

    wave = _mono(wave).to(torch.float32)
    if subtract_mean:
        wave = wave - wave.mean()
    if wave.shape[-1] < round(sample_rate * frame_length / 1000):
        raise errors.AudioTooShortError(
            f"audio of {wave.shape[-1] / sample_rate * 1000:.0f} ms is shorter than one {frame_length:g} ms "
            "fbank frame; use longer clips")
    fbank = torchaudio.compliance.kaldi.fbank(
        wave[None], htk_compat=True, sample_frequency=sample_rate, use_energy=False, window_type="hanning",
        num_mel_bins=num_mel_bins, dither=0.0, frame_shift=frame_shift, frame_length=frame_length)
    if target_length is not None:
        missing = target_length - fbank.shape[0]
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, missing)) if missing > 0 else fbank[:target_length]
    if normalize:
        fbank = (fbank - mean) / (std * 2)
    return fbank


def _mono(wave: torch.Tensor) -> torch.Tensor:
    import torch

    wave = torch.as_tensor(wave)
    if wave.ndim == 2:
        wave = wave.mean(dim=0)
    if wave.ndim != 1:
        raise ValueError(f"expected a waveform [N] or [C, N], got shape {tuple(wave.shape)}")
    return wave if wave.is_floating_point() else wave.to(torch.float32)
