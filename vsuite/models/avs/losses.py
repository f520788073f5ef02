"""Training losses of AVS-bidirectional (loss.py, trainer.py, model/AVSModel.py):

  L = L_struct + sim_loss_weight * L_AVM + latent_loss_weight * L_latent

structure_loss (F3Net-style, `structure_loss_s4` / `structure_loss_ms3`), over the supervised frames
  logits, mask [N, 1, H, W]:
  weight = 1 + 5 |avgpool31(mask) - mask|   (stride 1, zero padding 15 counted in the average)
  target = (1 - 0.001) mask + 0.0005        (label smoothing, BCE only)
  bce    = BCE-with-logits(logits, target) averaged over ALL pixels of all N frames first; the official
           `(weight * bce).sum / weight.sum` then returns that same number, so the boundary weight is a no-op
           for the BCE (the official quirk, reproduced by default; `weighted_bce=True` weights it per pixel)
  p = sigmoid(logits); inter = sum weight p mask; union = sum weight (p + mask)   (per frame, raw mask)
  wiou = 1 - (inter + 1) / (union - inter + 1)
  loss = mean over frames of (bce + wiou)
  S4 training supervises only frame 0 (the one annotated frame), MS3 all five: the caller selects the frames.

avm_loss (L_AVM, AVSBench's `A_MaskedV_SimmLoss` with kl_flag, avg pooling), averaged over the 4 stages:
  m = sigmoid(adaptive_avg_pool(logits, (h, w)))   (pool the logits first, then the sigmoid, as official)
  v = mean_hw(fused_visual * m) [BT, C];  a = the fusion's normalised audio [BT, C]
  KL(softmax(F.normalize(a)) || softmax(F.normalize(v))) with reduction "sum" (over frames and channels)
  over ALL frames' predictions (it needs no ground truth).

latent_loss (visual-to-audio generation): mean over frames of || F.normalize(a) - F.normalize(g) + 1e-6 ||_2
  (torch's pairwise_distance), a = VGGish feature, g = generated audio feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _f32(x: torch.Tensor) -> torch.Tensor:
    """Half precision -> float32 for the losses; float32 / float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def boundary_weight(mask: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] -> 1 + 5 |avgpool31(mask) - mask| (zero padding counted, the avg_pool2d default)."""
    return 1 + 5 * torch.abs(F.avg_pool2d(mask, kernel_size=31, stride=1, padding=15) - mask)


def structure_loss(logits: torch.Tensor, mask: torch.Tensor, weighted_bce: bool = False) -> torch.Tensor:
    """logits, mask [N, 1, H, W] (the supervised frames) -> scalar L_struct."""
    logits, mask = _f32(logits), _f32(mask.to(logits.dtype))
    weight = boundary_weight(mask)
    target = (1 - 0.001) * mask + 0.001 / 2
    if weighted_bce:  # F3Net's intent: per-pixel BCE, weighted, per frame
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        wbce = (weight * bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    else:  # official: reduced to one mean first, so the weighting below returns it unchanged
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="mean")
        wbce = (weight * bce).sum(dim=(2, 3)) / weight.sum(dim=(2, 3))
    p = torch.sigmoid(logits)
    inter = (p * mask * weight).sum(dim=(2, 3))
    union = ((p + mask) * weight).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def avm_loss(logits: torch.Tensor, audio_list: list[torch.Tensor], visual_list: list[torch.Tensor]) -> torch.Tensor:
    """logits [BT, 1, H, W]; audio_list[i] [B, T, C]; visual_list[i] [BT, C, h_i, w_i] -> scalar L_AVM."""
    total = 0.0
    for audio, visual in zip(audio_list, visual_list):
        bt, c, h, w = visual.shape
        a = _f32(audio.reshape(bt, c))
        m = torch.sigmoid(F.adaptive_avg_pool2d(_f32(logits), (h, w)))  # [BT, 1, h, w]
        v = (_f32(visual) * m).mean(dim=(-1, -2))  # [BT, C]
        a, v = F.normalize(a, dim=-1), F.normalize(v, dim=-1)
        total = total + F.kl_div(F.log_softmax(v, dim=-1), F.softmax(a, dim=-1), reduction="sum")
    return total / len(audio_list)


def latent_loss(audio: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """audio, generated [N, C] -> mean L2 distance of the L2-normalised vectors (pairwise_distance eps 1e-6)."""
    a = F.normalize(_f32(audio), dim=-1)
    g = F.normalize(_f32(generated), dim=-1)
    return F.pairwise_distance(a, g, p=2).mean()


__all__ = ["avm_loss", "boundary_weight", "latent_loss", "structure_loss"]
