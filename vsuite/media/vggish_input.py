"""VGGish input examples exactly as torchvggish's vggish_input.py / mel_features.py compute them, in numpy float64.

This is what AVSBench's preprocessing stored in its audio_log_mel/*.pkl files ([5, 1, 96, 64] per clip):
  1. mono: the mean over channels (input [n] or [n, channels]); samples in [-1, 1] (int16 / 32768);
  2. resample to 16 kHz (see below);
  3. frames of 400 samples (25 ms) every 160 (10 ms), no centring/padding: 1 + (n - 400) // 160 frames;
  4. periodic Hann window 0.5 - 0.5 cos(2 pi k / 400), |rfft| with n_fft 512 (magnitude, not power);
  5. mel filterbank with mel_features.py's quirks: HTK mel 1127 ln(1 + f / 700); the 257 bin frequencies
     are linspace(0, 8000, 257); 66 edges evenly spaced in *mel* from mel(125) to mel(7500); triangles linear in
     mel (not Hz), not area-normalised; the DC row forced to zero;
  6. log(mel + 0.01);
  7. examples of 96 frames every 96 frames (0.96 s, no overlap), the trailing partial example dropped.
Output: float32 [N, 96, 64] (the official returns float32 after computing in float64, as here).

Resampling: torchvggish uses resampy.resample (filter "kaiser_best"). resampy is not a vsuite dependency;
torchaudio's sinc resampler runs here with the same filter design (Kaiser window, 64 zero crossings,
rolloff 0.9475937167399596, beta 14.769656459379492). resampy interpolates a tabulated filter while torchaudio
evaluates the kernel at each phase, so resampled audio differs by a tiny amount (far below the 0.01 log offset
for normal audio levels). Audio already at 16 kHz (AVSBench's wav files are) is not resampled at all and goes
through the same float64 operations as the official code.

`vsuite.media.audio.vggish_examples` is the torch (float32, batched-friendly) sibling of this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import errors
from .audio import VGGISH, VGGishParams

# torchaudio parameters equal to resampy's "kaiser_best" filter (torchaudio's resampling tutorial lists the pair).
KAISER_BEST = {"resampling_method": "sinc_interp_kaiser", "lowpass_filter_width": 64,
               "rolloff": 0.9475937167399596, "beta": 14.769656459379492}


def hertz_to_mel(hz):
    """HTK mel scale: 1127 ln(1 + f / 700)."""
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def periodic_hann(length: int) -> np.ndarray:
    """[length] Hann window of period `length` (Matlab's "periodic"; np.hanning is the symmetric one)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi / length * np.arange(length))


def frame(data: np.ndarray, window: int, hop: int) -> np.ndarray:
    """[n, ...] -> [num, window, ...] with num = 1 + (n - window) // hop complete frames (0 if n < window).

    A copy (mel_features.frame returns a strided view of the same values)."""
    num = 0 if data.shape[0] < window else 1 + (data.shape[0] - window) // hop
    if num == 0:
        return np.zeros((0, window) + data.shape[1:], dtype=data.dtype)
    index = np.arange(num)[:, None] * hop + np.arange(window)[None, :]  # [num, window]
    return data[index]


def mel_matrix(params: VGGishParams = VGGISH) -> np.ndarray:
    """[fft_length // 2 + 1, num_mel_bins] = [257, 64] float64, mel_features.spectrogram_to_mel_matrix."""
    bins = params.fft_length // 2 + 1
    bins_mel = hertz_to_mel(np.linspace(0.0, params.sample_rate / 2.0, bins))  # [257]
    edges = np.linspace(hertz_to_mel(params.mel_min_hz), hertz_to_mel(params.mel_max_hz), params.num_mel_bins + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # [64] each
    rising = (bins_mel[:, None] - lower[None, :]) / (centre - lower)[None, :]
    falling = (upper[None, :] - bins_mel[:, None]) / (upper - centre)[None, :]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0  # HTK ignores the DC bin
    return weights


def log_mel(wave16k: np.ndarray, params: VGGishParams = VGGISH) -> np.ndarray:
    """[frames, 64] float64 log-mel of a mono 16 kHz waveform [n]."""
    frames = frame(np.asarray(wave16k, dtype=np.float64), params.window_length, params.hop_length)  # [F, 400]
    spectrum = np.abs(np.fft.rfft(frames * periodic_hann(params.window_length), params.fft_length))  # [F, 257]
    return np.log(spectrum @ mel_matrix(params) + params.log_offset)


def resample_to(wave: np.ndarray, sample_rate: int, target: int) -> np.ndarray:
    """float64 [n] resampled with torchaudio's Kaiser "kaiser_best"-equivalent filter (no-op when equal)."""
    if int(sample_rate) == int(target):
        return wave
    import torch
    import torchaudio

    out = torchaudio.functional.resample(torch.from_numpy(np.ascontiguousarray(wave)), int(sample_rate), int(target),
                                         **KAISER_BEST)
    return out.numpy()


def waveform_to_examples(wave, sample_rate: int, params: VGGishParams = VGGISH) -> np.ndarray:
    """torchvggish waveform_to_examples: wave [n] or [n, channels] (values ~[-1, 1]) -> float32 [N, 96, 64].

    N = 0 when the audio is shorter than one 0.96 s example (plus the 15 ms the last frame overhangs)."""
    data = np.asarray(wave, dtype=np.float64)
    if data.ndim == 2:
        data = data.mean(axis=1)  # [n, channels] -> [n]
    if data.ndim != 1:
        raise ValueError(f"expected a waveform [n] or [n, channels], got shape {data.shape}")
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    data = resample_to(data, sample_rate, params.sample_rate)
    features = log_mel(data, params)  # [F, 64]
    examples = frame(features, params.example_frames, params.example_hop_frames)  # [N, 96, 64]
    return examples.astype(np.float32)


def pad_examples(examples: np.ndarray, n: int = 5, *, source: str | Path | None = None) -> np.ndarray:
    """[N, 96, 64] -> [n, 96, 64]: AVSBench's preprocessing repeats the last example up to n.

    More than n examples are cut to the first n (the official script would crash on them). No example at all
    is an AudioTooShortError (DataError) naming `source`."""
    examples = np.asarray(examples)
    if examples.shape[0] == 0:
        where = f"{source}: " if source is not None else ""
        raise errors.AudioTooShortError(
            f"{where}audio shorter than one 0.96 s VGGish example; AVSBench clips need about 5 s of sound", source)
    if examples.shape[0] < n:
        tail = np.repeat(examples[-1:], n - examples.shape[0], axis=0)
        examples = np.concatenate([examples, tail], axis=0)
    return np.ascontiguousarray(examples[:n])


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """(float64 [n] or [n, channels], rate) of a WAV file. 16-bit PCM is read as int16 / 32768 like
    torchvggish's wavfile_to_examples (soundfile); other encodings go through PyAV (float in [-1, 1])."""
    import wave

    path = Path(path)
    if not path.is_file():
        raise errors.not_found(path)
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
            raw = wav.readframes(wav.getnframes()) if width == 2 else None
    except (wave.Error, EOFError):
        raw, width = None, 0  # not plain PCM (float or extensible WAV): let FFmpeg decode it
    if raw is not None and width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
        return (data if channels == 1 else data.reshape(-1, channels)), rate
    from .audio import audio_sample_rate, load_audio

    rate = audio_sample_rate(path)
    return load_audio(path, sample_rate=None, mono=False).numpy().T.astype(np.float64), rate


def wavfile_to_examples(path: str | Path, params: VGGishParams = VGGISH) -> np.ndarray:
    """float32 [N, 96, 64] examples of a WAV file (torchvggish wavfile_to_examples, as a numpy array)."""
    data, rate = read_wav(path)
    return waveform_to_examples(data, rate, params)


__all__ = ["KAISER_BEST", "frame", "hertz_to_mel", "log_mel", "mel_matrix", "pad_examples", "periodic_hann",
           "read_wav", "resample_to", "waveform_to_examples", "wavfile_to_examples"]
