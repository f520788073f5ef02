"""The audio side of AVLFormer: a log-mel front end and PaSST (Koutini et al. 2022), as the official
AVLFormer copy (src/modeling/load_passt.py, passt/passt.py, passt/preprocess.py) computes them.

Front end (official AugmentMelSTFT, inference path): pre-emphasis [-0.97, 1], |STFT|^2 (hann window of
win_length, symmetric, centred), Kaldi mel banks (fmin..fmax, HTK-free Kaldi mel scale, a zero column for the
Nyquist bin), log(x + 1e-5), (x + 4.5) / 5. Training adds the official augmentations: fmin/fmax jitter
(+0..9 Hz, +-1000 Hz) and SpecAugment frequency (48) / time (192) masks.

PaSST (`net`): a Conv2d patch embedding (16x16, stride 10) on the [1, mels, frames] spectrogram, separate
frequency [1, D, F, 1] and time [1, D, 1, T] positional embeddings (time cut to the input), structured
patchout (whole time / frequency columns dropped), CLS and distillation tokens with their own positional
embedding, pre-norm ViT blocks (LayerNorm eps 1e-6), a final norm; the CLS token is dropped, so the output
is [B, 1 + kept patches, D] (distillation token first). `linear` maps D -> img_feature_dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .video_swin import DropPath, Mlp


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> torch.Tensor:
    """[n_mels, n_fft // 2 + 1] triangular filters on the Kaldi mel scale 1127 ln(1 + f/700), as
    torchaudio.compliance.kaldi.get_mel_banks (no VTLN warp) with the official zero Nyquist column."""
    def mel(f):
        return 1127.0 * torch.log(1.0 + f / 700.0)

    bins = n_fft // 2
    freqs = torch.arange(bins, dtype=torch.float64) * (sample_rate / n_fft)
    lo, hi = mel(torch.tensor(float(fmin), dtype=torch.float64)), mel(torch.tensor(float(fmax), dtype=torch.float64))
    delta = (hi - lo) / (n_mels + 1)
    m = torch.arange(n_mels, dtype=torch.float64).unsqueeze(1)
    left, centre, right = lo + m * delta, lo + (m + 1) * delta, lo + (m + 2) * delta
    mf = mel(freqs).unsqueeze(0)
    up = (mf - left) / (centre - left)
    down = (right - mf) / (right - centre)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return F.pad(banks, (0, 1)).to(torch.float32)


class LogMel(nn.Module):
    """Waveform [B, N] -> normalised log-mel [B, n_mels, frames]."""

    def __init__(self, n_mels=128, sample_rate=32000, win_length=800, hop_length=320, n_fft=1024, fmin=0.0,
                 fmax=15000.0, freqm=48, timem=192, fmin_aug_range=10, fmax_aug_range=2000):
        super().__init__()
        self.n_mels, self.sample_rate, self.n_fft = n_mels, sample_rate, n_fft
        self.win_length, self.hop_length = win_length, hop_length
        self.fmin, self.fmax = fmin, fmax
        self.freqm, self.timem = freqm, timem
        self.fmin_aug_range, self.fmax_aug_range = fmin_aug_range, fmax_aug_range
        # The window and the pre-emphasis filter are made per call, not stored as buffers: they are constants
        # (the official non-persistent buffers) and buffers outside the state dict are not restored by
        # from_pretrained's meta-device loading.

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = wave.float()
        pre = torch.tensor([[[-0.97, 1.0]]], device=wave.device)
        wave = F.conv1d(wave.unsqueeze(1), pre).squeeze(1)
        window = torch.hann_window(self.win_length, periodic=False, device=wave.device)
        spec = torch.stft(wave, self.n_fft, hop_length=self.hop_length, win_length=self.win_length, center=True,
                          normalized=False, window=window, return_complex=True)
        power = spec.real ** 2 + spec.imag ** 2  # [B, n_fft/2+1, frames]
        fmin, fmax = self.fmin, self.fmax
        if self.training:  # official: jitter the band edges of training data only
            fmin = fmin + int(torch.randint(self.fmin_aug_range, (1,)))
            fmax = fmax + self.fmax_aug_range // 2 - int(torch.randint(self.fmax_aug_range, (1,)))
        banks = kaldi_mel_banks(self.n_mels, self.n_fft, self.sample_rate, fmin, fmax).to(power.device)
        mel = torch.log(banks @ power + 1e-5)
        if self.training:
            mel = _spec_mask(mel, self.freqm, dim=1)
            mel = _spec_mask(mel, self.timem, dim=2)
        return (mel + 4.5) / 5.0


def _spec_mask(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """SpecAugment as torchaudio's Frequency/TimeMasking(iid_masks=True): per example one band of
    uniform(0, width) length at a uniform start, set to 0."""
    if width <= 0:
        return x
    b, size = x.shape[0], x.shape[dim]
    value = torch.rand(b, device=x.device) * width
    start = torch.rand(b, device=x.device) * (size - value)
    lo, hi = start.long(), (start.long() + value.long())
    pos = torch.arange(size, device=x.device)
    band = (pos[None] >= lo[:, None]) & (pos[None] < hi[:, None])  # [B, size]
    band = band[:, :, None] if dim == 1 else band[:, None, :]
    return x.masked_fill(band, 0.0)


class PasstAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class PasstBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = PasstAttention(dim, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PasstPatchEmbed(nn.Module):
    def __init__(self, patch: int, stride: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=stride)

    def forward(self, x):  # [B, 1, mels, frames] -> [B, D, F, T]
        return self.proj(x)


def patchout_indices(size: int, drop: int, mode: str, device) -> torch.Tensor:
    """Sorted indices of the size - drop kept columns: random (official) or evenly spaced."""
    keep = size - drop
    if mode == "random":
        return torch.randperm(size, device=device)[:keep].sort().values
    return torch.tensor([math.floor(i * size / keep) for i in range(keep)], device=device)


class Passt(nn.Module):
    """PaSST-S (official attribute names: patch_embed, cls_token, dist_token, new_pos_embed,
    freq_new_pos_embed, time_new_pos_embed, blocks, norm)."""

    def __init__(self, n_mels=128, input_tdim=998, patch=16, stride=10, dim=768, depth=12, num_heads=12,
                 mlp_ratio=4.0, patchout_t=40, patchout_f=4, patchout_eval="uniform", drop_path_rate=0.0):
        super().__init__()
        self.patchout_t, self.patchout_f, self.patchout_eval = patchout_t, patchout_f, patchout_eval
        f, t = (n_mels - patch) // stride + 1, (input_tdim - patch) // stride + 1
        self.patch_embed = PasstPatchEmbed(patch, stride, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, dim, f, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, dim, 1, t))
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.Sequential(*[PasstBlock(dim, num_heads, mlp_ratio, rates[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # [B, 1, mels, frames] -> [B, 1 + kept, D]
        x = self.patch_embed(mel)  # [B, D, F, T]
        b, _, fdim, tdim = x.shape
        time_pos = self.time_new_pos_embed
        if tdim < time_pos.shape[-1]:
            if self.training:  # official: a random window of the time embedding in training
                offset = int(torch.randint(1 + time_pos.shape[-1] - tdim, (1,)))
                time_pos = time_pos[:, :, :, offset:offset + tdim]
            else:
                time_pos = time_pos[:, :, :, :tdim]
        else:
            x = x[:, :, :, :time_pos.shape[-1]]
            tdim = time_pos.shape[-1]
        x = x + time_pos + self.freq_new_pos_embed
        mode = "random" if self.training else self.patchout_eval
        if self.patchout_t:
            x = x[:, :, :, patchout_indices(tdim, self.patchout_t, mode, x.device)]
        if self.patchout_f:
            x = x[:, :, patchout_indices(fdim, self.patchout_f, mode, x.device), :]
        x = x.flatten(2).transpose(1, 2)  # [B, F'*T', D] frequency-major, as the official flatten
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        x = self.norm(self.blocks(torch.cat((cls, dist, x), dim=1)))
        return x[:, 1:]


class AudioEncoder(nn.Module):
    """Official MyPasst: mel -> net -> linear. Waveform [B, N] or [B, 1, N] -> [B, tokens, out_dim]."""

    def __init__(self, config):
        super().__init__()
        c = config
        self.mel = LogMel(c.n_mels, c.sample_rate, c.win_length, c.hop_length, c.n_fft, c.fmin, c.fmax, c.mel_freqm,
                          c.mel_timem)
        self.net = Passt(c.n_mels, c.passt_input_tdim, c.passt_patch_size, c.passt_stride, c.passt_embed_dim,
                         c.passt_depth, c.passt_num_heads, c.passt_mlp_ratio, c.passt_patchout_t, c.passt_patchout_f,
                         c.passt_patchout_eval, c.passt_drop_path_rate)
        self.linear = nn.Linear(c.passt_embed_dim, c.img_feature_dim)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 3:  # [B, 1, N], the official layout
            wave = wave.reshape(-1, wave.shape[-1])
        return self.linear(self.net(self.mel(wave).unsqueeze(1)))


__all__ = ["AudioEncoder", "LogMel", "Passt", "kaldi_mel_banks", "patchout_indices"]
