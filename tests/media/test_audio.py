"""Audio decoding, resampling and the VGGish / Kaldi-fbank features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio

from vsuite.media import (AST_MEAN, AST_STD, AudioTooShortError, kaldi_fbank, load_audio, vggish_examples,
                          vggish_log_mel)
from vsuite.media.synth import sine


def dominant_hz(wave: torch.Tensor, rate: int) -> float:
    spectrum = torch.fft.rfft(wave.to(torch.float64) * torch.hann_window(wave.shape[-1], dtype=torch.float64)).abs()
    return float(spectrum.argmax()) * rate / wave.shape[-1]


@pytest.mark.parametrize("rate", [None, 16000])
def test_tone_frequency_survives_decode_and_resample(tone_m4a, rate):
    wave = load_audio(tone_m4a, rate)
    used = rate or 44100
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert wave.shape[0] == 2 * used  # padding after the last encoded sample is dropped
    assert dominant_hz(wave, used) == pytest.approx(440.0, abs=1.0)
    assert 0.4 < wave[used // 4: -used // 4].abs().max() < 0.6  # amplitude 0.5 preserved


def test_audio_track_of_a_video(index_video):
    wave = load_audio(index_video, 16000)
    assert wave.shape[0] == 32000 and dominant_hz(wave, 16000) == pytest.approx(440.0, abs=1.0)


def test_stereo_wav_mono_mix_and_span(tone_wav_stereo):
    stereo = load_audio(tone_wav_stereo, None, mono=False)
    assert stereo.shape == (2, 33075)
    mono = load_audio(tone_wav_stereo, 16000)
    assert mono.shape == (24000,) and dominant_hz(mono, 16000) == pytest.approx(1000.0, abs=1.0)
    span = load_audio(tone_wav_stereo, None, start=0.5, end=1.0)
    assert span.shape == (11025,)
    torch.testing.assert_close(span, stereo.mean(0)[11025:22050])


# ----------------------------------------------------------------------------- VGGish
def reference_vggish_log_mel(data: np.ndarray, rate: int = 16000) -> np.ndarray:
    """Independent numpy port of VGGish's mel_features.log_mel_spectrogram (documented algorithm)."""
    win, hop, nfft = 400, 160, 512
    count = 1 + (len(data) - win) // hop
    frames = np.stack([data[i * hop: i * hop + win] for i in range(count)]).astype(np.float64)
    window = 0.5 - 0.5 * np.cos(2 * np.pi / win * np.arange(win))  # periodic Hann
    spec = np.abs(np.fft.rfft(frames * window, nfft))

    def mel(hz):
        return 1127.0 * np.log(1.0 + hz / 700.0)

    bins_mel = mel(np.linspace(0.0, rate / 2, nfft // 2 + 1))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    matrix = np.empty((nfft // 2 + 1, 64))
    for i in range(64):
        lo, mid, hi = edges[i: i + 3]
        matrix[:, i] = np.maximum(0.0, np.minimum((bins_mel - lo) / (mid - lo), (hi - bins_mel) / (hi - mid)))
    matrix[0, :] = 0.0
    return np.log(spec @ matrix + 0.01)


def test_vggish_log_mel_matches_reference():
    rng = np.random.default_rng(0)
    wave = (0.3 * sine(440.0, 2.5, 16000) + 0.05 * rng.standard_normal(40000)).astype(np.float32)
    ours = vggish_log_mel(torch.from_numpy(wave).to(torch.float64))
    ref = reference_vggish_log_mel(wave.astype(np.float64))
    assert ours.shape == ref.shape == (1 + (40000 - 400) // 160, 64)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)
    ours32 = vggish_log_mel(torch.from_numpy(wave))
    np.testing.assert_allclose(ours32.numpy(), ref, atol=1e-3)


def test_vggish_examples_shape_and_peak_band(tone_m4a):
    wave = load_audio(tone_m4a, 16000)  # 2 s -> 198 frames -> 2 examples of 96
    ex = vggish_examples(wave)
    assert ex.shape == (2, 96, 64) and ex.dtype == torch.float32
    torch.testing.assert_close(ex.reshape(-1, 64), vggish_log_mel(wave)[:192])
    # the 440 Hz band carries the energy
    mel440 = 1127 * np.log(1 + 440 / 700)
    edges = np.linspace(1127 * np.log(1 + 125 / 700), 1127 * np.log(1 + 7500 / 700), 66)
    assert abs(int(ex.mean(dim=(0, 1)).argmax()) - int(np.argmin(abs(edges[1:-1] - mel440)))) <= 1
    # same from the file's own rate: resampled inside, close to the pre-resampled version
    native = vggish_examples(load_audio(tone_m4a, None), 44100)
    assert native.shape == ex.shape and (native - ex).abs().mean() < 0.05


def test_vggish_examples_padding_like_avsbench():
    wave = torch.from_numpy(sine(300.0, 2.0, 16000))
    five = vggish_examples(wave, num_examples=5)
    assert five.shape == (5, 96, 64)
    assert torch.equal(five[2], five[1]) and torch.equal(five[4], five[1])
    assert vggish_examples(wave, num_examples=1).shape == (1, 96, 64)
    assert vggish_examples(wave[:8000]).shape == (0, 96, 64)
    with pytest.raises(AudioTooShortError, match="shorter than one 0.96 s"):
        vggish_examples(wave[:8000], num_examples=5)


# ----------------------------------------------------------------------------- Kaldi fbank
def test_kaldi_fbank_equals_torchaudio(tone_m4a):
    wave = load_audio(tone_m4a, 16000)
    direct = torchaudio.compliance.kaldi.fbank(
        (wave - wave.mean())[None], htk_compat=True, sample_frequency=16000, use_energy=False,
        window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    ours = kaldi_fbank(wave, 16000)
    assert ours.shape == (198, 128)
    assert torch.equal(ours, direct)
    normed = kaldi_fbank(wave, 16000, normalize=True, target_length=1024)
    assert normed.shape == (1024, 128)
    torch.testing.assert_close(normed[:198], (direct - AST_MEAN) / (2 * AST_STD))
    assert torch.all(normed[198:] == (0 - AST_MEAN) / (2 * AST_STD))  # zero-padded, then normalised
    assert kaldi_fbank(wave, 16000, target_length=100).shape == (100, 128)
