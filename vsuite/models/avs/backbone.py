"""The visual encoder: transformers' PvtV2Model (PVT-v2-b5) or ResNetModel (ResNet-50), four stage features.

  pixel_values [N, 3, H, W] -> [N, C_i, H / s_i, W / s_i] for strides s = 4, 8, 16, 32
  (b5: C = 64, 128, 320, 512; R50: 256, 512, 1024, 2048)

PVT: every stage ends with its LayerNorm (the official norm1..norm4) and is reshaped to a map, as the official
forward_features does. The official OverlapPatchEmbed norm and the attention's spatial-reduction norm are
plain nn.LayerNorm (eps 1e-5) while the blocks' and stages' norms use eps 1e-6; transformers builds every
LayerNorm with layer_norm_eps, so those two kinds are set back to 1e-5 here to keep the official numbers.
ResNet: the outputs of layer1..layer4 (torchvision v1.5 bottlenecks).
"""

from __future__ import annotations

import torch
from torch import nn

OFFICIAL_DEFAULT_EPS = 1e-5  # nn.LayerNorm's default, where the official PVT does not pass eps


def build_backbone(config) -> tuple[nn.Module, list[int]]:
    """A freshly initialised backbone for an AVSConfig, and its four stage widths."""
    if config.backbone == "pvt_v2_b5":
        from transformers import PvtV2Config, PvtV2Model

        model = PvtV2Model(PvtV2Config(**config.backbone_kwargs()))
        for layer in model.encoder.layers:
            layer.patch_embedding.layer_norm.eps = OFFICIAL_DEFAULT_EPS
            for block in layer.blocks:
                if hasattr(block.attention, "layer_norm"):  # only with spatial reduction (sr_ratio > 1)
                    block.attention.layer_norm.eps = OFFICIAL_DEFAULT_EPS
        return model, list(model.config.hidden_sizes)
    from transformers import ResNetConfig, ResNetModel

    model = ResNetModel(ResNetConfig(**config.backbone_kwargs()))
    return model, list(model.config.hidden_sizes)


def backbone_features(backbone: nn.Module, pixel_values: torch.Tensor) -> list[torch.Tensor]:
    """[N, 3, H, W] -> the four stage maps (strides 4, 8, 16, 32)."""
    out = backbone(pixel_values, output_hidden_states=True, return_dict=True)
    hidden = list(out.hidden_states)
    return hidden[-4:]  # PVT: the 4 stages; ResNet: the stem output first, then the 4 stages


__all__ = ["backbone_features", "build_backbone"]
