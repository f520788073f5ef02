"""Audio-visual segmentation with bidirectional generation (Hao et al., AAAI 2024, arXiv 2308.08288).

Written from the official code (OpenNLPLab/AVS-bidirectional@941c988: model/AVSModel.py, config.py, loss.py,
trainer.py, model/{encoder,neck,fusion_module,decoder,blocks}/, torchvggish/):

  audio   log-mel [B, T, 1, 96, 64] -> VGGish (frozen by default) -> a [BT, 128]   (or audio_features given)
  frames  [B, T, 3, H, W] -> backbone -> 4 maps at strides 4..32 -> neck (DimReduce to 128 channels)
          -> fusion per stage (AVCorr, or TPAVI with fusion="tpavi") -> fused_i [BT, 128, H/s, W/s]
          -> implicit volumetric motion estimation per stage (motion=True; "mode one": after the fusion)
          -> decoder -> logits [B, T, 1, H, W] (full resolution)
  training (masks given), visual-to-audio generation (projection=True):
          z = last motion-refined map [BT, 128, H/32, W/32] * pooled mask
              (S4: AdaptiveAvgPool of the PREDICTED LOGITS, no sigmoid; MS3: of the ground-truth masks)
          -> mask_encoder (1x1 128->64, 3x3 64->64, 1x1 64->128; no bias, norm or activation)
          -> Linear(grid^2 -> 1) over the positions -> generated audio g [BT, 128]; L_latent(a, g)
  loss = L_struct (supervised frames) + sim_loss_weight * L_AVM (fused maps, all frames)
         + latent_loss_weight * L_latent   (losses.py has the formulas)

Where the code and the paper differ, this follows the code:
  - the motion block's correlation volume uses raw dot products (the paper's normalised correlation is a
    commented-out line) and is averaged over the target positions, then one 1x1 conv and a sigmoid;
  - AVCorr multiplies the normalised audio and visual channel by channel without summing them;
  - the generated audio is compared with the frozen VGGish feature by an L2 distance of normalised vectors
    (no reconstruction decoder), masked by the predicted logits in S4 and by the ground truth in MS3;
  - L_struct's BCE is averaged before the boundary weighting, so only the IoU term is weighted (the
    official quirk, reproduced; `weighted_bce=True` gives F3Net's weighted BCE);
  - L_AVM is weighted 0 in S4 and 0.5 in MS3; the latent loss always 1.0; no VAE / MI terms.

Differences from the official module, all documented in official.py's rename table:
  - the backbone is transformers' PvtV2Model / ResNetModel (`encoder.*` keys are renamed on load);
  - the official `audio_neck` Linear(128, 128) and the deepest decoder block's resConfUnit1 are built but never
    called; they are not built here (dropped on load), so every trainable parameter gets a gradient (DDP);
  - `corr_atten` is not built with motion=False, nor `mask_encoder` / `maksed_visual_to_audio` (the official
    spelling, kept for key compatibility) with projection=False;
  - the frozen VGGish is a submodule (`audio_backbone.*`); the official trainer keeps it outside the model;
  - frames per clip come from the input (the official code hard-codes 5) and any H, W multiple of 32 works:
    when the stride-32 map is not grid x grid (grid = image_size / 32), the projection averages it to that grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .backbone import backbone_features, build_backbone
from .configuration_avs import AVSConfig
from .decoder import BasicConv2d, BasicNeck, SimpleDecoder
from .fusion import AVCorr, TPAVIModule, visual_corr_attention
from .losses import avm_loss, latent_loss, structure_loss
from .vggish import VGGish


@dataclass
class AVSOutput(ModelOutput):
    """logits [B, T, 1, H, W] full-resolution mask logits; loss (only with masks); losses: floats of the
    unweighted parts (struct, avm, latent), empty without masks."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    losses: dict | None = None


class AVSPreTrainedModel(PreTrainedModel):
    config_class = AVSConfig
    base_model_prefix = "avs"
    main_input_name = "pixel_values"
    _no_split_modules = []

    def _init_weights(self, module):
        # The official model keeps PyTorch's default initialisation for everything it adds (the backbone is
        # pretrained); TPAVI's output BatchNorm starts at zero so the block starts as LayerNorm(v).
        from transformers import initialization as init

        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        if isinstance(module, TPAVIModule):
            init.zeros_(module.W_z[1].weight)
            init.zeros_(module.W_z[1].bias)


