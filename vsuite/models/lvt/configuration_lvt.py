"""Linear Video Transformer with Feature Fixation (LVT, arXiv 2210.08164) configuration.

Defaults are the official base model `lvit_v2_base_patch16_224_in21k_finetune1k` with the K400 recipe
(OpenNLPLab/Linear_VideoTransformer, configs/Kinetics/lxvitv2_B16_16x16_k400_21k_cgate_tempshift_spatialshift.yaml):
embed 512, depth 12, 8 heads (head dim 64), mlp ratio 4, qkv bias, overlapping patches (Conv2d kernel 16,
stride 14, padding 8 -> 17x17 tokens per 224x224 frame), 16 frames, ReLU(x) + head_dim^-0.5 feature map,
separate q/k feature-fixation gates (SHARE_GATE False), temporal shift with SHIFT_DIV 8 and NUM_SEGMENTS 8,
8-neighbour spatial shift of size 1 in every block, VVTHead with a 768-wide hidden layer, dropout 0.5
before the classifier, inputs normalised with mean = std = 0.5.

Notable fields:
  num_segments    the temporal-shift group size (official XVIT.NUM_SEGMENTS). The official code views the
                  (batch x frames) axis as groups of num_segments consecutive frames and shifts only inside
                  a group, so K400 (8 with 16 frames) shifts within two halves of each clip, with zero
                  borders at frames 0, 7, 8 and 15; SSv2 uses 16. It must divide num_frames.
  shift_div       fold = hidden_size // shift_div channels take the next frame, the next fold the previous
                  frame (official XVIT.SHIFT_DIV: 8 for Kinetics, 4 for SSv2).
  temporal_embed_size  entries of the learned temporal embedding. The official backbone is built with its
                  constructor default num_frames=8 (no config passes the clip length), so with 16 frames it
                  views the (batch x frames) axis as groups of 8 and frame t gets entry t mod 8. vsuite adds
                  entry t mod temporal_embed_size, which is that model (and one entry per frame when equal
                  to num_frames). It must divide num_frames or be at least num_frames.
  spatial_shift_size  official XVIT.SHIFT_SIZE s: the 8 neighbours at distance s (fold = C // (2((2s+1)^2-1)),
                  so s = 4 gives fold C // 160), plus, for s = 2 only, the 16 groups of the official 24-table.
  share_gate      one gate Linear(3e -> e) for q and k (official SHARE_GATE; the code's default True, the
                  K400 config False).
  classifier_dropout  official MODEL.DROPOUT_RATE, used twice as in the official model: on the tokens
                  after the final norm (the backbone's `head` is replaced by a Dropout) and inside the head.
"""

from __future__ import annotations

from dataclasses import field

from transformers.configuration_utils import PreTrainedConfig


class LvtConfig(PreTrainedConfig):
    model_type = "lvt"

    image_size: int = 224
    num_frames: int = 16
    num_channels: int = 3
    patch_size: int = 16
    patch_stride: int = 14
    patch_padding: int = 8  # official: patch_size // 2
    hidden_size: int = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6  # blocks and final norm (official partial(nn.LayerNorm, eps=1e-6))
    attention_eps: float = 1e-6  # added to the linear-attention denominator
    use_gate: bool = True  # feature fixation (official USE_CGATE)
    share_gate: bool = False
    temporal_shift: bool = True  # neighbourhood association in the spatial attention (official USE_XVIT)
    num_segments: int = 8
    shift_div: int = 8
    temporal_embed_size: int = 8  # official: the backbone's constructor default num_frames=8
    spatial_shift: bool = True  # neighbourhood association in the temporal attention (USE_SpatialShift)
    spatial_shift_size: int = 1  # official SHIFT_SIZE: 1 (K400 cgate, SSv2), 4 (K400 baselines); 2 has 24 groups
    hidden_dropout: float = 0.0  # proj_drop and MLP dropout (official drop_rate, 0 in every config)
    attention_dropout: float = 0.0  # on the gated features (official DROP_ATTN_RATE)
    drop_path_rate: float = 0.0  # stochastic depth, linear over the blocks (official DROP_PATH_RATE)
    classifier_dropout: float = 0.5
    head_hidden_size: int = 768  # official TEMPORAL_HEAD.MLP_DIM
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        problems = []
        if self.hidden_size % self.num_attention_heads:
            problems.append(f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                            f"{self.num_attention_heads}")
        if self.temporal_shift:
            if self.num_segments < 1 or self.num_frames % self.num_segments:
                problems.append(f"num_segments {self.num_segments} must divide num_frames {self.num_frames}")
            if self.shift_div < 2 or self.hidden_size // self.shift_div < 1:
                problems.append(f"shift_div {self.shift_div} must be >= 2 and at most hidden_size")
        if self.temporal_embed_size < 1 or (self.num_frames % self.temporal_embed_size
                                            and self.temporal_embed_size < self.num_frames):
            problems.append(f"temporal_embed_size {self.temporal_embed_size} must divide num_frames "
                            f"{self.num_frames} or be at least num_frames")
        if self.spatial_shift:
            if not isinstance(self.spatial_shift_size, int) or self.spatial_shift_size < 1:
                problems.append(f"spatial_shift_size must be an integer >= 1, got {self.spatial_shift_size}")
            elif self.hidden_size // spatial_fold_div(self.spatial_shift_size) < 1:
                problems.append(f"hidden_size {self.hidden_size} is too small for a spatial shift of size "
                                f"{self.spatial_shift_size} (needs >= {spatial_fold_div(self.spatial_shift_size)})")
        if self.patch_stride < 1 or self.patch_size < 1 or self.patch_padding < 0:
            problems.append("patch_size and patch_stride must be >= 1 and patch_padding >= 0")
        if len(self.image_mean) != self.num_channels or len(self.image_std) != self.num_channels:
            problems.append(f"image_mean and image_std need {self.num_channels} values")
        if problems:
            raise ValueError("invalid LvtConfig: " + "; ".join(problems))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def grid_size(self, image_size: int | None = None) -> int:
        """Tokens per side of a square frame (17 for 224 with the official patching)."""
        size = self.image_size if image_size is None else image_size
        return (size + 2 * self.patch_padding - self.patch_size) // self.patch_stride + 1


def spatial_fold_div(shift_size: int) -> int:
    """Official SpatialShift with eightneiborshift: fold = C // (2 * ((2s + 1)^2 - 1))."""
    return 2 * ((2 * shift_size + 1) ** 2 - 1)


__all__ = ["LvtConfig"]
