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
hypotheses scored sum(logp) / len^length_penalty with len counting CLS). The official code caches the
visual tokens' states between steps; this implementation recomputes them (same values, more compute).

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

    def forward(self, x, additive_mask):  # x [B, N, D]; additive_mask [B, 1, N, N]
        b, n, d = x.shape

        def heads(t):
            return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + additive_mask
        probs = self.dropout(scores.softmax(dim=-1))
        return (probs @ v).transpose(1, 2).reshape(b, n, d)


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

    def forward(self, x, additive_mask):
        return self.output(self.self(x, additive_mask), x)


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

    def forward(self, x, additive_mask):
        a = self.attention(x, additive_mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c: AvlformerConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))
        self.gradient_checkpointing = False

    def forward(self, x, additive_mask):
        for layer in self.layer:
            if self.gradient_checkpointing and self.training:
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
    def _step_logits(self, ids: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Logits at the [MASK] slot appended to ids [B, L]: [B, vocab]."""
        c = self.config
        b, length = ids.shape
        inp = torch.cat((ids, torch.full((b, 1), c.mask_token_id, dtype=ids.dtype, device=ids.device)), dim=1)
        base = M.generation_attention_mask(b, length + 1, visual.shape[1], device=ids.device)
        mask, _ = self.full_attention_mask(base)
        return self.trans_encoder(inp, visual, mask)[:, -1].float()

    @torch.no_grad()
    def generate_ids(self, pixel_values=None, audio_values=None, *, visual_features=None, num_beams: int = 1,
                     max_length: int | None = None, length_penalty: float = 1.0) -> list[list[int]]:
        """Token ids of the description of each clip (without CLS and SEP)."""
        c = self.config
        visual = visual_features if visual_features is not None else self.encode(pixel_values, audio_values)
        max_length = min(max_length or c.max_gen_length, c.max_position_embeddings - 1)
        if num_beams <= 1:
            seqs = self._greedy(visual, max_length)
        else:
            seqs = self._beam(visual, max_length, num_beams, length_penalty)
        out = []
        for s in seqs:
            s = s[1:]  # drop CLS
            if c.sep_token_id in s:
                s = s[: s.index(c.sep_token_id)]
            out.append([i for i in s if i != c.pad_token_id])
        return out

    def _greedy(self, visual, max_length: int) -> list[list[int]]:
        c = self.config
        b = visual.shape[0]
        ids = torch.full((b, 1), c.cls_token_id, dtype=torch.long, device=visual.device)
        unfinished = torch.ones(b, dtype=torch.long, device=visual.device)
        while ids.shape[1] < max_length:
            nxt = self._step_logits(ids, visual).argmax(-1)
            nxt = nxt * unfinished + c.pad_token_id * (1 - unfinished)
            ids = torch.cat((ids, nxt[:, None]), dim=1)
            unfinished = unfinished * (nxt != c.sep_token_id).long()
            if unfinished.max() == 0:
                break
        return ids.tolist()

    def _beam(self, visual, max_length: int, num_beams: int, length_penalty: float) -> list[list[int]]:
        """Official _generate_beam_search (no sampling, num_keep_best 1, TOPN_PER_BEAM 2)."""
        c = self.config
        b, vocab = visual.shape[0], c.vocab_size
        visual = visual.repeat_interleave(num_beams, dim=0)
        ids = torch.full((b * num_beams, 1), c.cls_token_id, dtype=torch.long, device=visual.device)
        scores = torch.zeros(b, num_beams, device=visual.device)
        scores[:, 1:] = -1e9
        scores = scores.view(-1)
        hyps = [_Hypotheses(max_length, length_penalty) for _ in range(b)]
        done = [False] * b
        cur = 1
        while cur < max_length:
            logp = F.log_softmax(self._step_logits(ids, visual), dim=-1) + scores[:, None]
            top_scores, top_words = torch.topk(logp.view(b, num_beams * vocab), 2 * num_beams, dim=1)
            batch_beam = []
            for i in range(b):
                done[i] = done[i] or hyps[i].is_done(float(top_scores[i].max()))
                if done[i]:
                    batch_beam.extend([(0.0, c.pad_token_id, 0)] * num_beams)
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
                    nxt = [(0.0, c.pad_token_id, 0)] * num_beams
                batch_beam.extend(nxt)
            scores = torch.tensor([x[0] for x in batch_beam], device=visual.device)
            words = torch.tensor([x[1] for x in batch_beam], dtype=torch.long, device=visual.device)
            rows = torch.tensor([x[2] for x in batch_beam], dtype=torch.long, device=visual.device)
            ids = torch.cat((ids[rows], words[:, None]), dim=1)
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


__all__ = ["AvlformerForDescription", "AvlformerOutput", "AvlformerPreTrainedModel", "rms_normalize"]
