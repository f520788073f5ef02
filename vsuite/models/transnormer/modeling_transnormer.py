"""TransNormerLLM (TNL): a decoder-only language model built on Lightning Attention, as released.

Block (pre-norm, two residual sub-blocks), L layers, then a final SRMSNorm and lm_head:
    x = x + TokenMixer(SRMSNorm(x))     # NormLinearAttention ("GLA")
    x = x + ChannelMixer(SRMSNorm(x))   # GLU without activation ("SGLU"): l3(l1(x) * l2(x))

Token mixer of layer l (H heads, per-head slope s_{l,h} = alibi_h * (1 - l/(L-1) + 1e-5)):
    q, k, v, u = split(x W_qkvu)                        # 4 x [B, N, hidden_dim]
    q, k = act(q), act(k)                               # SiLU, or identity for "none"; v, u: none
    q, k = LRPE(q), LRPE(k)                             # LRPE layers only (layer 0): d -> 2d
    o_t = sum_{j<=t} exp(-s (t-j)) (q_t . k_j) v_j      # no softmax, no 1/sqrt(d)
    out = W_out(u * SRMSNorm(o))                        # SRMSNorm over the full hidden_dim

Notable:
  - Parameter names are the official ones (model.layers.{i}.token_mixer.qkvu_proj, ...), so the
    released checkpoints load as they are. SRMSNorm has no weight: no norm tensors exist.
  - Embeddings are multiplied by sqrt(d_model) unless `no_scale_embedding` (only for input_ids;
    inputs_embeds are used as given, as in the official code).
  - Training and prefill run `lightning_attn` (chunked torch on CPU, Triton on CUDA); decoding
    one token runs `lightning_attn_step`. The cache (TransnormerCache) holds one fp32 state
    [B, H, Dk, Dv] per layer plus the number of tokens seen, which is the LRPE position offset:
    its size does not depend on the sequence length and no module keeps state between calls.
  - Padding (attention_mask, 1 = token): v is zeroed at padded positions, as officially. Decay and
    LRPE depend only on relative positions, so left padding reproduces the unpadded outputs
    exactly; with right padding only the padded positions themselves get meaningless outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils import logging

from vsuite_kernels.lightning import lightning_attn, lightning_attn_step, tnl_layer_slopes
from vsuite_kernels.lrpe import lrpe_cos_sin, lrpe_theta_init

from ..causal_lm import CausalLMAccessors
from .configuration_transnormer import TransnormerConfig

logger = logging.get_logger(__name__)


def _identity(x):
    return x


# The q/k feature maps of the official `get_activation_fn` (names as in config.linear_act_fun).
ACT_FNS = {
    "silu": F.silu, "swish": F.silu, "none": _identity, "identity": _identity,
    "relu": F.relu, "elu": F.elu, "gelu": F.gelu, "sigmoid": torch.sigmoid,
    "1+elu": lambda x: 1 + F.elu(x), "2+elu": lambda x: 2 + F.elu(x),
}


class SRMSNorm(nn.Module):
    """Simple RMSNorm, no weight: x * rsqrt(mean(x^2) + eps), computed in fp32, cast back."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)


