"""Video Swin Transformer (Liu et al. 2022), the video encoder of AVLFormer; transformers has none.

The same maths and parameter names as the official SwinTransformer3D (SwinTransformer/Video-Swin-Transformer,
copied into AVLFormer/src/modeling/video_swin): a Conv3d patch embedding (2x4x4 by default, inputs padded
up to a multiple), stages of blocks with 3D window attention (relative position bias over
(2Wd-1)(2Wh-1)(2Ww-1) offsets), every second block shifted by half a window with the -100 mask between
regions that the cyclic roll brought together, windows and shifts shrunk to the feature size where it is
smaller, 2x2 patch merging after every stage but the last, and a final LayerNorm.
Input [B, C, T, H, W] -> features [B, C', T', H', W'].

`relative_position_index` is computed from the window size (cached), not stored: the official checkpoints
hold it as a buffer, which the converter drops.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import DropPath


def window_size_for(size: tuple[int, int, int], window, shift):
    """Official get_window_size: a window no larger than the feature, no shift along such an axis."""
    window, shift = list(window), list(shift)
    for i in range(3):
        if size[i] <= window[i]:
            window[i], shift[i] = size[i], 0
    return tuple(window), tuple(shift)


def window_partition(x: torch.Tensor, window) -> torch.Tensor:
    """[B, D, H, W, C] -> [B * windows, wd*wh*ww, C] (windows in d, h, w order)."""
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def window_reverse(windows: torch.Tensor, window, b: int, d: int, h: int, w: int) -> torch.Tensor:
    wd, wh, ww = window
    x = windows.view(b, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def shift_mask(d: int, h: int, w: int, window, shift, device) -> torch.Tensor:
    """[windows, N, N] additive mask (0 / -100) of the shifted windows, as the official compute_mask."""
    region = torch.zeros((1, d, h, w, 1), device=device)
    count = 0
    for ds in (slice(-window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
        for hs in (slice(-window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
            for ws in (slice(-window[2]), slice(-window[2], -shift[2]), slice(-shift[2], None)):
                region[:, ds, hs, ws, :] = count
                count += 1
    ids = window_partition(region, window).squeeze(-1)  # [windows, N]
    diff = ids.unsqueeze(1) - ids.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


@lru_cache(maxsize=16)
def _cached_index(window: tuple[int, int, int]) -> torch.Tensor:
    return relative_position_index(window)


def relative_position_index(window) -> torch.Tensor:
    """[N, N] index into the (2wd-1)(2wh-1)(2ww-1) bias table."""
    wd, wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij"))
    flat = coords.flatten(1)  # [3, N]
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0)  # [N, N, 3]
    rel[:, :, 0] += wd - 1
    rel[:, :, 1] += wh - 1
    rel[:, :, 2] += ww - 1
    rel[:, :, 0] *= (2 * wh - 1) * (2 * ww - 1)
    rel[:, :, 1] *= 2 * ww - 1
    return rel.sum(-1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention3D(nn.Module):
    def __init__(self, dim: int, window, num_heads: int):
        super().__init__()
        self.window_size = tuple(window)
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        size = (2 * window[0] - 1) * (2 * window[1] - 1) * (2 * window[2] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(size, num_heads))
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):  # x [B*windows, N, C]; mask [windows, N, N] or None
        bw, n, c = x.shape
        qkv = self.qkv(x).reshape(bw, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]  # [B*windows, heads, N, d]
        attn = q @ k.transpose(-2, -1)
        # N may be smaller than the full window (windows shrunk to small inputs): the official slices [:N, :N].
        index = _cached_index(self.window_size)[:n, :n].reshape(-1).to(x.device)
        bias = self.relative_position_bias_table[index].reshape(n, n, -1).permute(2, 0, 1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        attn = attn.softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(bw, n, c))


class SwinBlock3D(nn.Module):
    def __init__(self, dim: int, num_heads: int, window, shift, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.window_size, self.shift_size = tuple(window), tuple(shift)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, window, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _attend(self, x, mask):  # [B, D, H, W, C]
        b, d, h, w, c = x.shape
        window, shift = window_size_for((d, h, w), self.window_size, self.shift_size)
        x = self.norm1(x)
        pad = [(window[i] - s % window[i]) % window[i] for i, s in enumerate((d, h, w))]
        x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        _, dp, hp, wp, _ = x.shape
        shifted = any(s > 0 for s in shift)
        if shifted:
            x = torch.roll(x, shifts=(-shift[0], -shift[1], -shift[2]), dims=(1, 2, 3))
        out = self.attn(window_partition(x, window), mask=mask if shifted else None)
        x = window_reverse(out, window, b, dp, hp, wp)
        if shifted:
            x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
        return x[:, :d, :h, :w, :].contiguous()

    def forward(self, x, mask):
        x = x + self.drop_path(self._attend(x, mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 spatial merge: [B, D, H, W, C] -> [B, D, H/2, W/2, 2C] (odd sizes padded)."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(self, dim: int, depth: int, num_heads: int, window, mlp_ratio: float, drop_paths, downsample: bool):
        super().__init__()
        self.window_size = tuple(window)
        self.shift_size = tuple(i // 2 for i in window)
        self.blocks = nn.ModuleList(
            SwinBlock3D(dim, num_heads, window, (0, 0, 0) if i % 2 == 0 else self.shift_size, mlp_ratio, drop_paths[i])
            for i in range(depth))
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x):  # [B, C, D, H, W] -> [B, C', D, H', W']
        b, c, d, h, w = x.shape
        window, shift = window_size_for((d, h, w), self.window_size, self.shift_size)
        x = x.permute(0, 2, 3, 4, 1)
        padded = [-(-s // window[i]) * window[i] for i, s in enumerate((d, h, w))]
        mask = shift_mask(*padded, window, shift, x.device).to(x.dtype) if any(shift) else None
        for block in self.blocks:
            x = block(x, mask)
        if self.downsample is not None:
            x = self.downsample(x)
        return x.permute(0, 4, 1, 2, 3)


class PatchEmbed3D(nn.Module):
    def __init__(self, patch, in_chans: int, dim: int, norm: bool):
        super().__init__()
        self.patch_size = tuple(patch)
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x):  # [B, C, T, H, W] -> [B, dim, T', H', W']
        _, _, d, h, w = x.shape
        pt, ph, pw = self.patch_size
        x = F.pad(x, (0, (pw - w % pw) % pw, 0, (ph - h % ph) % ph, 0, (pt - d % pt) % pt))
        x = self.proj(x)
        if self.norm is not None:
            b, c, d, h, w = x.shape
            x = self.norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).view(b, c, d, h, w)
        return x


class VideoSwin3D(nn.Module):
    """SwinTransformer3D backbone (official attribute names: patch_embed, layers, norm)."""

    def __init__(self, patch_size=(2, 4, 4), in_chans: int = 3, embed_dim: int = 128, depths=(2, 2, 18, 2),
                 num_heads=(4, 8, 16, 32), window_size=(8, 7, 7), mlp_ratio: float = 4.0, patch_norm: bool = True,
                 drop_path_rate: float = 0.2):
        super().__init__()
        self.patch_embed = PatchEmbed3D(patch_size, in_chans, embed_dim, patch_norm)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            self.layers.append(SwinStage(embed_dim * 2**i, depth, num_heads[i], window_size, mlp_ratio,
                                         rates[sum(depths[:i]):sum(depths[:i + 1])], downsample=i < len(depths) - 1))
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.norm = nn.LayerNorm(self.num_features)

    def forward(self, x):  # [B, C, T, H, W] -> [B, C', T', H', W']
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x.contiguous())
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


__all__ = ["VideoSwin3D", "shift_mask", "window_partition", "window_reverse", "window_size_for"]
