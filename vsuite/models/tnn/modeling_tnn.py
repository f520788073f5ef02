"""Toeplitz Neural Network language model (TNN, Qin et al., ICLR 2023), one readable file.

    x = embed_scale * Embedding(ids)                                   [B, N, D]
    for each layer:  x = x + Dropout(GTU(SimpleRMSNorm(x)))
                     x = x + Dropout(GLU(SimpleRMSNorm(x)))
    logits = lm_head(LayerNorm(x))

GTU (token mixer):   y = (SiLU(x Wu) * TNO(SiLU(x Wv))) Wo,  TNO per head and channel: o = T v
TNO coefficients:    t_k = RPE(k) for the relative positions k of the sequence, decayed by
                     gamma^|k| (lag 0 undecayed), applied through the FFT (vsuite_kernels.toeplitz).
GLU (channel mixer): y = (SiLU(x W1) * x W2) W3

No positional embedding: the RPE generates coefficients for any length, which is what lets a
model trained on 512 tokens evaluate at 14K. Decoding recomputes the prefix (no recurrent
state: TNN's Toeplitz operator has none without an SSM conversion).

Padding (attention_mask [B, N], 1 = real token): the GTU zeroes v at padded positions before the
Toeplitz product. The product depends only on the lag i - j, so with the pads contributing nothing
a real token at padded index p + i gets sum_j t_(i-j) v[p + j] over real tokens only: exactly the
unpadded sequence's value, for left padding (batched generation) and right padding alike, causal or
not. Everything else (norms, u, GLU) is per token, so pads leak through v alone. (Zeroing the
embeddings is not enough: v = SiLU(x Wv + b) is non-zero for x = 0, and later layers see the
residual stream of the pads.)

Official fairseq-evo checkpoints load through official.py (`load_fairseq_checkpoint`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, CausalLMOutput

from vsuite_kernels.toeplitz import toeplitz_decay, toeplitz_matvec, toeplitz_positions

from ..causal_lm import CausalLMAccessors
from .configuration_tnn import TnnConfig

_ACT = {"silu": F.silu, "relu": F.relu, "gelu": F.gelu, "none": lambda x: x}


class SimpleRMSNorm(nn.Module):
    """x / (||x||_2 * d^-1/2 + eps), no learnable scale (TNN's norm)."""

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x):
        return x / (x.norm(2, dim=-1, keepdim=True) * self.dim**-0.5 + self.eps)


class Rpe(nn.Module):
    """Relative position encoder: scalar lag -> coefficients for every head and channel."""

    def __init__(self, config: TnnConfig, out_dim: int):
        super().__init__()
        d, act = config.rpe_dim, _ACT[config.rpe_act]
        self.residual, self.act = config.rpe_residual, act
        self.pos_proj = nn.Linear(1, d, bias=config.bias)
        self.norms = nn.ModuleList(SimpleRMSNorm(d, config.norm_eps) for _ in range(config.rpe_layers))
        self.layers = nn.ModuleList(nn.Linear(d, d, bias=config.bias) for _ in range(config.rpe_layers))
        self.out_norm = SimpleRMSNorm(d, config.norm_eps)
        self.out = nn.Linear(d, out_dim, bias=config.bias)

    def forward(self, pos):  # pos [L, 1] -> [L, out_dim]
        x = self.pos_proj(pos)
        for norm, linear in zip(self.norms, self.layers):
            y = linear(self.act(norm(x)))
            x = x + y if self.residual else y
        return self.out(self.act(self.out_norm(x)))