class AVSModel(AVSPreTrainedModel):
    def __init__(self, config: AVSConfig):
        super().__init__(config)
        c = config.neck_channels
        self.encoder, stage_channels = build_backbone(config)
        self.neck = BasicNeck(stage_channels, c)
        fusion = AVCorr if config.fusion == "av_corr" else TPAVIModule
        self.fusion_modules = nn.ModuleList(fusion(c) for _ in range(4))
        if config.motion:
            self.corr_atten = nn.ModuleList(nn.Conv2d(1, 1, 1) for _ in range(4))
        self.decoder = SimpleDecoder(c)
        if config.projection:
            self.mask_encoder = nn.Sequential(BasicConv2d(c, c // 2, 1, norm=False),
                                              BasicConv2d(c // 2, c // 2, 3, padding=1, norm=False),
                                              BasicConv2d(c // 2, c, 1, norm=False))
            self.maksed_visual_to_audio = nn.Linear(config.grid_size ** 2, 1)  # official spelling
        self.audio_backbone = VGGish(config.vggish_channels, config.vggish_hidden_size, config.audio_dim)
        self.post_init()
        self.freeze_audio_backbone()

    def freeze_audio_backbone(self) -> None:
        """requires_grad False on the VGGish when config.vggish_frozen (the official FREEZE_AUDIO_EXTRACTOR)."""
        if self.config.vggish_frozen:
            self.audio_backbone.requires_grad_(False)

    # ------------------------------------------------------------------ loading pretrained parts
    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # transformers' loader builds fresh Parameters after __init__, so the freeze is applied again.
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        model.freeze_audio_backbone()
        return loaded

    @classmethod
    def from_backbone(cls, config: AVSConfig, backbone_path: str | None = None, vggish_path: str | None = None):
        """A new model whose backbone (and VGGish) weights come from `backbone_path` / `vggish_path`
        (default: config.backbone_path / config.vggish_path; either may be None to keep the initialisation).
        See official.load_backbone_weights for the accepted files."""
        from .official import load_backbone_weights, load_vggish_weights

        model = cls(config)
        backbone_path = backbone_path if backbone_path is not None else config.backbone_path
        vggish_path = vggish_path if vggish_path is not None else config.vggish_path
        if backbone_path:
            load_backbone_weights(model.encoder, config, backbone_path)
        if vggish_path:
            load_vggish_weights(model.audio_backbone, vggish_path)
        return model

    # ------------------------------------------------------------------ forward
    def audio_embeddings(self, audio_log_mel: torch.Tensor) -> torch.Tensor:
        """[B, T, 1, 96, 64] -> VGGish features [BT, audio_dim] (no gradient when frozen)."""
        x = audio_log_mel.reshape(-1, *audio_log_mel.shape[2:]).to(self.audio_backbone.features[0].weight.dtype)
        if self.config.vggish_frozen:
            with torch.no_grad():
                return self.audio_backbone(x)
        return self.audio_backbone(x)

    def forward(self, pixel_values: torch.Tensor, audio_log_mel: torch.Tensor | None = None,
                audio_features: torch.Tensor | None = None, masks: torch.Tensor | None = None,
                mask_valid: torch.Tensor | None = None, return_dict: bool | None = None, **kwargs) -> AVSOutput:
        """pixel_values [B, T, 3, H, W] (ImageNet-normalised; H, W multiples of 32); exactly one of
        audio_log_mel [B, T, 1, 96, 64] and audio_features [B, T, audio_dim]; masks [B, T, 1, H, W] in {0, 1}
        and mask_valid [B, T] bool (frames whose mask supervises L_struct; None = all) for the loss."""
        cfg = self.config
        if pixel_values is None or pixel_values.dim() != 5:
            raise ValueError("pixel_values must be [batch, frames, 3, height, width]")
        b, t, _, h, w = pixel_values.shape
        if h % 32 or w % 32:
            raise ValueError(f"height and width must be multiples of 32, got {h}x{w}")
        if cfg.motion and t < 2:
            raise ValueError("the motion block pairs frames: clips need at least 2 frames")
        if (audio_log_mel is None) == (audio_features is None):
            raise ValueError("pass exactly one of audio_log_mel [B, T, 1, 96, 64] and audio_features [B, T, D]")
        if audio_features is not None:
            if tuple(audio_features.shape) != (b, t, cfg.audio_dim):
                raise ValueError(f"audio_features must be [{b}, {t}, {cfg.audio_dim}], got "
                                 f"{tuple(audio_features.shape)}")
            audio = audio_features.reshape(b * t, cfg.audio_dim)
        else:
            if tuple(audio_log_mel.shape[:2]) != (b, t):
                raise ValueError(f"audio_log_mel must be [{b}, {t}, 1, 96, 64], got {tuple(audio_log_mel.shape)}")
            audio = self.audio_embeddings(audio_log_mel)
        frames = pixel_values.reshape(b * t, *pixel_values.shape[2:])

        features = self.neck(backbone_features(self.encoder, frames))  # 4 x [BT, C, H/s, W/s]
        audio = audio.to(features[0].dtype)
        fused, fused_audio = [], []
        for module, feature in zip(self.fusion_modules, features):
            v, a = module(feature, audio, t)
            fused.append(v)
            fused_audio.append(a)
        refined = visual_corr_attention(fused, self.corr_atten, t) if cfg.motion else fused
        logits = self.decoder(refined)  # [BT, 1, H, W]

        loss, losses = None, {}
        if masks is not None:
            loss, losses = self._loss(logits, masks, mask_valid, b, t, fused, fused_audio, refined[-1], audio)
        logits = logits.reshape(b, t, 1, h, w)
        return AVSOutput(loss=loss, logits=logits, losses=losses)

    # ------------------------------------------------------------------ training losses
    def generate_audio(self, visual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Visual-to-audio projection: stride-32 map [N, C, h, w] and a mask [N, 1, H, W] (logits or {0, 1})
        -> generated audio feature [N, C]."""
        h, w = visual.shape[-2:]
        masked = visual * F.adaptive_avg_pool2d(mask.to(visual.dtype), (h, w))
        decoded = self.mask_encoder(masked)  # [N, C, h, w]
        grid = self.config.grid_size
        if (h, w) != (grid, grid):  # another resolution than image_size: average to the Linear's grid
            decoded = F.adaptive_avg_pool2d(decoded, (grid, grid))
        return self.maksed_visual_to_audio(decoded.flatten(2)).squeeze(-1)  # [N, C, grid^2] -> [N, C]

    def _loss(self, logits, masks, mask_valid, b, t, fused, fused_audio, deepest, audio):
        cfg = self.config
        h, w = logits.shape[-2:]
        if tuple(masks.shape) != (b, t, 1, h, w):
            raise ValueError(f"masks must be [{b}, {t}, 1, {h}, {w}], got {tuple(masks.shape)}")
        gt = masks.reshape(b * t, 1, h, w).to(logits.dtype)
        if mask_valid is None:
            valid = torch.ones(b * t, dtype=torch.bool, device=logits.device)
        else:
            if tuple(mask_valid.shape) != (b, t):
                raise ValueError(f"mask_valid must be [{b}, {t}], got {tuple(mask_valid.shape)}")
            valid = mask_valid.reshape(b * t).to(device=logits.device, dtype=torch.bool)
        if not bool(valid.any()):
            raise ValueError("mask_valid marks no frame as supervised")
        struct = structure_loss(logits[valid], gt[valid], weighted_bce=cfg.weighted_bce)
        avm = avm_loss(logits, fused_audio, fused)
        total = struct + cfg.sim_loss_weight * avm
        latent = torch.zeros((), device=logits.device)
        if cfg.projection:
            if cfg.setting == "s4":  # pooled predicted logits, all frames
                latent = latent_loss(audio, self.generate_audio(deepest, logits))
            else:  # MS3: pooled ground truth, the supervised frames
                latent = latent_loss(audio[valid], self.generate_audio(deepest[valid], gt[valid]))
            total = total + cfg.latent_loss_weight * latent
        losses = {"struct": float(struct.detach()), "avm": float(avm.detach()), "latent": float(latent.detach())}
        return total, losses


__all__ = ["AVSModel", "AVSOutput", "AVSPreTrainedModel"]
