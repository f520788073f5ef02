"""Linear Video Transformer with Feature Fixation (LVT): backbone and video classifier.

Written from the official code's definitions (OpenNLPLab/Linear_VideoTransformer, slowfast/models/transformers/
lvit_v2.py, linear_block_v2.py, slowfast/models/temporal_shift.py, head_helper.py, video_model_builder.py):

  frames [B, T, 3, H, W] -> per frame: Conv2d(3 -> D, k 16, s 14, p 8) + LayerNorm -> [B*T, h*w, D]
  + temporal embedding (1, E, 1, D), zero-initialised, frame t adding entry t mod E (official: E = 8, the
    backbone's constructor default, also for 16-frame clips); no spatial position embedding: the MLP's 3x3
    depthwise conv supplies position
  12 x block (divided time-space):
     temporal: x = x + DropPath(Attn_t(LN_t(x)))   over the T frames of each grid location;
               k and v get the 8-neighbour SPATIAL shift first
     spatial:  x = x + DropPath(Attn_s(LN_1(x)))   over the h*w tokens of each frame;
               k and v get the TEMPORAL shift first
     mlp:      x = x + DropPath(fc2(drop(GELU(DWConv3x3(fc1(LN_2(x)))))))   (dropout after GELU and fc2)
  final LayerNorm -> Dropout(classifier_dropout) on the tokens -> mean over the tokens of each frame
  -> [B, T, D] -> VVTHead: mean over T -> LayerNorm -> Linear(D, 768) -> GELU -> Dropout -> Linear(768, classes)

Attention (linear_type "relu", non-causal, per head of width e):
  phi(x) = ReLU(x) + e^-0.5 on q and k;
  feature fixation: z = concat[phi(q), phi(k), v] (3e), r_q = sigmoid(W_q z + b_q), r_k = sigmoid(W_k z + b_k)
    (one Linear for both when share_gate), phi(q) <- r_q * phi(q), phi(k) <- r_k * phi(k), then attention
    dropout on both (v is not reweighted; without gates there is no attention dropout);
  out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i) . sum_j phi(k_j) + 1e-6) via vsuite_kernels'
    linear_attn_noncausal with feature_map="identity" (the features are already mapped and gated);
  then the output projection and proj dropout.

Neighbourhood association (shifts act on k and v after the qkv projection, before the feature map and gate;
channel c of the D = heads * e channels is head c // e, as in the official head-major layout):
  temporal_shift: frames are grouped num_segments at a time; fold = D // shift_div; channels [0, fold) take the
    NEXT frame's value, [fold, 2 fold) the PREVIOUS frame's, the rest stay; zeros at the group borders.
  spatial_shift (size s): fold = D // (2((2s+1)^2 - 1)) (D // 16 for s = 1); out[i, j] = x[i + dy, j + dx]
    for the 8 groups (dy, dx) = (+s, 0), (-s, 0), (0, +s), (0, -s), (-s, -s), (+s, +s), (-s, +s), (+s, -s);
    the channels after them unshifted.
    Groups 0-3 are zero where the source falls off the grid; groups 4-7 (the diagonals) keep the UNSHIFTED
    value there, because the official code first copies every channel from group 4 on and then overwrites
    only the in-bounds part of each diagonal group. Size 2 adds the official 24-group table's 16 groups.

Parameter names follow the official ones (`base_model.` -> `lvt.`, `consensus.mlp_head.*` for the head);
official.py reads an official SlowFast checkpoint.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling, ImageClassifierOutput

from vsuite_kernels import linear_attn_noncausal

from ..layers import DropPath
from .configuration_lvt import LvtConfig, spatial_fold_div

# (dy, dx, keep_border) per channel group: out[i, j] = x[i + dy, j + dx]; off-grid -> 0, or x[i, j] if keep.
# The official SpatialShift writes the 8 neighbours at distance s for every SHIFT_SIZE s, and 16 more groups
# only when s == 2 (its hand-written 24-neighbour table).
_SIZE_TWO_EXTRA = [(-2, -1, True), (-2, 1, True), (-1, -2, True), (1, -2, True),
                   (2, -1, True), (2, 1, True), (-1, 2, True), (1, 2, True),
                   (1, 0, True), (-1, 0, True), (0, 1, True), (0, -1, True),
                   (-1, -1, True), (1, 1, True), (-1, 1, True), (1, -1, True)]


def spatial_shift_table(s: int) -> list[tuple[int, int, bool]]:
    eight = [(s, 0, False), (-s, 0, False), (0, s, False), (0, -s, False),
             (-s, -s, True), (s, s, True), (-s, s, True), (s, -s, True)]
    return eight + (_SIZE_TWO_EXTRA if s == 2 else [])


# ----------------------------------------------------------------------------- neighbourhood association
def temporal_shift(x: torch.Tensor, num_segments: int, shift_div: int) -> torch.Tensor:
    """TSM-style shift along frames. x [G * num_segments, ..., C] (consecutive rows are consecutive frames)."""
    rows, channels = x.shape[0], x.shape[-1]
    if rows % num_segments:
        raise ValueError(f"{rows} rows are not whole groups of num_segments={num_segments}")
    fold = channels // shift_div
    g = x.reshape(rows // num_segments, num_segments, *x.shape[1:])
    nxt, prv, rest = g[..., :fold], g[..., fold:2 * fold], g[..., 2 * fold:]
    nxt = torch.cat([nxt[:, 1:], torch.zeros_like(nxt[:, :1])], dim=1)  # frame t takes frame t + 1
    prv = torch.cat([torch.zeros_like(prv[:, :1]), prv[:, :-1]], dim=1)  # frame t takes frame t - 1
    return torch.cat([nxt, prv, rest], dim=-1).reshape(x.shape)


def spatial_shift(x: torch.Tensor, height: int, width: int, shift_size: int = 1) -> torch.Tensor:
    """Official 8-neighbour (24 for size 2) shift over the token grid. x [B * height * width, ..., C],
    rows in (b, i, j) row-major order."""
    rows, channels = x.shape[0], x.shape[-1]
    if rows % (height * width):
        raise ValueError(f"{rows} rows are not whole grids of {height}x{width}")
    table = spatial_shift_table(shift_size)
    fold = channels // spatial_fold_div(shift_size)
    g = x.reshape(rows // (height * width), height, width, *x.shape[1:])
    extra = (1,) * (g.dim() - 3)
    ii = torch.arange(height, device=x.device)
    jj = torch.arange(width, device=x.device)
    parts = []
    for n, (dy, dx, keep) in enumerate(table):
        part = g[..., n * fold:(n + 1) * fold]
        moved = torch.roll(part, shifts=(-dy, -dx), dims=(1, 2))  # moved[i, j] = part[i + dy, j + dx] (mod)
        valid = (((ii + dy) >= 0) & ((ii + dy) < height))[:, None] & (((jj + dx) >= 0) & ((jj + dx) < width))[None]
        valid = valid.view(1, height, width, *extra)
        parts.append(torch.where(valid, moved, part if keep else torch.zeros_like(part)))
    parts.append(g[..., len(table) * fold:])
    return torch.cat(parts, dim=-1).reshape(x.shape)


# ----------------------------------------------------------------------------- layers
class LvtPatchEmbed(nn.Module):
    """Overlapping patches: Conv2d(C -> D, kernel, stride, padding) per frame, then LayerNorm (eps 1e-5)."""

    def __init__(self, config: LvtConfig):
        super().__init__()
        self.proj = nn.Conv2d(config.num_channels, config.hidden_size, kernel_size=config.patch_size,
                              stride=config.patch_stride, padding=config.patch_padding)
        self.norm = nn.LayerNorm(config.hidden_size)

    def forward(self, frames):  # [N, C, H, W] -> [N, h*w, D], h, w
        x = self.proj(frames)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class LvtAttention(nn.Module):
    """Non-causal ReLU linear attention with feature-fixation gates; `shift` is applied to k and v."""

    def __init__(self, config: LvtConfig):
        super().__init__()
        d, self.heads = config.hidden_size, config.num_attention_heads
        e = config.head_dim
        self.offset = e**-0.5
        self.eps = config.attention_eps
        self.qkv = nn.Linear(d, 3 * d, bias=config.qkv_bias)
        self.attn_drop = nn.Dropout(config.attention_dropout)
        self.proj = nn.Linear(d, d)
        self.proj_drop = nn.Dropout(config.hidden_dropout)
        self.use_gate, self.share_gate = config.use_gate, config.share_gate
        if self.use_gate:
            if self.share_gate:
                self.pgate = nn.Linear(3 * e, e)
            else:
                self.q_gate = nn.Linear(3 * e, e)
                self.k_gate = nn.Linear(3 * e, e)

    def feature_fixation(self, fq, fk, v):
        """Gate the mapped features [B, N, H, e] with ratios computed from concat[phi(q), phi(k), v]."""
        z = torch.cat([fq, fk, v], dim=-1)
        if self.share_gate:
            r_q = r_k = torch.sigmoid(self.pgate(z))
        else:
            r_q, r_k = torch.sigmoid(self.q_gate(z)), torch.sigmoid(self.k_gate(z))
        return self.attn_drop(r_q * fq), self.attn_drop(r_k * fk)

    def forward(self, x, shift=None):
        b, n, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if shift is not None:
            k, v = shift(k), shift(v)
        q, k, v = (t.reshape(b, n, self.heads, -1) for t in (q, k, v))
        fq, fk = F.relu(q) + self.offset, F.relu(k) + self.offset
        if self.use_gate:
            fq, fk = self.feature_fixation(fq, fk, v)
        out = linear_attn_noncausal(fq.transpose(1, 2), fk.transpose(1, 2), v.transpose(1, 2),
                                    feature_map="identity", eps=self.eps)  # [B, H, N, e]
        out = out.transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(out))


class LvtDWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x, h, w):  # [N, h*w, C]
        n, _, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(n, c, h, w))
        return x.flatten(2).transpose(1, 2)


class LvtMlp(nn.Module):
    def __init__(self, config: LvtConfig):
        super().__init__()
        hidden = int(config.hidden_size * config.mlp_ratio)
        self.fc1 = nn.Linear(config.hidden_size, hidden)
        self.dwconv = LvtDWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, config.hidden_size)
        self.drop = nn.Dropout(config.hidden_dropout)

    def forward(self, x, h, w):
        x = self.drop(self.act(self.dwconv(self.fc1(x), h, w)))
        return self.drop(self.fc2(x))


class LvtBlock(nn.Module):
    """Temporal attention, then spatial attention, then the DW-conv MLP, each pre-norm with a residual."""

    def __init__(self, config: LvtConfig, drop_path: float = 0.0):
        super().__init__()
        d, eps = config.hidden_size, config.layer_norm_eps
        self.config = config
        self.temporal_norm1 = nn.LayerNorm(d, eps=eps)
        self.temporal_attn = LvtAttention(config)
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attn = LvtAttention(config)
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = LvtMlp(config)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x, b: int, t: int, h: int, w: int):
        """x [B*T, h*w, D] (frame-major) -> same."""
        cfg, n, d = self.config, h * w, x.shape[-1]
        # temporal: rows (b, i, j), sequence over t
        xt = x.reshape(b, t, n, d).transpose(1, 2).reshape(b * n, t, d)
        s_shift = (lambda z: spatial_shift(z, h, w, cfg.spatial_shift_size)) if cfg.spatial_shift else None
        xt = xt + self.drop_path(self.temporal_attn(self.temporal_norm1(xt), shift=s_shift))
        # spatial: rows (b, t), sequence over the grid
        xs = xt.reshape(b, n, t, d).transpose(1, 2).reshape(b * t, n, d)
        t_shift = (lambda z: temporal_shift(z, cfg.num_segments, cfg.shift_div)) if cfg.temporal_shift else None
        xs = xs + self.drop_path(self.attn(self.norm1(xs), shift=t_shift))
        return xs + self.drop_path(self.mlp(self.norm2(xs), h, w))


# ----------------------------------------------------------------------------- models
class LvtPreTrainedModel(PreTrainedModel):
    config_class = LvtConfig
    base_model_prefix = "lvt"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LvtBlock"]

    def _init_weights(self, module):
        # Official: Linear trunc_normal(std .02) with zero bias, LayerNorm 1/0, convs N(0, sqrt(2 / fan_out))
        # with fan_out = k*k*out_channels / groups, zero temporal embedding.
        if isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, LvtModel):
            nn.init.zeros_(module.temp_embed)


class LvtModel(LvtPreTrainedModel):
    """The LVT backbone: pixel_values [B, T, C, H, W] -> tokens after the final LayerNorm."""

    def __init__(self, config: LvtConfig):
        super().__init__(config)
        self.patch_embed = LvtPatchEmbed(config)
        self.temp_embed = nn.Parameter(torch.zeros(1, config.temporal_embed_size, 1, config.hidden_size))
        depth = config.num_hidden_layers  # stochastic depth linear from 0 to drop_path_rate (meta-device safe)
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(LvtBlock(config, r) for r in rates)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(self, pixel_values=None, output_hidden_states=None, return_dict=None, **kwargs):
        """last_hidden_state [B, T*h*w, D] (frame-major), pooler_output [B, T, D] (token mean per frame)."""
        x = pixel_values
        cfg = self.config
        if x is None or x.dim() != 5:
            raise ValueError("pixel_values must be [batch, frames, channels, height, width]")
        b, t, c = x.shape[:3]
        if t != cfg.num_frames or c != cfg.num_channels:
            raise ValueError(f"this LVT takes {cfg.num_frames} frames of {cfg.num_channels} channels, got "
                             f"{t} frames of {c}")
        tokens, h, w = self.patch_embed(x.reshape(b * t, *x.shape[2:]))
        n = h * w
        entry = torch.arange(t, device=tokens.device) % self.temp_embed.shape[1]  # frame t -> entry t mod E
        tokens = (tokens.reshape(b, t, n, -1) + self.temp_embed[:, entry]).reshape(b * t, n, -1)
        hidden = [] if output_hidden_states else None
        for block in self.blocks:
            if hidden is not None:
                hidden.append(tokens.reshape(b, t * n, -1))
            if self.gradient_checkpointing and self.training:
                tokens = self._gradient_checkpointing_func(block.__call__, tokens, b, t, h, w)
            else:
                tokens = block(tokens, b, t, h, w)
        tokens = self.norm(tokens).reshape(b, t * n, -1)
        if hidden is not None:
            hidden.append(tokens)
        pooled = tokens.reshape(b, t, n, -1).mean(dim=2)
        return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=pooled,
                                          hidden_states=tuple(hidden) if hidden is not None else None)


class LvtHead(nn.Module):
    """Official VVTHead: mean over frames -> LayerNorm -> Linear -> GELU -> Dropout -> Linear."""

    def __init__(self, config: LvtConfig):
        super().__init__()
        d, m = config.hidden_size, config.head_hidden_size
        self.mlp_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, m), nn.GELU(),
                                      nn.Dropout(config.classifier_dropout), nn.Linear(m, config.num_labels))

    def forward(self, frames):  # [B, T, D] -> [B, classes]
        return self.mlp_head(frames.mean(dim=1))


class LvtForVideoClassification(LvtPreTrainedModel):
    """LVT + VVTHead. `labels`: class ids [B] (cross-entropy) or target distributions [B, classes]
    (soft cross-entropy, for mixup / label smoothing)."""

    def __init__(self, config: LvtConfig):
        super().__init__(config)
        self.lvt = LvtModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)  # official: the backbone `head` became a Dropout
        self.consensus = LvtHead(config)
        self.post_init()

    def forward(self, pixel_values=None, labels=None, output_hidden_states=None, return_dict=None, **kwargs):
        out = self.lvt(pixel_values, output_hidden_states=output_hidden_states)
        b, t = pixel_values.shape[:2]
        tokens = self.dropout(out.last_hidden_state).reshape(b, t, -1, out.last_hidden_state.shape[-1])
        logits = self.consensus(tokens.mean(dim=2))
        loss = None if labels is None else classification_loss(logits, labels)
        return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in fp32 against class ids [B] or target distributions [B, C]."""
    logits = logits.float()
    if labels.dtype.is_floating_point:
        return -(labels.to(logits.device).float() * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
    return F.cross_entropy(logits, labels.to(logits.device))


__all__ = ["LvtForVideoClassification", "LvtModel", "LvtPreTrainedModel", "spatial_shift", "spatial_shift_table",
           "temporal_shift"]
