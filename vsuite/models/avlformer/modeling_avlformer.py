"""AVLFormer: fine-grained audible video description (FAVD, arXiv 2303.15616), as the official code
(OpenNLPLab/FAVDBench AVLFormer: video_captioning_e2e_vid_swin_bert.py, layers/bert/modeling_bert.py
BertForImageCaptioning, modeling_utils.py generation) computes it.

  pixel_values [B, S, 3, H, W] -> Video Swin -> [B, T'H'W', C] -> fc -> [B, Nv, 512]
  audio_values [B, N] (mono waveform at config.sample_rate) -> log-mel -> PaSST -> linear -> [B, Na, 512]
      -> RMS norm (no parameters: x / (||x|| d^-1/2 + 1e-6))
  visual = cat(video, audio) [B, V, 512] -> img_embedding -> [B, V, hidden]
  decoder input = [word + position + token-type embeddings of T text positions | visual], BERT post-LN
  layers with an additive (1 - mask) * -10000 mask (see masks.py), MLM-style head on the text positions.

Losses (training): LM = cross-entropy of every text position against output_token_ids (the next token;
ignore pad), MLM = cross-entropy at masked_pos against masked_ids, loss = lm_lambda * LM + (1 - lm_lambda) *
MLM + loss_sparse_w * mean|learned off-diagonal mask|.

Generation (official): start from [CLS]; at every step the input is the tokens so far plus a [MASK] slot, and
the next token is read from the [MASK] position's logits (greedy or beam search with 2 candidates per beam,
hypotheses scored sum(logp) / len^length_penalty with len counting CLS). Under the generation mask the
visual tokens attend only to visual tokens and the text attends causally, so earlier tokens' states never
change: like the official code (history_state), decoding computes them once and then runs only the newest
word and the [MASK] slot per step (AvlDecodeCache; generate_ids(use_cache=False) re-runs everything).

State-dict names follow the official model (swin.backbone.*, passt.net.*, passt.linear, fc, learn_vid_att,
trans_encoder.bert.{embeddings,encoder,img_embedding}.*, trans_encoder.cls.predictions.*); the official
checkpoint's unused parts (BERT pooler, image-feature head, PaSST classifier heads) are dropped by the
converter (official.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from . import masks as M
from .configuration_avlformer import AvlformerConfig
from .passt import AudioEncoder, Passt
from .video_swin import VideoSwin3D, WindowAttention3D

_NEG = -10000.0  # BERT's additive mask value


# ---------------------------------------------------------------------------------------------------------
# BERT-style multimodal decoder (official BertImgModel + BertCaptioningHeads, same parameter names)
# ---------------------------------------------------------------------------------------------------------
def _act(name: str):
    if name == "gelu":
        return nn.GELU()  # official: x * 0.5 * (1 + erf(x / sqrt 2))
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unsupported hidden_act {name!r}")


class BertEmbeddings(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None, position_ids=None):
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word_embeddings(input_ids) + self.position_embeddings(position_ids) \
            + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.num_heads = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

    def forward(self, x, additive_mask, cache: LayerKV | None = None):
        """x [B, N, D]; additive_mask [B, 1, N, N] (broadcastable). With a cache (generation only) the keys
        and values of earlier tokens come from it (see LayerKV.attend)."""
        b, n, d = x.shape

        def heads(t):
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        if cache is not None:
            out = cache.attend(q, k, v, additive_mask, self.dropout)
        else:
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + additive_mask
            out = self.dropout(scores.softmax(dim=-1)) @ v
        return out.transpose(1, 2).reshape(b, n, d)


class BertSelfOutput(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, additive_mask, cache: LayerKV | None = None):
        return self.output(self.self(x, additive_mask, cache), x)


class BertIntermediate(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = _act(c.hidden_act)

    def forward(self, x):
        return self.act(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertLayer(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, additive_mask, cache: LayerKV | None = None):
        a = self.attention(x, additive_mask, cache)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(self, x, additive_mask, cache: AvlDecodeCache | None = None):
        for i, layer in enumerate(self.layer):
            if cache is not None:  # generation: no checkpointing (no grad)
                x = layer(x, additive_mask, cache.layers[i])
            elif self.gradient_checkpointing and self.training:
                from torch.utils.checkpoint import checkpoint

                x = checkpoint(layer, x, additive_mask, use_reentrant=False)
            else:
                x = layer(x, additive_mask)
        return x


class BertImgModel(nn.Module):
    """Text embeddings + img_embedding(visual) concatenated after the text, then the encoder."""

    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.img_embedding = nn.Linear(c.img_feature_dim, c.hidden_size)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids, visual, attention_mask, token_type_ids=None, position_ids=None):
        # attention_mask [B, N, N] with 1 = attend (soft values allowed) -> additive [B, 1, N, N]
        additive = (1.0 - attention_mask.to(visual.dtype)).unsqueeze(1) * _NEG
        text = self.embeddings(input_ids, token_type_ids, position_ids)
        x = torch.cat((text, self.dropout(self.img_embedding(visual))), dim=1)
        return self.encoder(x, additive)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.act = _act(c.hidden_act)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(self.act(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.decoder = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, x):
        return self.decoder(self.transform(x)) + self.bias


class BertCaptioningHeads(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(c)

    def forward(self, x):
        return self.predictions(x)


class CaptionDecoder(nn.Module):
    """Official BertForImageCaptioning without its unused pooler and image-feature head."""

    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.bert = BertImgModel(c)
        self.cls = BertCaptioningHeads(c)

    def forward(self, input_ids, visual, attention_mask, token_type_ids=None, position_ids=None):
        hidden = self.bert(input_ids, visual, attention_mask, token_type_ids, position_ids)
        return self.cls(hidden[:, : input_ids.shape[1]])  # [B, T, vocab]


# ---------------------------------------------------------------------------------------------------------
# Cached decoding (generation only)
# ---------------------------------------------------------------------------------------------------------
class LayerKV:
    """One decoder layer's cached keys/values. The official caches each layer's input hidden states
    (history_state) and re-projects them every step; caching the projections saves that work too.

    visual_k, visual_v [B, H, V, hd]: the audio-visual tokens', one copy per clip (the beams of a clip share
        them: visual tokens attend only to visual tokens, so their states do not depend on the text).
    text_k, text_v [R, H, P, hd]: the P text tokens already decoded (CLS and the chosen words, never the
        [MASK] slot), R = B * beams rows; the text attends causally, so they do not change later.
    """

    def __init__(self):
        self.visual_k = self.visual_v = self.text_k = self.text_v = None

    def attend(self, q, k, v, additive_mask, dropout):
        """q, k, v [R, H, n, hd] of the tokens being run -> attention output [R, H, n, hd].

        First call (prefill: the n = V visual tokens, R = B): self-attention with additive_mask (the learned
        [V, V] visual block, or None); their keys/values are kept. Later calls (a decoding step: the words not
        yet cached, then the [MASK] slot): each attends to the visual tokens, the cached text and, causally
        (additive_mask [n, n]), the tokens of this step; all but the last (the [MASK] slot) are then cached."""
        scale = math.sqrt(q.shape[-1])
        if self.visual_k is None:
            scores = q @ k.transpose(-1, -2) / scale
            if additive_mask is not None:
                scores = scores + additive_mask
            self.visual_k, self.visual_v = k, v
            return dropout(scores.softmax(dim=-1)) @ v
        r, h, n, hd = q.shape
        b, nv = self.visual_k.shape[0], self.visual_k.shape[2]
        # [B, beams, H, n, hd] @ [B, 1, H, hd, V]: the clip's visual keys broadcast over its beams, not copied
        qb = q.view(b, r // b, h, n, hd)
        parts = [(qb @ self.visual_k[:, None].transpose(-1, -2)).view(r, h, n, nv) / scale]
        if self.text_k is not None:
            parts.append(q @ self.text_k.transpose(-1, -2) / scale)
        parts.append(q @ k.transpose(-1, -2) / scale + additive_mask)
        probs = dropout(torch.cat(parts, dim=-1).softmax(dim=-1))  # one softmax over all keys, as uncached
        out = (probs[..., :nv].reshape(b, r // b, h, n, nv) @ self.visual_v[:, None]).view(r, h, n, hd)
        start = nv
        if self.text_k is not None:
            start += self.text_k.shape[2]
            out = out + probs[..., nv:start] @ self.text_v
        out = out + probs[..., start:] @ v
        keep_k, keep_v = k[:, :, :-1], v[:, :, :-1]
        self.text_k = keep_k if self.text_k is None else torch.cat((self.text_k, keep_k), dim=2)
        self.text_v = keep_v if self.text_v is None else torch.cat((self.text_v, keep_v), dim=2)
        return out


class AvlDecodeCache:
    """Every decoder layer's LayerKV, and `length`: the number of text tokens (P) they hold."""

    def __init__(self, num_layers: int, beams: int):
        self.beams = beams
        self.layers = [LayerKV() for _ in range(num_layers)]
        self.length = 0

    def reorder(self, rows: torch.Tensor) -> None:
        """Beam search re-selected its rows: row j now continues row rows[j] [R] (a row of the same clip)."""
        clip = torch.arange(rows.shape[0], device=rows.device) // self.beams
        if not torch.equal(rows // self.beams, clip):
            raise ValueError("beam search rows must stay within their clip (the clip's visual keys are shared)")
        for layer in self.layers:
            if layer.text_k is not None:
                layer.text_k, layer.text_v = layer.text_k[rows], layer.text_v[rows]


class SwinWrapper(nn.Module):
    """Official myVideoSwin: holds the backbone under `backbone` (checkpoint keys swin.backbone.*)."""

    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.backbone = VideoSwin3D(c.swin_patch_size, 3, c.swin_embed_dim, c.swin_depths, c.swin_num_heads,
                                    c.swin_window_size, c.swin_mlp_ratio, c.swin_patch_norm, c.swin_drop_path_rate)

    def forward(self, x):
        return self.backbone(x)


def rms_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Official SimpleRMSNorm: x / (||x||_2 * d^-1/2 + eps), no parameters."""
    rms = x.norm(2, dim=-1, keepdim=True) * x.shape[-1] ** -0.5
    return x / (rms + eps)


@dataclass
class AvlformerOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    sparse_loss: torch.Tensor | None = None


class AvlformerPreTrainedModel(PreTrainedModel):
    config_class = AvlformerConfig
    base_model_prefix = "avlformer"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["BertLayer", "SwinBlock3D", "PasstBlock"]

    def _init_weights(self, module):
        std = self.config.initializer_range
        if module is getattr(self, "learn_vid_att", None):
            nn.init.normal_(module.weight, 0.0, 1.0)  # official: nn.Embedding's default init
        elif module is getattr(self, "fc", None) or module is getattr(getattr(self, "passt", None), "linear", None):
            module.reset_parameters()  # official: plain nn.Linear projections outside BERT keep torch's default init
        elif isinstance(module, nn.Linear):
            nn.init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, 0.0, std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, WindowAttention3D):
            nn.init.trunc_normal_(module.relative_position_bias_table, std=std)
        elif isinstance(module, Passt):
            for p in (module.cls_token, module.dist_token, module.new_pos_embed, module.freq_new_pos_embed,
                      module.time_new_pos_embed):
                nn.init.trunc_normal_(p, std=std)
        elif isinstance(module, BertLMPredictionHead):
            nn.init.zeros_(module.bias)

    def _set_gradient_checkpointing(self, enable: bool = True, gradient_checkpointing_func=None, **kwargs):
        # The BERT layers (the long audio-visual + text sequence) are recomputed in the backward pass.
        for m in self.modules():
            if isinstance(m, BertEncoder):
                m.gradient_checkpointing = enable


class AvlformerForDescription(AvlformerPreTrainedModel):
    """AVLFormer with its captioning head: forward() trains (loss), describe_ids() generates."""

    def __init__(self, config: AvlformerConfig):
        super().__init__(config)
        self.swin = SwinWrapper(config)
        self.fc = nn.Linear(config.swin_num_features, config.img_feature_dim)
        self.passt = AudioEncoder(config)
        if config.learn_mask_enabled:
            v = config.num_visual_tokens
            self.learn_vid_att = nn.Embedding(v * v, 1)
        self.trans_encoder = CaptionDecoder(config)
        self.post_init()

    # -- encoders ------------------------------------------------------------------------------
    def encode(self, pixel_values: torch.Tensor, audio_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [B, S, 3, H, W] (normalised), audio_values [B, N] -> visual tokens [B, V, img_dim]."""
        b = pixel_values.shape[0]
        video = self.swin(pixel_values.permute(0, 2, 1, 3, 4))  # [B, C, T', H', W']
        video = self.fc(video.permute(0, 2, 3, 4, 1).reshape(b, -1, video.shape[1]))  # grid features, t-h-w order
        audio = rms_normalize(self.passt(audio_values))
        visual = torch.cat((video, audio), dim=1)
        if visual.shape[1] != self.config.num_visual_tokens:
            raise ValueError(f"got {visual.shape[1]} audio-visual tokens, the model is built for "
                             f"{self.config.num_visual_tokens} (num_frames {self.config.num_frames}, image_size "
                             f"{self.config.image_size}, audio_seconds {self.config.audio_seconds})")
        return visual

    def full_attention_mask(self, mask: torch.Tensor):
        """(float mask with the learned visual block, off-diagonal part or None)."""
        if not self.config.learn_mask_enabled:
            return mask.float(), None
        learned, off = M.learned_visual_mask(self.learn_vid_att.weight, self.config.num_visual_tokens,
                                             self.config.sparse_mask_soft2hard)
        return M.apply_learned_mask(mask, learned), off

    # -- training ------------------------------------------------------------------------------
    def forward(self, input_ids=None, pixel_values=None, audio_values=None, attention_mask=None, text_lengths=None,
                token_type_ids=None, masked_pos=None, masked_ids=None, output_token_ids=None, visual_features=None,
                return_dict=None, **kwargs) -> AvlformerOutput:
        """input_ids [B, T]; pixel_values [B, S, 3, H, W]; audio_values [B, N] (or visual_features [B, V, D]);
        attention_mask [B, T+V, T+V] (official, 1 = attend) or text_lengths [B] (CLS..SEP) or neither
        (lengths = non-pad tokens). With masked_pos, masked_ids and output_token_ids the loss is computed."""
        c = self.config
        visual = visual_features if visual_features is not None else self.encode(pixel_values, audio_values)
        t = input_ids.shape[1]
        if attention_mask is None:
            if text_lengths is None:
                text_lengths = (input_ids != c.pad_token_id).sum(1)
            attention_mask = M.seq2seq_attention_mask(text_lengths.to(input_ids.device), t, visual.shape[1])
        mask, off = self.full_attention_mask(attention_mask)
        logits = self.trans_encoder(input_ids, visual, mask, token_type_ids)
        out = AvlformerOutput(logits=logits)
        if output_token_ids is not None and masked_pos is not None and masked_ids is not None:
            lm = F.cross_entropy(logits.float().transpose(1, 2), output_token_ids, ignore_index=c.pad_token_id)
            picked = logits[masked_pos == 1].float()
            targets = masked_ids[masked_ids != -1]
            mlm = F.cross_entropy(picked, targets) if targets.numel() else logits.sum() * 0.0
            loss = c.lm_lambda * lm + (1.0 - c.lm_lambda) * mlm
            out.lm_loss, out.mlm_loss = lm, mlm
            if off is not None:
                out.sparse_loss = M.sparsity_loss(off)
                loss = loss + c.loss_sparse_w * out.sparse_loss
            out.loss = loss
        return out

    # -- generation ----------------------------------------------------------------------------
    def _step_logits(self, ids: torch.Tensor, context) -> torch.Tensor:
        """Logits at the [MASK] slot appended to ids [R, L]: [R, vocab]. context: the audio-visual tokens
        [R, V, D] (the whole decoder is re-run over them and the text) or an AvlDecodeCache (only the tokens
        not yet cached and the [MASK] slot are run)."""
        if isinstance(context, AvlDecodeCache):
            return self._cached_step_logits(ids, context)
        visual = context
        c = self.config
        b, length = ids.shape
        inp = torch.cat((ids, torch.full((b, 1), c.mask_token_id, dtype=ids.dtype, device=ids.device)), dim=1)
        base = M.generation_attention_mask(b, length + 1, visual.shape[1], device=ids.device)
        mask, _ = self.full_attention_mask(base)
        return self.trans_encoder(inp, visual, mask)[:, -1].float()

    def _start_cache(self, visual: torch.Tensor, beams: int) -> AvlDecodeCache:
        """Runs the audio-visual tokens [B, V, D] through every layer once and caches their keys/values."""
        bert = self.trans_encoder.bert
        x = bert.dropout(bert.img_embedding(visual))  # [B, V, hidden]
        additive = None  # without the learned mask the visual block is all ones
        if self.config.learn_mask_enabled:
            mask, _ = self.full_attention_mask(torch.ones(1, x.shape[1], x.shape[1], device=x.device))
            additive = (1.0 - mask[0].to(visual.dtype)) * _NEG  # [V, V], as the visual block of the full mask
        cache = AvlDecodeCache(len(bert.encoder.layer), beams)
        bert.encoder(x, additive, cache)
        return cache

    def _cached_step_logits(self, ids: torch.Tensor, cache: AvlDecodeCache) -> torch.Tensor:
        """As _step_logits, running only ids[:, cache.length:] and the [MASK] slot: [R, vocab]."""
        c = self.config
        rows, length = ids.shape
        if length <= cache.length:
            raise ValueError(f"the cache holds {cache.length} tokens, ids only {length}")
        bert = self.trans_encoder.bert
        mask_slot = torch.full((rows, 1), c.mask_token_id, dtype=ids.dtype, device=ids.device)
        inp = torch.cat((ids[:, cache.length:], mask_slot), dim=1)  # [R, n]
        n = inp.shape[1]
        positions = torch.arange(cache.length, length + 1, device=ids.device).expand(rows, n)
        x = bert.embeddings(inp, None, positions)
        # [n, n]: a token does not see the later ones of this step (the text's causal mask)
        additive = torch.ones(n, n, dtype=torch.bool, device=ids.device).triu(1).to(x.dtype) * _NEG
        hidden = bert.encoder(x, additive, cache)
        cache.length = length
        return self.trans_encoder.cls(hidden[:, -1]).float()

    @torch.no_grad()
    def generate_ids(self, pixel_values=None, audio_values=None, *, visual_features=None, num_beams: int = 1,
                     max_length: int | None = None, length_penalty: float = 1.0,
                     use_cache: bool = True) -> list[list[int]]:
        """Token ids of the description of each clip (without CLS and SEP). use_cache=False re-runs the
        decoder over all audio-visual tokens and the text at every step (same tokens, slower)."""
        c = self.config
        visual = visual_features if visual_features is not None else self.encode(pixel_values, audio_values)
        max_length = min(max_length or c.max_gen_length, c.max_position_embeddings - 1)
        if num_beams <= 1:
            seqs = self._greedy(visual, max_length, use_cache)
        else:
            seqs = self._beam(visual, max_length, num_beams, length_penalty, use_cache)
        out = []
        for s in seqs:
            s = s[1:]  # drop CLS
            if c.sep_token_id in s:
                s = s[: s.index(c.sep_token_id)]
            out.append([i for i in s if i != c.pad_token_id])
        return out

    def _greedy(self, visual, max_length: int, use_cache: bool = True) -> list[list[int]]:
        c = self.config
        b = visual.shape[0]
        ids = torch.full((b, 1), c.cls_token_id, dtype=torch.long, device=visual.device)
        unfinished = torch.ones(b, dtype=torch.long, device=visual.device)
        context = self._start_cache(visual, 1) if use_cache and max_length > 1 else visual
        while ids.shape[1] < max_length:
            nxt = self._step_logits(ids, context).argmax(-1)
            nxt = nxt * unfinished + c.pad_token_id * (1 - unfinished)
            ids = torch.cat((ids, nxt[:, None]), dim=1)
            unfinished = unfinished * (nxt != c.sep_token_id).long()
            if unfinished.max() == 0:
                break
        return ids.tolist()

    def _beam(self, visual, max_length: int, num_beams: int, length_penalty: float,
              use_cache: bool = True) -> list[list[int]]:
        """Official _generate_beam_search (no sampling, num_keep_best 1, TOPN_PER_BEAM 2). Rows i * num_beams
        + k are clip i's beams; a finished clip's rows are refilled from its own first row (the official takes
        row 0 of the batch; those rows are never read), so rows never cross clips (AvlDecodeCache.reorder)."""
        c = self.config
        b, vocab = visual.shape[0], c.vocab_size
        if use_cache and max_length > 1:
            context = self._start_cache(visual, num_beams)  # the visual keys once per clip, not per beam
        else:
            context = visual.repeat_interleave(num_beams, dim=0)
        ids = torch.full((b * num_beams, 1), c.cls_token_id, dtype=torch.long, device=visual.device)
        scores = torch.zeros(b, num_beams, device=visual.device)
        scores[:, 1:] = -1e9
        scores = scores.view(-1)
        hyps = [_Hypotheses(max_length, length_penalty) for _ in range(b)]
        done = [False] * b
        cur = 1
        while cur < max_length:
            logp = F.log_softmax(self._step_logits(ids, context), dim=-1) + scores[:, None]
            top_scores, top_words = torch.topk(logp.view(b, num_beams * vocab), 2 * num_beams, dim=1)
            batch_beam = []
            for i in range(b):
                done[i] = done[i] or hyps[i].is_done(float(top_scores[i].max()))
                if done[i]:
                    batch_beam.extend([(0.0, c.pad_token_id, i * num_beams)] * num_beams)
                    continue
                nxt = []
                for idx, sc in zip(top_words[i].tolist(), top_scores[i].tolist()):
                    beam, word = divmod(idx, vocab)
                    if word == c.sep_token_id or cur + 1 == max_length:
                        hyps[i].add(ids[i * num_beams + beam, :cur].tolist(), sc)
                    else:
                        nxt.append((sc, word, i * num_beams + beam))
                    if len(nxt) == num_beams:
                        break
                if not nxt:
                    nxt = [(0.0, c.pad_token_id, i * num_beams)] * num_beams
                batch_beam.extend(nxt)
            scores = torch.tensor([x[0] for x in batch_beam], device=visual.device)
            words = torch.tensor([x[1] for x in batch_beam], dtype=torch.long, device=visual.device)
            rows = torch.tensor([x[2] for x in batch_beam], dtype=torch.long, device=visual.device)
            ids = torch.cat((ids[rows], words[:, None]), dim=1)
            if isinstance(context, AvlDecodeCache):
                context.reorder(rows)
            cur += 1
            if all(done):
                break
        return [h.best() or [c.cls_token_id] for h in hyps]


class _Hypotheses:
    """Official BeamHypotheses with n_hyp = 1 and early_stopping False."""

    def __init__(self, max_length: int, length_penalty: float):
        self.max_length = max_length - 1  # ignoring the BOS token, as the official
        self.length_penalty = length_penalty
        self.hyp: list[tuple[float, list[int]]] = []
        self.worst_score = 1e9

    def add(self, hyp: list[int], sum_logprobs: float) -> None:
        score = sum_logprobs / len(hyp) ** self.length_penalty
        if not self.hyp or score > self.worst_score:
            self.hyp.append((score, hyp))
            if len(self.hyp) > 1:
                worst = min(range(len(self.hyp)), key=lambda k: self.hyp[k][0])
                del self.hyp[worst]
                self.worst_score = self.hyp[0][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float) -> bool:
        return bool(self.hyp) and self.worst_score >= best_sum_logprobs / self.max_length ** self.length_penalty

    def best(self) -> list[int] | None:
        return max(self.hyp, key=lambda h: h[0])[1] if self.hyp else None


__all__ = ["AvlDecodeCache", "AvlformerForDescription", "AvlformerOutput", "AvlformerPreTrainedModel", "rms_normalize"]
