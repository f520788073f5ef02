"""Official TNN language models (OpenNLPLab/fairseq-evo, `tnn_v2_lm` architectures) -> TnnForCausalLM.

A fairseq checkpoint is `torch.save({"args": Namespace | None, "cfg": dict | None, "model": state_dict, ...})`
(fairseq/trainer.py state_dict). It is read with torch.load(weights_only=True) only (see
vsuite/models/pickled_checkpoint.py): fairseq's own classes in the metadata become inert stand-ins, anything
else that could run code is refused.

Names (TnnV2Decoder -> TnnV2DecoderLayer -> GtuV2Module -> GtuV2 -> Tno -> Rpe):
  decoder.embed_tokens.weight                         -> model.embed_tokens.weight
  decoder.layers.{i}.self_attn.gtu.{u_proj,v_proj,o}  -> model.layers.{i}.token_mixer.{u_proj,v_proj,o}
  decoder.layers.{i}.self_attn.gtu.toep.gamma         -> ...token_mixer.toep.gamma   (only with use_decay)
  ....toep.rpe.pos_proj                               -> ....toep.rpe.pos_proj
  ....toep.rpe.layers.{j}.2 / ....toep.rpe.out.2      -> ....toep.rpe.layers.{j} / ....toep.rpe.out
                                                         (Sequential(norm, act, Linear): only the Linear has weights)
  decoder.layers.{i}.glu.{l1,l2,l3}                   -> model.layers.{i}.channel_mixer.{l1,l2,l3}
  decoder.layer_norm                                  -> model.final_norm
  decoder.output_projection.weight                    -> lm_head.weight (tied when equal to the embedding)
  decoder.version                                     dropped (fairseq's format-version buffer)
The SimpleRMSNorms (self_attn_layer_norm, final_layer_norm, the RPE's) have no weights.

Config: shapes from the state dict (vocabulary, width, depth, GTU and GLU widths, RPE width and depth, bias,
decay and its gamma value, heads from gamma's shape, final norm, tying); the rest from the checkpoint's model
arguments ("args" or cfg["model"]) with the `tnn_v2_decay_99_pre` values as defaults; keyword overrides win.
Variants vsuite's TNN does not implement (post-norm, GTU norm, multi-decay, GLU v2, GTU v3, positions,
adaptive input) are refused with a one-line DataError.
"""

from __future__ import annotations

import os
import re

from ...errors import DataError
from ..pickled_checkpoint import Opaque, load_converted_weights, load_pickled_checkpoint
from .configuration_tnn import TnnConfig

WHAT = "a fairseq TNN checkpoint (.pt)"

# (official regex, vsuite template) for the per-layer weights; \1 = layer, \2 = RPE layer or projection.
_RULES = [
    (r"decoder\.layers\.(\d+)\.self_attn\.gtu\.(u_proj|v_proj|o)\.", r"model.layers.\1.token_mixer.\2."),
    (r"decoder\.layers\.(\d+)\.self_attn\.gtu\.toep\.gamma$", r"model.layers.\1.token_mixer.toep.gamma"),
    (r"decoder\.layers\.(\d+)\.self_attn\.gtu\.toep\.rpe\.pos_proj\.",
     r"model.layers.\1.token_mixer.toep.rpe.pos_proj."),
    (r"decoder\.layers\.(\d+)\.self_attn\.gtu\.toep\.rpe\.layers\.(\d+)\.2\.",
     r"model.layers.\1.token_mixer.toep.rpe.layers.\2."),
    (r"decoder\.layers\.(\d+)\.self_attn\.gtu\.toep\.rpe\.out\.2\.", r"model.layers.\1.token_mixer.toep.rpe.out."),
    (r"decoder\.layers\.(\d+)\.glu\.(l1|l2|l3)\.", r"model.layers.\1.channel_mixer.\2."),
    (r"decoder\.embed_tokens\.", "model.embed_tokens."),
    (r"decoder\.layer_norm\.", "model.final_norm."),
    (r"decoder\.output_projection\.", "lm_head."),
]
_RULES = [(re.compile(a), b) for a, b in _RULES]
_DROPPED = {"decoder.version"}

# tnn_v2_decay_99_pre (fairseq-evo fairseq/models/lm_tnn/tnn_v2_lm.py on top of base_lm_architecture)
_PAPER_ARGS = dict(decoder_attention_heads=1, act_fun="silu", causal=True, glu_act="silu", rpe_act="relu",
                   residual=False, dropout=0.1, no_scale_embedding=False)
# fairseq argument -> the value vsuite's TNN implements (anything else is a different model)
_REQUIRED = dict(decoder_normalize_before=True, use_norm=False, resi_param=False, use_multi_decay=False,
                 normalize=False, par_type=1, act_type="none", gtu_type=2, glu_type=1, fina_act="None",
                 no_token_positional_embeddings=True, adaptive_input=False, layernorm_embedding=False,
                 norm_type="simplermsnorm", glu_dropout=0.0, use_alibi=False, use_toep=False)


