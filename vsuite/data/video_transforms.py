"""Spatial transforms and targets for video clips: resizing, crops, normalisation, mixup, smoothing.

Pixels: x / 255, then (x - mean) / std; bilinear resizing (align_corners False). Label smoothing gives
(1 - eps) one_hot + eps / C; mixup mixes each sample with the batch reversed (timm's batch mode).
"""

from __future__ import annotations

import math
import random

def to_float(frames):
    """uint8 [T, H, W, 3] -> float32 [T, 3, H, W] in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(x, mean, std):
    import torch

    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def resize(x, height: int, width: int):
    import torch.nn.functional as F

    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def resize_short_side(x, size: int):
    h, w = x.shape[-2:]
    if h <= w:
        return resize(x, size, max(size, round(w * size / h)))
    return resize(x, max(size, round(h * size / w)), size)


def spatial_crops(x, size: int, num: int) -> list:
    """`num` size x size crops along the longer side (1: centre; 3: start, centre, end)."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        x = resize_short_side(x, size)
        h, w = x.shape[-2:]
    if num == 1:
        offsets = [(h - size) // 2] if h > w else [(w - size) // 2]
    else:
        extent = (h if h > w else w) - size
        offsets = [round(k * extent / (num - 1)) for k in range(num)]
    if h > w:
        return [x[..., o:o + size, (w - size) // 2:(w - size) // 2 + size] for o in offsets]
    return [x[..., (h - size) // 2:(h - size) // 2 + size, o:o + size] for o in offsets]


def random_resized_crop(x, size: int, scale, rng: random.Random, ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop sampling (10 tries, then a centre crop), one box for every frame."""
    h, w = x.shape[-2:]
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_r))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
            return resize(x[..., top:top + ch, left:left + cw], size, size)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize(x[..., top:top + side, left:left + side], size, size)


def smooth_one_hot(labels, num_classes: int, smoothing: float = 0.0):
    """(1 - eps) one_hot + eps / C, float [B, C]."""
    import torch.nn.functional as F

    target = F.one_hot(labels.long(), num_classes).float()
    return target * (1.0 - smoothing) + smoothing / num_classes


def mixup(x, targets, lam: float):
    """Mix each sample with the batch reversed (timm batch mode): returns (x, targets) mixed with weight lam."""
    return lam * x + (1.0 - lam) * x.flip(0), lam * targets + (1.0 - lam) * targets.flip(0)


# ----------------------------------------------------------------------------- batches for the trainer
