"""torchvggish-exact log-mel examples (vsuite.media.vggish_input) against a naive numpy reference and hand values."""

from __future__ import annotations

import math
import wave

import numpy as np
import pytest

from vsuite.errors import DataError
from vsuite.media import vggish_input as vi

SR = 16000


# ----------------------------------------------------------------------------- naive reference (written here)
def naive_mel_matrix():
    """The HTK triangle filterbank, element by element with the math module."""
    def mel(hz):
        return 1127.0 * math.log(1.0 + hz / 700.0)

    lo, hi = mel(125.0), mel(7500.0)
    edges = [lo + (hi - lo) * k / 65 for k in range(66)]
    out = np.zeros((257, 64))
    for b in range(1, 257):  # bin 0 (DC) stays zero
        m = mel(8000.0 * b / 256)
        for j in range(64):
            left, centre, right = edges[j], edges[j + 1], edges[j + 2]
            up = (m - left) / (centre - left)
            down = (right - m) / (right - centre)
            out[b, j] = max(0.0, min(up, down))
    return out


def naive_log_mel(x):
    """Frames by explicit slicing, periodic Hann, DFT as an explicit cos/sin sum over the 400 samples
    (the 112 zeros of the 512-point FFT add nothing), HTK mel, log(+0.01)."""
    n_frames = 1 + (len(x) - 400) // 160
    k = np.arange(257)[:, None]
    t = np.arange(400)[None, :]
    cos, sin = np.cos(2 * np.pi * k * t / 512), np.sin(2 * np.pi * k * t / 512)
    window = np.array([0.5 - 0.5 * math.cos(2 * math.pi * i / 400) for i in range(400)])
    mel = naive_mel_matrix()
    rows = []
    for f in range(n_frames):
        seg = x[f * 160: f * 160 + 400] * window
        mag = np.sqrt((cos @ seg) ** 2 + (sin @ seg) ** 2)
        rows.append(np.log(mag @ mel + 0.01))
    return np.array(rows)


# ----------------------------------------------------------------------------- pieces
def test_mel_matrix_matches_naive_and_hand_values():
    m = vi.mel_matrix()
    assert m.shape == (257, 64)
    np.testing.assert_allclose(m, naive_mel_matrix(), rtol=0, atol=1e-12)
    assert np.all(m[0] == 0)  # the DC quirk
    assert vi.hertz_to_mel(700.0) == pytest.approx(1127.0 * math.log(2.0))  # 781.17...
    # bin 4 is exactly 125 Hz = the lower edge of band 0: weight 0. Bin 5 (156.25 Hz) lies 41.8 mel above it,
    # just past band 0's centre (bands are 39.7 mel apart), so it sits on band 0's falling side.
    assert m[4, 0] == 0.0
    lo, hi = 1127.0 * math.log(1 + 125 / 700), 1127.0 * math.log(1 + 7500 / 700)
    step = (hi - lo) / 65
    rise = (1127.0 * math.log(1 + 156.25 / 700) - lo) / step
    assert rise > 1 and m[5, 0] == pytest.approx(2 - rise, rel=1e-12)
    assert m[5, 1] == pytest.approx(rise - 1, rel=1e-9)
    # not area-normalised: every triangle peaks below (but near) 1; nothing above 7500 Hz (bin 240)
    assert np.all(m.max(axis=0) <= 1.0) and m.max() > 0.9
    assert np.all(m[241:] == 0)


def test_periodic_hann_hand_values():
    w = vi.periodic_hann(400)
    assert w[0] == 0.0 and w[100] == pytest.approx(0.5) and w[200] == pytest.approx(1.0)
    assert w[399] == pytest.approx(0.5 - 0.5 * math.cos(2 * math.pi * 399 / 400))
    assert abs(w[399] - np.hanning(400)[399]) > 1e-5  # periodic, not numpy's symmetric window


@pytest.mark.parametrize("n,frames", [(399, 0), (400, 1), (559, 1), (560, 2), (80000, 498)])
def test_frame_counts(n, frames):
    assert vi.frame(np.zeros(n), 400, 160).shape == (frames, 400)


def test_frame_values():
    x = np.arange(10.0)
    np.testing.assert_array_equal(vi.frame(x, 4, 3), [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])


