"""Audio-visual segmentation with bidirectional generation (Hao et al., AAAI 2024): configuration.

Defaults are the official PVT-v2 S4 setting of OpenNLPLab/AVS-bidirectional (config.py): PVT-v2-b5 encoder,
"basic" neck (DimReduce to NECK_CHANNEL 128), FUSION "av_corr", the "simple" decoder, 5 frames of 224x224,
frozen VGGish audio features (128-d), TASK "S4" (sim_loss 0), latent loss weight 1.0 (trainer.py).

Fields beyond the official config:
  backbone_config  a transformers PvtV2Config / ResNetConfig as a dict, merged over the b5 / R50 sizes
                   (`None` = those sizes); tests pass tiny widths here.
  backbone_path    pretrained backbone weights (a local folder, a Hub id, or an official .pth file such as
                   pvt_v2_b5.pth / resnet50-19c8e357.pth); read only by `AVSModel.from_backbone`.
  vggish_path      the torchvggish weights (vggish-10086976.pth or a safetensors file); read only by
                   `AVSModel.from_backbone` and `load_official_avs_checkpoint`.
  vggish_hidden_size  VGGish's two hidden Linear widths (4096 in torchvggish; tiny in tests).
  sim_loss_weight  weight of L_AVM; None resolves from `setting` (S4 0, MS3 0.5, the official trainer.py).
  num_frames, image_size  the clip length and frame size of the data (5, 224); the model takes any T >= 2 and
                   any H, W multiple of 32; image_size / 32 sets the projection's Linear(grid^2 -> 1) (7 x 7).
  weighted_bce     False reproduces the official L_struct, whose BCE is averaged before the boundary weight
                   is applied (so only the IoU term is weighted); True weights the BCE per pixel as F3Net does.
"""

from __future__ import annotations

from transformers.configuration_utils import PreTrainedConfig

BACKBONES = ("pvt_v2_b5", "resnet50")
FUSIONS = ("av_corr", "tpavi")
SETTINGS = ("s4", "ms3")

# pvt_v2_b5 of the official model/encoder/pvt.py (drop_path_rate 0.1, qkv_bias, LayerNorm eps 1e-6).
PVT_V2_B5 = dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 6, 40, 3], mlp_ratios=[4, 4, 4, 4],
                 num_attention_heads=[1, 2, 5, 8], sr_ratios=[8, 4, 2, 1], patch_sizes=[7, 3, 3, 3],
                 strides=[4, 2, 2, 2], qkv_bias=True, drop_path_rate=0.1, layer_norm_eps=1e-6,
                 linear_attention=False, hidden_act="gelu")
# torchvision resnet50 (v1.5: stride on the 3x3 conv), as model/encoder/resnet.py uses it.
RESNET_50 = dict(embedding_size=64, hidden_sizes=[256, 512, 1024, 2048], depths=[3, 4, 6, 3],
                 layer_type="bottleneck", hidden_act="relu", downsample_in_first_stage=False,
                 downsample_in_bottleneck=False)


class AVSConfig(PreTrainedConfig):
    model_type = "vsuite_avs"

    backbone: str = "pvt_v2_b5"
    backbone_config: dict | None = None
    backbone_path: str | None = None
    vggish_path: str | None = None
    neck_channels: int = 128
    fusion: str = "av_corr"
    motion: bool = True
    projection: bool = True
    audio_dim: int = 128
    vggish_channels: tuple = (64, 128, 256, 256, 512, 512)
    vggish_hidden_size: int = 4096
    vggish_frozen: bool = True
    num_frames: int = 5
    image_size: int = 224
    setting: str = "s4"
    sim_loss_weight: float | None = None
    latent_loss_weight: float = 1.0
    weighted_bce: bool = False

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.vggish_channels = tuple(int(c) for c in self.vggish_channels)
        if isinstance(self.setting, str):
            self.setting = self.setting.lower()
        if self.sim_loss_weight is None and self.setting in SETTINGS:
            self.sim_loss_weight = 0.5 if self.setting == "ms3" else 0.0
        problems = []
        for name, value, allowed in (("backbone", self.backbone, BACKBONES), ("fusion", self.fusion, FUSIONS),
                                     ("setting", self.setting, SETTINGS)):
            if value not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.backbone_config is not None and not isinstance(self.backbone_config, dict):
            problems.append("backbone_config must be a dict (a transformers backbone config's fields) or None")
        if self.neck_channels < 4 or self.neck_channels % 4:
            problems.append(f"neck_channels must be a positive multiple of 4, got {self.neck_channels}")
        if self.audio_dim != self.neck_channels:  # AVCorr / TPAVI multiply audio and visual channel by channel
            problems.append(f"audio_dim ({self.audio_dim}) must equal neck_channels ({self.neck_channels}): the "
                            "fusion pairs audio and visual channels one to one (the official audio_neck is unused)")
        if len(self.vggish_channels) != 6 or min(self.vggish_channels) < 1:
            problems.append("vggish_channels must be 6 positive conv widths (torchvggish: 64,128,256,256,512,512)")
        if self.vggish_hidden_size < 1:
            problems.append("vggish_hidden_size must be >= 1")
        if self.image_size < 32 or self.image_size % 32:
            problems.append(f"image_size must be a multiple of 32, got {self.image_size}")
        if self.num_frames < 1 or (self.motion and self.num_frames < 2):
            problems.append(f"num_frames must be >= 2 with motion (frame pairs), got {self.num_frames}")
        if problems:
            raise ValueError("invalid AVSConfig: " + "; ".join(problems))

    @property
    def grid_size(self) -> int:
        """Side of the stride-32 feature map at image_size (7 at 224): the projection's Linear(grid^2 -> 1)."""
        return self.image_size // 32

    def backbone_kwargs(self) -> dict:
        """The transformers backbone config fields: the b5 / R50 sizes, overridden by backbone_config."""
        base = PVT_V2_B5 if self.backbone == "pvt_v2_b5" else RESNET_50
        return {**base, **(self.backbone_config or {})}


__all__ = ["AVSConfig", "BACKBONES", "FUSIONS", "PVT_V2_B5", "RESNET_50", "SETTINGS"]
