"""TransNormerLLM configuration, with the field names of the official Hugging Face `config.json`.

An official config.json (OpenNLPLab/TransNormerLLM-385M/1B/7B, model_type "transnormer") loads as it
is: every official field keeps its name, unknown extra fields (auto_map, torch_dtype, ...) are kept as
attributes and ignored. `hidden_size`, `num_hidden_layers` and `num_attention_heads` are aliases
(attribute_map) for the names transformers' generic code looks for.

Notable:
  - `linear_use_lrpe_list[i] == 1` puts LRPE on layer i (only layer 0 in every released model).
    Empty list: the single flag `linear_use_lrpe` (if a config carries one) applies to all layers,
    as in the official code; without it no layer uses LRPE.
  - `glu_dim == -1` means glu_dim = decoder_embed_dim (official convention).
  - `tie_word_embeddings` is not in the official files; it defaults to True, the transformers-4
    default those checkpoints were saved under (lm_head shares embed_tokens).
"""

from __future__ import annotations

from transformers.configuration_utils import PreTrainedConfig

# Official names of the q/k feature map (utils.get_activation_fn); "none"/"identity" = no activation.
ACTIVATIONS = ("silu", "swish", "none", "identity", "relu", "elu", "gelu", "sigmoid", "1+elu", "2+elu")


class TransnormerConfig(PreTrainedConfig):
    model_type = "transnormer"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]
    attribute_map = {
        "hidden_size": "decoder_embed_dim",
        "num_hidden_layers": "decoder_layers",
        "num_attention_heads": "decoder_attention_heads",
    }

    # Defaults are the official ones (the 385M model).
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    vocab_size: int = 64000
    use_cache: bool = True
    init_std: float = 0.02
    decoder_embed_dim: int = 1024  # d_model
    decoder_layers: int = 24
    decoder_attention_heads: int = 8
    no_scale_embedding: bool = False  # False: embeddings are multiplied by sqrt(d_model)
    add_bos_token: bool = False  # a tokenizer setting, kept for round trips
    norm_type: str = "simplermsnorm"
    linear_use_lrpe_list: list[int] | None = None  # normalised to a list
    hidden_dim: int = 1024  # width of q, k, v, u (H * head_dim)
    linear_act_fun: str = "silu"  # feature map on q and k
    glu_dim: int = 2816
    bias: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # An official config.json points `auto_map` at the Hub's remote code; vsuite never runs it
        # (the registered local classes are used), and a folder saved by vsuite does not ship it.
        self.__dict__.pop("auto_map", None)
        self.linear_use_lrpe_list = [int(f) for f in (self.linear_use_lrpe_list or [])]
        self.validate_architecture()

    def lrpe_flags(self) -> list[bool]:
        """One flag per layer: does layer i apply LRPE to q and k?"""
        if self.linear_use_lrpe_list:
            return [bool(f) for f in self.linear_use_lrpe_list]
        return [bool(getattr(self, "linear_use_lrpe", 0))] * self.decoder_layers

    def validate_architecture(self):
        super().validate_architecture()
        problems = []
        if self.hidden_dim % self.decoder_attention_heads:
            problems.append(f"hidden_dim ({self.hidden_dim}) must be a multiple of decoder_attention_heads "
                            f"({self.decoder_attention_heads})")
        if self.decoder_layers < 2:
            problems.append("decoder_layers must be >= 2 (the decay schedule divides by decoder_layers - 1)")
        if self.linear_use_lrpe_list and len(self.linear_use_lrpe_list) != self.decoder_layers:
            problems.append(f"linear_use_lrpe_list has {len(self.linear_use_lrpe_list)} entries for "
                            f"{self.decoder_layers} layers")
        if self.norm_type != "simplermsnorm":
            problems.append(f"norm_type {self.norm_type!r} is not supported (only 'simplermsnorm', the released one)")
        if self.linear_act_fun not in ACTIVATIONS:
            problems.append(f"linear_act_fun {self.linear_act_fun!r} is not one of {', '.join(ACTIVATIONS)}")
        if problems:
            raise ValueError("invalid TransnormerConfig: " + "; ".join(problems))


__all__ = ["TransnormerConfig"]
