"""Tiny AVS configs and inputs shared by the tests in this folder (64x64 frames, 5 per clip)."""

import torch

from vsuite.models.avs import AVSConfig

TINY_PVT = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 2, 1, 1], num_attention_heads=[1, 2, 2, 4],
                mlp_ratios=[2, 2, 2, 2], sr_ratios=[4, 2, 1, 1], drop_path_rate=0.0)
TINY_RESNET = dict(embedding_size=8, hidden_sizes=[16, 32, 48, 64], depths=[1, 2, 1, 1])
TINY_VGGISH = dict(vggish_channels=(4, 4, 8, 8, 8, 8), vggish_hidden_size=16)


def tiny_config(backbone="pvt_v2_b5", **kw) -> AVSConfig:
    base = dict(backbone=backbone, backbone_config=TINY_PVT if backbone == "pvt_v2_b5" else TINY_RESNET,
                neck_channels=16, audio_dim=16, image_size=64, **TINY_VGGISH)
    return AVSConfig(**{**base, **kw})


def tiny_batch(b=2, t=5, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(b, t, 3, size, size, generator=g)
    log_mel = torch.randn(b, t, 1, 96, 64, generator=g)
    masks = torch.zeros(b, t, 1, size, size)
    masks[..., size // 4: size // 2, size // 8: size // 2] = 1.0  # a rectangle per frame
    masks[-1, :, :, 0:8, :] = 1.0  # the last clip differs
    return pixels, log_mel, masks