class Lrpe(nn.Module):
    """TNL's LRPE: x [B, H, N, d] -> [x cos(theta s), x sin(theta s)] [B, H, N, 2d], s = position.

    theta [H, 1, d] is learned, initialised to 10000^(-2j/(H d)) (see vsuite_kernels.lrpe).
    """

    def __init__(self, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        # in the model's dtype like every other parameter; the angles are computed in fp32 by the kernel
        self.theta = nn.Parameter(lrpe_theta_init(num_heads, head_dim).to(torch.get_default_dtype()))

    def forward(self, x, offset: int = 0):
        return lrpe_cos_sin(x, self.theta, offset)


class NormLinearAttention(nn.Module):
    """The token mixer. Reads and writes its layer's state in the cache when one is given."""

    def __init__(self, config: TransnormerConfig, layer_idx: int, use_lrpe: bool):
        super().__init__()
        d, hidden, H = config.decoder_embed_dim, config.hidden_dim, config.decoder_attention_heads
        self.layer_idx, self.num_heads = layer_idx, H
        self.qkvu_proj = nn.Linear(d, 4 * hidden, bias=config.bias)  # rows: q | k | v | u
        self.out_proj = nn.Linear(hidden, d, bias=config.bias)
        self.act = ACT_FNS[config.linear_act_fun]
        self.norm = SRMSNorm()
        self.lrpe = Lrpe(H, hidden // H) if use_lrpe else None

    def forward(self, x, slopes, padding_mask=None, cache=None, offset: int = 0):
        # x [B, N, d_model]; slopes [H] fp32; padding_mask [B, N] (1 = token, 0 = pad) or None
        B, N, _ = x.shape
        q, k, v, u = self.qkvu_proj(x).chunk(4, dim=-1)  # [B, N, hidden] each
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))  # [B, H, N, d]
        q, k = self.act(q), self.act(k)
        if self.lrpe is not None:
            q, k = self.lrpe(q, offset), self.lrpe(k, offset)  # [B, H, N, 2d]
        if padding_mask is not None:
            v = v.masked_fill(~padding_mask.bool()[:, None, :, None], 0.0)

        state = cache.get_recurrent_state(self.layer_idx) if cache is not None else None  # [B, H, Dk, Dv] fp32
        if cache is not None and N == 1:  # decoding: O(1) per token
            o, state = lightning_attn_step(q[:, :, 0], k[:, :, 0], v[:, :, 0], state, slopes)
            o = o.unsqueeze(2)
        else:  # training / prefill (continuing from the cached state, if any)
            o, state = lightning_attn(q, k, v, slopes, initial_state=state, output_final_state=cache is not None)
        if cache is not None:
            cache.update_recurrent_state(state, self.layer_idx)

        o = o.transpose(1, 2).reshape(B, N, -1)  # [B, N, hidden]
        return self.out_proj(u * self.norm(o))


class GLU(nn.Module):
    """The channel mixer (SGLU): l3(l1(x) * l2(x)), no activation."""

    def __init__(self, d: int, glu_dim: int, bias: bool):
        super().__init__()
        self.l1 = nn.Linear(d, glu_dim, bias=bias)
        self.l2 = nn.Linear(d, glu_dim, bias=bias)
        self.l3 = nn.Linear(glu_dim, d, bias=bias)

    def forward(self, x):
        return self.l3(self.l1(x) * self.l2(x))


class TransnormerDecoderLayer(nn.Module):
    def __init__(self, config: TransnormerConfig, layer_idx: int, use_lrpe: bool):
        super().__init__()
        d = config.decoder_embed_dim
        glu_dim = d if config.glu_dim == -1 else config.glu_dim
        self.token_norm = SRMSNorm()
        self.token_mixer = NormLinearAttention(config, layer_idx, use_lrpe)
        self.channel_norm = SRMSNorm()
        self.channel_mixer = GLU(d, glu_dim, config.bias)

    def forward(self, x, slopes, padding_mask=None, cache=None, offset: int = 0):
        x = x + self.token_mixer(self.token_norm(x), slopes, padding_mask, cache, offset)
        return x + self.channel_mixer(self.channel_norm(x))


# ----------------------------------------------------------------------------- cache


# Built only on what every supported transformers (see pyproject.toml) has: the Cache base class holding a
# list of layers. Not on LinearAttentionCacheLayerMixin or Cache.get_recurrent_state (5.5+, reworked since):
# the layer class, the state accessors and the batch reshuffles generate() calls are defined here.


class TransnormerStateLayer:
    """One layer's recurrent state S [B, H, Dk, Dv] (fp32). Replaced at each step, never grown."""

    def __init__(self):
        self.state: torch.Tensor | None = None

    def __repr__(self) -> str:
        shape = None if self.state is None else tuple(self.state.shape)
        return f"TransnormerStateLayer(state={shape})"