def test_log_mel_matches_naive_reference():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 4000)  # 0.25 s: 23 frames
    ours = vi.log_mel(x)
    assert ours.shape == (23, 64)
    np.testing.assert_allclose(ours, naive_log_mel(x), rtol=0, atol=1e-9)


def test_silence_is_log_offset():
    ex = vi.waveform_to_examples(np.zeros(SR), SR)
    assert ex.shape == (1, 96, 64) and ex.dtype == np.float32
    np.testing.assert_allclose(ex, math.log(0.01), rtol=1e-6)


@pytest.mark.parametrize("samples,examples", [(15599, 0), (15600, 1), (80000, 5), (31200, 2)])
def test_example_counts(samples, examples):
    # 96 frames need 400 + 95 * 160 = 15600 samples; 5 s at 16 kHz -> 498 frames -> 5 examples
    assert vi.waveform_to_examples(np.zeros(samples), SR).shape == (examples, 96, 64)


def test_examples_are_consecutive_96_frame_blocks():
    x = np.random.default_rng(1).normal(0, 0.1, 2 * 15600)
    ex = vi.waveform_to_examples(x, SR)
    full = vi.log_mel(x)
    assert ex.shape == (2, 96, 64)
    np.testing.assert_allclose(ex[1], full[96:192], rtol=1e-6)


def test_tone_peaks_in_its_band():
    t = np.arange(SR) / SR
    ex = vi.waveform_to_examples(0.5 * np.sin(2 * np.pi * 1000 * t), SR)
    band = int(ex[0].mean(0).argmax())
    m = vi.mel_matrix()
    assert m[32, band] > 0.5  # bin 32 = 1000 Hz sits high on the winning triangle


def test_stereo_is_channel_mean():
    rng = np.random.default_rng(2)
    left, right = rng.normal(0, 0.1, SR), rng.normal(0, 0.1, SR)
    np.testing.assert_allclose(vi.waveform_to_examples(np.stack([left, right], 1), SR),
                               vi.waveform_to_examples((left + right) / 2, SR), rtol=1e-6)


def test_resampling_close_to_native_rate():
    t32, t16 = np.arange(int(1.5 * 32000)) / 32000, np.arange(int(1.5 * SR)) / SR
    a = vi.waveform_to_examples(0.5 * np.sin(2 * np.pi * 700 * t32), 32000)
    b = vi.waveform_to_examples(0.5 * np.sin(2 * np.pi * 700 * t16), SR)
    assert a.shape == b.shape == (1, 96, 64)
    assert np.abs(a - b)[:, 1:].max() < 1e-4  # only frame 0 sees the resampling filter's ramp-up at the start
    assert np.abs(a - b).max() < 0.05


def test_agrees_with_torch_sibling():
    import torch

    from vsuite.media.audio import vggish_examples

    x = np.random.default_rng(3).normal(0, 0.2, 2 * SR)
    ours = vi.waveform_to_examples(x, SR)
    theirs = vggish_examples(torch.from_numpy(x), SR).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_pad_examples():
    ex = np.arange(2 * 96 * 64, dtype=np.float32).reshape(2, 96, 64)
    out = vi.pad_examples(ex, 5)
    assert out.shape == (5, 96, 64)
    np.testing.assert_array_equal(out[:2], ex)
    for k in (2, 3, 4):
        np.testing.assert_array_equal(out[k], ex[1])
    assert vi.pad_examples(np.zeros((7, 96, 64)), 5).shape == (5, 96, 64)
    with pytest.raises(DataError, match="shorter than one 0.96 s"):
        vi.pad_examples(np.zeros((0, 96, 64)), 5, source="clip.wav")


def test_wavfile_reads_int16_like_torchvggish(tmp_path):
    rng = np.random.default_rng(4)
    pcm = rng.integers(-20000, 20000, size=(SR, 2)).astype("<i2")
    path = tmp_path / "x.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())
    expected = vi.waveform_to_examples(pcm / 32768.0, SR)
    np.testing.assert_array_equal(vi.wavfile_to_examples(path), expected)
    with pytest.raises(DataError, match="not found"):
        vi.wavfile_to_examples(tmp_path / "missing.wav")
