"""Audio-visual fusion (AVCorr, TPAVI) and the implicit volumetric motion estimation of AVS-bidirectional.

Sources: model/fusion_module/avcorr.py, model/fusion_module/tpavi.py, model/AVSModel.py (visual_corr_attention),
utils/torch_utils.py (torch_L2normalize). Names are the official ones. Both fusions return the fused visual map
and the L2-normalised audio [B, T, C] that L_AVM compares with (the official modules return it as [B, C, T]).

l2normalize(x, d)  x / sqrt(sum_d x^2 + 1e-6)  (the official helper; eps inside the root, unlike F.normalize)

AVCorr (per stage; v [BT, C, H, W], a [BT, C], C = neck width = audio width):
  v, a = l2normalize(v), l2normalize(a)
  corr = v * a[:, :, None, None]                      (channel-wise; the official einsum keeps C, sums nothing)
  A = sigmoid(conv1x1(C/4 -> 1)(conv7x7(C/4 -> C/4)(conv1x1(C -> C/4)(corr))))   (no bias, norm or activation)
  out = v + v * A

TPAVI (the AVS-bidirectional variant, used when FUSION = "tpavi"): a non-local block over (T, H, W),
  v, a = l2normalize(v), l2normalize(a); a broadcast over (H, W)
  f = theta(v)^T phi(a) / (T H W);  y = f g(v);  z = LayerNorm_C(W_z(y) + v)
  theta, phi, g: 1x1x1 Conv3d C -> C/2 (with bias); W_z: Conv3d C/2 -> C + BatchNorm3d with zero-initialised
  affine, so the block starts as LayerNorm(v).
  It differs from AVSBench's original TPAVI (avs_scripts/*/model/TPAVI.py) in three ways, all from the
  AVS-bidirectional code: no `align_channel` Linear (the audio already has the neck width), both inputs are
  L2-normalised first, and it runs on the 128-channel neck instead of a 256-channel ASPP output.

visual_corr_attention (implicit volumetric motion estimation, applied after the fusion, at every scale):
  frame t pairs with t + 1, the last frame with t - 1;
  m_t[p] = mean_q ReLU(<F_t[:, p], F_pair[:, q]>)   (raw dot products: the official L2-norm line is commented out)
  A_t = sigmoid(w m_t + b)  (Conv2d(1, 1, 1), `corr_atten[scale]`);  F_t <- F_t + F_t * A_t
"""

from __future__ import annotations

import torch
from torch import nn

from .decoder import BasicConv2d


def l2normalize(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=dim, keepdim=True) + 1e-6).sqrt()


class AVCorr(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        c = in_channels
        self.conv1 = BasicConv2d(c, c // 4, 1, norm=False)
        self.conv2 = BasicConv2d(c // 4, c // 4, 7, padding=3, norm=False)
        self.conv3 = BasicConv2d(c // 4, 1, 1, norm=False)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, num_frames: int):
        """visual [BT, C, H, W], audio [BT, C] -> (fused [BT, C, H, W], normalised audio [B, T, C])."""
        a, v = l2normalize(audio, 1), l2normalize(visual, 1)
        corr = v * a[:, :, None, None]
        attention = torch.sigmoid(self.conv3(self.conv2(self.conv1(corr))))  # [BT, 1, H, W]
        return v + v * attention, a.reshape(-1, num_frames, a.shape[-1])


class TPAVIModule(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        c, inter = in_channels, in_channels // 2
        self.inter_channels = inter
        self.g = nn.Conv3d(c, inter, 1)
        self.theta = nn.Conv3d(c, inter, 1)
        self.phi = nn.Conv3d(c, inter, 1)
        self.norm_layer = nn.LayerNorm(c)
        self.W_z = nn.Sequential(nn.Conv3d(inter, c, 1), nn.BatchNorm3d(c))
        nn.init.zeros_(self.W_z[1].weight)
        nn.init.zeros_(self.W_z[1].bias)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, num_frames: int):
        bt, c, h, w = visual.shape
        b, t = bt // num_frames, num_frames
        v = l2normalize(visual.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4), 1)  # [B, C, T, H, W]
        a_btc = l2normalize(audio.reshape(b, t, c), 2)  # [B, T, C]
        a = a_btc.permute(0, 2, 1)[..., None, None].expand(b, c, t, h, w)
        g_x = self.g(v).reshape(b, self.inter_channels, -1).transpose(1, 2)  # [B, THW, C']
        theta = self.theta(v).reshape(b, self.inter_channels, -1)  # [B, C', THW]
        phi = self.phi(a).reshape(b, self.inter_channels, -1)
        f = theta.transpose(1, 2) @ phi / phi.shape[-1]  # [B, THW, THW], "dot" mode: divided by N = THW
        y = (f @ g_x).transpose(1, 2).reshape(b, self.inter_channels, t, h, w)
        z = self.norm_layer((self.W_z(y) + v).permute(0, 2, 3, 4, 1))  # [B, T, H, W, C]
        return z.permute(0, 1, 4, 2, 3).reshape(bt, c, h, w), a_btc


def pair_indices(num_frames: int) -> list[int]:
    """Partner of each frame in the motion block: t + 1, and t - 1 for the last frame."""
    return [t + 1 for t in range(num_frames - 1)] + [num_frames - 2]


def motion_scores(feature: torch.Tensor, num_frames: int) -> torch.Tensor:
    """[BT, C, H, W] -> m [BT, 1, H, W], m_t[p] = mean_q ReLU(<F_t[:, p], F_pair(t)[:, q]>).

    Builds the [B, T, HW, HW] correlation volume at once, as the official code does (its memory is the
    price of this block: at 56x56 it is 3136^2 floats per frame)."""
    bt, c, h, w = feature.shape
    x = feature.reshape(bt // num_frames, num_frames, c, h * w)
    partner = x[:, pair_indices(num_frames)]
    corr = torch.einsum("btcp,btcq->btpq", x, partner).clamp(min=0)
    return corr.mean(dim=-1).reshape(bt, 1, h, w)


def visual_corr_attention(features: list[torch.Tensor], corr_atten: nn.ModuleList, num_frames: int):
    """F <- F + F * sigmoid(conv1x1(motion_scores(F))) at each scale."""
    out = []
    for feature, conv in zip(features, corr_atten):
        attention = torch.sigmoid(conv(motion_scores(feature, num_frames)))
        out.append(feature + feature * attention)
    return out


__all__ = ["AVCorr", "TPAVIModule", "l2normalize", "motion_scores", "pair_indices", "visual_corr_attention"]