class TransnormerCache(Cache):
    """Decoding cache: per-layer fp32 states and the number of tokens seen (the LRPE offset).

    Memory: L * B * H * Dk * Dv * 4 bytes, whatever the length (Dk = 2 * head_dim on LRPE layers).
    It cannot be cropped (a state cannot forget tokens), and it is not meant for torch.compile.
    """

    is_croppable = False
    is_compileable = False

    def __init__(self, num_layers: int):
        super().__init__(layers=[TransnormerStateLayer() for _ in range(num_layers)])
        self.seen_tokens = 0

    @property
    def is_linear(self) -> list[bool]:
        """generate() (transformers >= 5.5) asks this to know that no token can be sliced off a state."""
        return [True] * len(self.layers)

    def get_recurrent_state(self, layer_idx: int, state_idx: int = 0) -> torch.Tensor | None:
        return self.layers[layer_idx].state

    def update_recurrent_state(self, recurrent_states: torch.Tensor, layer_idx: int, state_idx: int = 0,
                               **kwargs) -> torch.Tensor:
        self.layers[layer_idx].state = recurrent_states
        return recurrent_states

    def get_seq_length(self, layer_idx: int = 0, *args, **kwargs) -> int:
        return self.seen_tokens

    def get_max_cache_shape(self, layer_idx: int = 0) -> int:
        return -1  # unbounded: the state does not grow with the length

    def reset(self) -> None:
        for layer in self.layers:
            layer.state = None
        self.seen_tokens = 0

    def _map_states(self, fn) -> None:
        for layer in self.layers:
            if layer.state is not None:
                layer.state = fn(layer.state)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map_states(lambda s: s.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map_states(lambda s: s[indices])

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:  # beam search
        self._map_states(lambda s: s.index_select(0, beam_idx.to(s.device)))

    def crop(self, tokens_to_remove: int) -> None:
        raise RuntimeError("a TransNormerLLM cache cannot be cropped: its states do not keep single tokens")


# Outputs: transformers 5.24 renamed the cache field of the output classes from `past_key_values` to
# `cache`. Outputs are built with whichever name the installed version has, and on older versions
# `.cache` reads `past_key_values`, so callers can use `.cache` everywhere.
_CACHE_FIELD = "cache" if "cache" in {f.name for f in fields(BaseModelOutputWithPast)} else "past_key_values"

if _CACHE_FIELD == "cache":
    TransnormerModelOutput, TransnormerCausalLMOutput = BaseModelOutputWithPast, CausalLMOutputWithPast
else:

    @dataclass
    class TransnormerModelOutput(BaseModelOutputWithPast):
        @property
        def cache(self):
            return self.past_key_values

    @dataclass
    class TransnormerCausalLMOutput(CausalLMOutputWithPast):
        @property
        def cache(self):
            return self.past_key_values


def keep_last_positions(hidden: torch.Tensor, logits_to_keep) -> torch.Tensor:
    """hidden [B, N, d] -> the positions whose logits are wanted: 0 = all, k = the last k, a 1-D tensor of
    indices = those positions (the `logits_to_keep` convention of transformers' generate())."""
    if isinstance(logits_to_keep, int):
        return hidden if logits_to_keep == 0 else hidden[:, -logits_to_keep:]
    return hidden[:, logits_to_keep]


# ----------------------------------------------------------------------------- models


class TransnormerPreTrainedModel(PreTrainedModel):
    config_class = TransnormerConfig
    config: TransnormerConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransnormerDecoderLayer"]
    _keys_to_ignore_on_load_unexpected = [r"decoder\.version"]
    _can_compile_fullgraph = False
    _is_stateful = True  # recurrent states cannot be rolled back (no assisted generation)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # generate() must not build a DynamicCache: forward creates a TransnormerCache

    def _init_weights(self, module):
        super()._init_weights(module)  # Linear, Embedding: N(0, init_std); the padding row zeroed
        if isinstance(module, Lrpe):
            init.copy_(module.theta, lrpe_theta_init(module.num_heads, module.head_dim))


def _legacy_cache_kwarg(cache, kwargs):
    """Accept `past_key_values`, the name transformers < 5.24 (and its generate()) uses, for `cache`."""
    legacy = kwargs.pop("past_key_values", None)
    return cache if cache is not None else legacy


class TransnormerModel(TransnormerPreTrainedModel):
    def __init__(self, config: TransnormerConfig):
        super().__init__(config)
        d = config.decoder_embed_dim
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, d, self.padding_idx)
        lrpe = config.lrpe_flags()
        self.layers = nn.ModuleList(TransnormerDecoderLayer(config, i, lrpe[i]) for i in range(config.decoder_layers))
        self.final_norm = SRMSNorm()
        self.embed_scale = 1.0 if config.no_scale_embedding else math.sqrt(d)
        self.gradient_checkpointing = False
        self._slopes = {}  # device -> per-layer slopes (constants, memoised)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def layer_slopes(self, device) -> list[torch.Tensor]:
        """s_{l,h} = alibi_h * (1 - l/(L-1) + 1e-5), fp32 [H] per layer."""
        if device not in self._slopes:
            H, L = self.config.decoder_attention_heads, len(self.layers)
            self._slopes[device] = [tnl_layer_slopes(H, i, L, device=device) for i in range(L)]
        return self._slopes[device]

    def forward(self, input_ids=None, attention_mask=None, cache=None, inputs_embeds=None, use_cache=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        cache = _legacy_cache_kwarg(cache, kwargs)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_scale * self.embed_tokens(input_ids)  # [B, N, d]
        N = inputs_embeds.shape[1]

        checkpointing = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        use_cache = (self.config.use_cache and not self.training) if use_cache is None else use_cache
        if checkpointing and (use_cache or cache is not None):
            logger.warning_once("a cache is incompatible with gradient checkpointing; running without one")
            use_cache, cache = False, None
        if use_cache and cache is None:
            cache = TransnormerCache(len(self.layers))
        if cache is not None and not isinstance(cache, TransnormerCache):
            raise TypeError(f"TransNormerLLM needs a TransnormerCache, got {type(cache).__name__}")

        padding_mask = None
        if attention_mask is not None:
            if attention_mask.dim() != 2:
                raise ValueError("attention_mask must be 2-D [batch, length] with 1 = token, 0 = padding")
            padding_mask = attention_mask[:, -N:]  # generate() passes the mask of the whole sequence

        offset = cache.get_seq_length() if cache is not None else 0  # absolute position of the first token
        hidden, all_hidden = inputs_embeds, []
        for layer, slopes in zip(self.layers, self.layer_slopes(hidden.device)):
            if output_hidden_states:
                all_hidden.append(hidden)
            if checkpointing:
                hidden = self._gradient_checkpointing_func(layer.__call__, hidden, slopes, padding_mask)
            else:
                hidden = layer(hidden, slopes, padding_mask, cache, offset)
        hidden = self.final_norm(hidden)
        if output_hidden_states:
            all_hidden.append(hidden)
        if cache is not None:
            cache.seen_tokens += N

        out = TransnormerModelOutput(last_hidden_state=hidden, hidden_states=tuple(all_hidden) if output_hidden_states
                                     else None, **{_CACHE_FIELD: cache})
        return out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()


class TransnormerForCausalLM(CausalLMAccessors, TransnormerPreTrainedModel, GenerationMixin):
    def __init__(self, config: TransnormerConfig):
        super().__init__(config)
        self.model = TransnormerModel(config)
        self.lm_head = nn.Linear(config.decoder_embed_dim, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, cache=None, inputs_embeds=None, labels=None,
                use_cache=None, output_hidden_states=None, return_dict=None, logits_to_keep=0, **kwargs):
        """labels [B, N]: next-token targets aligned with input_ids (shifted inside), -100 = ignored.
        logits_to_keep: 0 = all positions, k = the last k only (generate() passes 1)."""
        cache = _legacy_cache_kwarg(cache, kwargs)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache, inputs_embeds=inputs_embeds,
                         use_cache=use_cache, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = out.last_hidden_state  # [B, N, d]
        if labels is None:
            hidden = keep_last_positions(hidden, logits_to_keep)
        logits = self.lm_head(hidden)  # [B, N, vocab]

        loss = None
        if labels is not None:  # token t predicts token t+1; mean over the non-ignored targets
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten().to(logits.device),
                                   ignore_index=-100)
        result = TransnormerCausalLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states,
                                           **{_CACHE_FIELD: out.cache})
        return result if (return_dict if return_dict is not None else self.config.return_dict) else result.to_tuple()


__all__ = [
    "TransnormerCache", "TransnormerForCausalLM", "TransnormerModel", "TransnormerPreTrainedModel",
]