def convert_state_dict(official_sd: dict) -> dict:
    """fairseq-evo `tnn_v2_lm` state dict -> TnnForCausalLM names (tensors shared, not copied). The result
    loads strictly into the model `config_from_state_dict` describes."""
    out, unknown = {}, []
    for key, value in official_sd.items():
        if key in _DROPPED:
            continue
        for pattern, template in _RULES:
            m = pattern.match(key)
            if m:
                out[m.expand(template) + key[m.end():]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise DataError("not a fairseq-evo tnn_v2 LM state dict (or a variant vsuite does not implement): "
                        f"unexpected keys {', '.join(unknown[:3])}")
    if "lm_head.weight" not in out and "model.embed_tokens.weight" in out:  # no separate projection: tied
        out["lm_head.weight"] = out["model.embed_tokens.weight"]
    return out


def model_args(ckpt: dict) -> dict:
    """The model arguments of a fairseq checkpoint: legacy `args` (Namespace) or `cfg["model"]`."""
    def as_dict(obj):
        if obj is None:
            return {}
        if isinstance(obj, dict):
            return obj
        if isinstance(obj, Opaque):  # an omegaconf/fairseq container read as a stand-in
            return obj.state if isinstance(obj.state, dict) else {}
        return dict(vars(obj)) if hasattr(obj, "__dict__") else {}

    args = as_dict(ckpt.get("args"))
    if not args:
        cfg = as_dict(ckpt.get("cfg"))
        args = as_dict(cfg.get("model"))
    return {k: (v.args[0] if isinstance(v, Opaque) and len(v.args) == 1 else v) for k, v in args.items()}


def config_from_state_dict(official_sd: dict, args: dict | None = None, **overrides) -> TnnConfig:
    """TnnConfig for a fairseq-evo TNN state dict; `args` are the checkpoint's model arguments."""
    args = {**_PAPER_ARGS, **{k: v for k, v in (args or {}).items() if v is not None}}  # None: unset
    for name, want in _REQUIRED.items():
        if name in args and args[name] is not None and args[name] != want:
            raise DataError(f"fairseq TNN checkpoint uses {name}={args[name]!r}; vsuite's TNN implements "
                            f"{name}={want!r} only")
    if args.get("arch") and not str(args["arch"]).startswith("tnn_v2"):
        raise DataError(f"fairseq checkpoint of architecture {args['arch']!r}: only tnn_v2_* language models load")
    sd = convert_state_dict(official_sd)
    try:
        embed = sd["model.embed_tokens.weight"]  # [V, D]
        u = sd["model.layers.0.token_mixer.u_proj.weight"]  # [d1, D]
        glu = sd["model.layers.0.channel_mixer.l1.weight"]  # [G, D]
        pos = sd["model.layers.0.token_mixer.toep.rpe.pos_proj.weight"]  # [rpe_dim, 1]
    except KeyError as err:
        raise DataError(f"not a fairseq-evo TNN state dict: {err.args[0]} is missing") from None
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("model.layers."))
    rpe_layers = len({k for k in sd if k.startswith("model.layers.0.token_mixer.toep.rpe.layers.")
                      and k.endswith(".weight")})
    gamma = sd.get("model.layers.0.token_mixer.toep.gamma")  # [H, 1, d] filled with one value
    if gamma is not None and not bool((gamma == gamma.flatten()[0]).all()):
        raise DataError("fairseq TNN checkpoint: gamma is not one constant (a multi-decay model?)")
    heads = gamma.shape[0] if gamma is not None else int(args["decoder_attention_heads"])
    has_final = "model.final_norm.weight" in sd
    head = sd["lm_head.weight"]  # fairseq's shared embedding stores the same tensor twice
    tied = head.shape == embed.shape and bool((head == embed).all())
    if not has_final and args.get("final_layernorm") == "simplermsnorm" and not args.get("no_decoder_final_norm"):
        raise DataError("fairseq TNN checkpoint uses final_layernorm=simplermsnorm; vsuite's final norm is a LayerNorm")
    fields = dict(
        vocab_size=embed.shape[0], hidden_size=embed.shape[1], num_layers=depth, num_heads=heads,
        expand_ratio=u.shape[0] / embed.shape[1], glu_dim=glu.shape[0], rpe_dim=pos.shape[0],
        rpe_layers=rpe_layers, bias="model.layers.0.token_mixer.u_proj.bias" in sd, use_decay=gamma is not None,
        gamma=float(gamma.flatten()[0]) if gamma is not None else 0.99, final_norm=has_final,
        tie_word_embeddings=tied, causal=bool(args["causal"]), act_fun=args["act_fun"],
        glu_act=args["glu_act"], rpe_act=args["rpe_act"], rpe_residual=bool(args["residual"]),
        dropout=float(args["dropout"]), no_scale_embedding=bool(args["no_scale_embedding"]),
    )
    fields.update(overrides)
    try:
        config = TnnConfig(**fields)
    except (TypeError, ValueError) as err:
        raise DataError(f"fairseq TNN checkpoint: {err}") from None
    if config.gtu_dim != u.shape[0]:
        raise DataError(f"fairseq TNN checkpoint: GTU width {u.shape[0]} is not expand_ratio * hidden_size "
                        f"rounded to {config.num_heads} heads")
    return config


def load_fairseq_checkpoint(path: str | os.PathLike, **config_overrides):
    """A fairseq-evo `tnn_v2_*` checkpoint file -> TnnForCausalLM in eval mode (save_pretrained writes the HF
    folder). `config_overrides` are TnnConfig fields (pad_token_id=..., dropout=...)."""
    import torch

    from .modeling_tnn import TnnForCausalLM

    ckpt = load_pickled_checkpoint(path, what=WHAT, placeholder_modules=("fairseq.", "omegaconf."))
    state = ckpt.get("model") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not state:
        raise DataError(f"{path}: not {WHAT}: no 'model' state dict in it")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{path}: not {WHAT}: {bad[0]} is not a tensor")
    config = config_from_state_dict(state, model_args(ckpt), **config_overrides)
    model = TnnForCausalLM(config)
    return load_converted_weights(model, convert_state_dict(state), path, "fairseq TNN weights")


__all__ = ["config_from_state_dict", "convert_state_dict", "load_fairseq_checkpoint", "model_args"]