class Tno(nn.Module):
    """Toeplitz neural operator over [B, H, N, d]: per-(head, channel) Toeplitz matrix from the RPE."""

    def __init__(self, config: TnnConfig, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim, self.causal = heads, head_dim, config.causal
        self.use_decay, self.gamma_value = config.use_decay, config.gamma
        self.rpe = Rpe(config, heads * head_dim)
        # Non-trainable, as in the paper's LM (gamma = 0.99 for 512-token training); saved with the
        # weights like the reference's requires_grad=False parameter, which exists only with decay on.
        if self.use_decay:
            self.register_buffer("gamma", torch.full((heads, 1, head_dim), config.gamma))

    def coefficients(self, n: int, device, dtype=torch.float32) -> torch.Tensor:
        pos = toeplitz_positions(n, self.causal, device=device, dtype=dtype)  # [L, 1]
        coeffs = self.rpe(pos).view(-1, self.heads, self.head_dim).transpose(0, 1)  # [H, L, d]
        return toeplitz_decay(coeffs, self.gamma, self.causal) if self.use_decay else coeffs

    def forward(self, v):  # v [B, H, N, d]
        coeffs = self.coefficients(v.shape[2], v.device, torch.float32 if v.dtype != torch.float64 else v.dtype)
        return toeplitz_matvec(v, coeffs.to(v.dtype), causal=self.causal)


class Gtu(nn.Module):
    def __init__(self, config: TnnConfig):
        super().__init__()
        d1 = config.gtu_dim
        self.heads, self.act = config.num_heads, _ACT[config.act_fun]
        self.u_proj = nn.Linear(config.hidden_size, d1, bias=config.bias)
        self.v_proj = nn.Linear(config.hidden_size, d1, bias=config.bias)
        self.o = nn.Linear(d1, config.hidden_size, bias=config.bias)
        self.toep = Tno(config, config.num_heads, d1 // config.num_heads)

    def forward(self, x, mask=None):  # x [B, N, D], mask [B, N] (1 = real token) or None
        B, N, _ = x.shape
        u = self.act(self.u_proj(x))
        v = self.act(self.v_proj(x))
        if mask is not None:  # pads add nothing to the Toeplitz sums (module docstring)
            v = v * mask[..., None].to(v.dtype)
        v = v.view(B, N, self.heads, -1).transpose(1, 2)  # [B, H, N, d]
        o = self.toep(v).transpose(1, 2).reshape(B, N, -1)
        return self.o(u * o)


class Glu(nn.Module):
    def __init__(self, config: TnnConfig):
        super().__init__()
        D, G = config.hidden_size, config.glu_width
        self.act = _ACT[config.glu_act]
        self.l1 = nn.Linear(D, G, bias=config.bias)
        self.l2 = nn.Linear(D, G, bias=config.bias)
        self.l3 = nn.Linear(G, D, bias=config.bias)

    def forward(self, x):
        return self.l3(self.act(self.l1(x)) * self.l2(x))


class TnnLayer(nn.Module):
    def __init__(self, config: TnnConfig):
        super().__init__()
        self.token_norm = SimpleRMSNorm(config.hidden_size, config.norm_eps)
        self.token_mixer = Gtu(config)
        self.channel_norm = SimpleRMSNorm(config.hidden_size, config.norm_eps)
        self.channel_mixer = Glu(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, mask=None):
        x = x + self.dropout(self.token_mixer(self.token_norm(x), mask))
        return x + self.dropout(self.channel_mixer(self.channel_norm(x)))


class TnnPreTrainedModel(PreTrainedModel):
    config_class = TnnConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TnnLayer"]

    def _init_weights(self, module):
        # fairseq's choices: Linear keeps PyTorch's default init; embeddings N(0, D^-1/2), pad row 0.
        if isinstance(module, nn.Linear):
            module.reset_parameters()
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=module.embedding_dim**-0.5)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, Tno) and module.use_decay:
            with torch.no_grad():
                module.gamma.fill_(module.gamma_value)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class TnnModel(TnnPreTrainedModel):
    def __init__(self, config: TnnConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.embed_scale = 1.0 if config.no_scale_embedding else math.sqrt(config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TnnLayer(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size) if config.final_norm else nn.Identity()
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, **kwargs):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        x = self.dropout(x * self.embed_scale)  # [B, N, D]
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.to(x.dtype)  # [B, N]; each GTU zeroes v there (module docstring)
            x = x * mask[..., None]
        for layer in self.layers:
            if self.gradient_checkpointing and self.training:
                x = self._gradient_checkpointing_func(layer.__call__, x, mask)
            else:
                x = layer(x, mask)
        return BaseModelOutput(last_hidden_state=self.final_norm(x))


class TnnForCausalLM(CausalLMAccessors, TnnPreTrainedModel, GenerationMixin):
    def __init__(self, config: TnnConfig):
        super().__init__(config)
        self.model = TnnModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        # No recurrent state: every step re-reads the whole prefix.
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, labels=None, **kwargs):
        hidden = self.model(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        logits = self.lm_head(hidden.last_hidden_state)  # [B, N, V]
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


__all__ = ["TnnForCausalLM", "TnnModel", "TnnPreTrainedModel"]
