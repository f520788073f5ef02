"""Toeplitz Neural Network (TNN, ICLR 2023) language-model configuration.

Defaults are the paper's WikiText-103 model, fairseq-evo's `tnn_v2_decay_99_pre`:
7 pre-norm layers, width 512, 1 head, GTU expand 3 with SiLU, causal Toeplitz operator with
decay gamma = 0.99 (lag 0 undecayed), RPE 64 wide and 6 layers deep with ReLU and no residual,
GLU (SiLU) of width 512, SimpleRMSNorm in the blocks and the RPE, no positional embedding,
sqrt(d) embedding scale, a final LayerNorm (fairseq's pre-norm decoder adds one), shared
input/output embedding, dropout 0.1.
"""

from __future__ import annotations

from transformers.configuration_utils import PreTrainedConfig

ACTIVATIONS = ("silu", "relu", "gelu", "none")


class TnnConfig(PreTrainedConfig):
    model_type = "tnn"
    attribute_map = {"num_hidden_layers": "num_layers", "num_attention_heads": "num_heads"}

    vocab_size: int = 50265  # fairseq's GPT-2 BPE dictionary for WikiText-103
    hidden_size: int = 512
    num_layers: int = 7
    num_heads: int = 1
    expand_ratio: float = 3.0  # GTU width d1 = int(expand_ratio * hidden) rounded down to a multiple of heads
    act_fun: str = "silu"  # on the GTU's u and v
    glu_dim: int = -1  # -1: hidden_size
    glu_act: str = "silu"
    rpe_dim: int = 64
    rpe_layers: int = 6
    rpe_act: str = "relu"
    rpe_residual: bool = False
    causal: bool = True
    use_decay: bool = True
    gamma: float = 0.99
    bias: bool = True
    dropout: float = 0.1
    no_scale_embedding: bool = False
    final_norm: bool = True  # fairseq: LayerNorm after the last pre-norm layer
    norm_eps: float = 1e-8  # SimpleRMSNorm: x / (||x|| d^-1/2 + eps)
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 1  # fairseq dictionary: <s>=0, <pad>=1, </s>=2
    bos_token_id: int | None = 0
    eos_token_id: int | None = 2

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        problems = []
        if self.gtu_dim < self.num_heads:
            problems.append("expand_ratio * hidden_size must give at least one channel per head")
        for name in ("act_fun", "glu_act", "rpe_act"):
            if getattr(self, name) not in ACTIVATIONS:
                problems.append(f"{name} {getattr(self, name)!r} is not one of {', '.join(ACTIVATIONS)}")
        if not 0.0 < self.gamma <= 1.0:
            problems.append(f"gamma must be in (0, 1], got {self.gamma}")
        if problems:
            raise ValueError("invalid TnnConfig: " + "; ".join(problems))

    @property
    def gtu_dim(self) -> int:
        d1 = int(self.expand_ratio * self.hidden_size)
        return (d1 // self.num_heads) * self.num_heads

    @property
    def glu_width(self) -> int:
        return self.hidden_size if self.glu_dim == -1 else self.glu_dim


__all__ = ["TnnConfig"]
