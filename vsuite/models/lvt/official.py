"""Official LVT checkpoints (OpenNLPLab/Linear_VideoTransformer, SlowFast layout) -> LvtForVideoClassification.

The official trainer saves `torch.save({"epoch", "model_state", "optimizer_state", "cfg": cfg.dump()})`
(slowfast/utils/checkpoint.py). The file is read with torch.load(weights_only=True) only (see
vsuite/models/pickled_checkpoint.py); `cfg` is a YAML string, parsed with yaml.safe_load.

Names (XVIT wrapper around the timm backbone):
  base_model.*          -> lvt.*           the backbone (patch_embed, temp_embed, blocks, norm); identical below
  consensus.mlp_head.*  -> consensus.mlp_head.*   VVTHead (LayerNorm, Linear, GELU, Dropout, Linear)
  new_fc.*              dropped: built when MODEL.DROPOUT_RATE > 0 but never called with CONSENSUS_TYPE "vit"
  module.               DDP prefix, stripped when every key has it

Config: shapes come from the state dict (width, depth, heads from the gate width, MLP ratio, gates, qkv
bias, temporal-embedding entries, head width, classes); what the weights cannot tell (frames, shifts, crop,
normalisation, dropouts) from the checkpoint's `cfg` when present, else the official K400 recipe
(configs/Kinetics/lxvitv2_B16_16x16_k400_21k_cgate_tempshift_spatialshift.yaml: 16 frames, NUM_SEGMENTS 8,
SHIFT_DIV 8, SHIFT_SIZE 1); keyword overrides win over both. Patch stride 14 and padding patch_size // 2 are
fixed by the official model registration (lvit_v2_base_*), not by any config.
"""

from __future__ import annotations

import os
import re

from ...errors import DataError
from ..pickled_checkpoint import load_converted_weights, load_pickled_checkpoint
from .configuration_lvt import LvtConfig

WHAT = "an official LVT checkpoint (SlowFast .pyth/.pth)"
_BLOCK = re.compile(r"base_model\.blocks\.(\d+)\.")


def convert_state_dict(official_sd: dict) -> dict:
    """Official XVIT state dict -> LvtForVideoClassification names (tensors are shared, not copied)."""
    sd = dict(official_sd)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    out, unknown = {}, []
    for key, value in sd.items():
        if key.startswith("base_model.head."):  # DROPOUT_RATE 0 turns `head` into a per-token classifier
            raise DataError("this official LVT checkpoint was trained with MODEL.DROPOUT_RATE 0 (a per-token "
                            "classifier in base_model.head), which the VVTHead model does not use")
        if key.startswith("base_model."):
            out["lvt." + key[len("base_model."):]] = value
        elif key.startswith("consensus.mlp_head."):
            out[key] = value
        elif key.startswith("new_fc."):
            continue
        else:
            unknown.append(key)
    if unknown:
        raise DataError(f"not an official LVT (XVIT + lvit_v2) state dict: unexpected keys {', '.join(unknown[:3])}")
    return out


def config_from_state_dict(official_sd: dict, cfg_yaml: str | None = None, **overrides) -> LvtConfig:
    """LvtConfig for an official state dict; `cfg_yaml` is the checkpoint's `cfg` (SlowFast cfg.dump())."""
    sd = convert_state_dict(official_sd)
    try:
        proj = sd["lvt.patch_embed.proj.weight"]  # [D, C, k, k]
        fc1 = sd["lvt.blocks.0.mlp.fc1.weight"]  # [mlp, D]
        head1, head2 = sd["consensus.mlp_head.1.weight"], sd["consensus.mlp_head.4.weight"]  # [M, D], [classes, M]
        temp = sd["lvt.temp_embed"]  # [1, E, 1, D]
    except KeyError as err:
        raise DataError(f"not an official LVT state dict: {err.args[0]} is missing") from None
    d = proj.shape[0]
    depth = 1 + max(int(m.group(1)) for k in official_sd if (m := _BLOCK.search(k)))
    gate = next((sd[k] for k in ("lvt.blocks.0.attn.q_gate.weight", "lvt.blocks.0.attn.pgate.weight") if k in sd), None)
    fields = dict(
        hidden_size=d, num_channels=proj.shape[1], patch_size=proj.shape[2], patch_stride=14,
        patch_padding=proj.shape[2] // 2, num_hidden_layers=depth, mlp_ratio=fc1.shape[0] / d,
        qkv_bias="lvt.blocks.0.attn.qkv.bias" in sd, use_gate=gate is not None,
        share_gate="lvt.blocks.0.attn.pgate.weight" in sd,
        num_attention_heads=d // gate.shape[0] if gate is not None else 8,  # lvit_v2_base: 8 heads
        temporal_embed_size=temp.shape[1], head_hidden_size=head1.shape[0], num_labels=head2.shape[0],
    )
    fields.update(_fields_from_cfg(cfg_yaml, depth, fields))
    fields.update(overrides)
    try:
        return LvtConfig(**fields)
    except (TypeError, ValueError) as err:
        raise DataError(f"official LVT checkpoint: {err}") from None


def _fields_from_cfg(cfg_yaml: str | None, depth: int, inferred: dict) -> dict:
    """What the SlowFast config says that the weights cannot (an absent key keeps LvtConfig's default)."""
    if not cfg_yaml:
        return {}
    import yaml

    try:
        cfg = yaml.safe_load(cfg_yaml)
    except yaml.YAMLError as err:
        raise DataError(f"official LVT checkpoint: its cfg is not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(cfg, dict):
        return {}
    data, xvit, model = (cfg.get(k) or {} for k in ("DATA", "XVIT", "MODEL"))
    backbone = xvit.get("BACKBONE") or {}
    for key, want in (("ATTENTION_TYPE", "divided_time_space"), ("LINEAR_TYPE", "relu"), ("USE_MOTION", False),
                      ("USE_3D", False)):
        if key in cfg and cfg[key] != want:
            raise DataError(f"official LVT checkpoint uses {key}={cfg[key]}; vsuite's LVT is {key}={want}")
    if xvit.get("CONSENSUS_TYPE", "vit") != "vit":
        raise DataError(f"official LVT checkpoint uses XVIT.CONSENSUS_TYPE={xvit['CONSENSUS_TYPE']}; vsuite's is vit")
    if "USE_CGATE" in cfg and bool(cfg["USE_CGATE"]) != inferred["use_gate"]:
        raise DataError("official LVT checkpoint: USE_CGATE in its cfg disagrees with its weights")
    shifts = [on for on in (xvit.get("USE_XVIT", True), xvit.get("USE_SpatialShift", False)) if on]
    locations = set(xvit.get("LOCATIONS_LIST", [9, 10, 11]))
    if shifts and not set(range(depth)) <= locations:
        raise DataError(f"official LVT checkpoint shifts only in blocks {sorted(locations & set(range(depth)))}; "
                        "vsuite's LVT shifts in every block")
    pairs = [("num_frames", data.get("NUM_FRAMES")), ("image_size", data.get("TEST_CROP_SIZE")),
             ("image_mean", data.get("MEAN")), ("image_std", data.get("STD")),
             ("temporal_shift", xvit.get("USE_XVIT")), ("num_segments", xvit.get("NUM_SEGMENTS")),
             ("shift_div", xvit.get("SHIFT_DIV")), ("spatial_shift", xvit.get("USE_SpatialShift")),
             ("spatial_shift_size", xvit.get("SHIFT_SIZE")), ("classifier_dropout", model.get("DROPOUT_RATE")),
             ("drop_path_rate", backbone.get("DROP_PATH_RATE")),
             ("attention_dropout", backbone.get("DROP_ATTN_RATE"))]
    return {name: value for name, value in pairs if value is not None}


def load_official_checkpoint(path: str | os.PathLike, **config_overrides):
    """An official LVT checkpoint file -> LvtForVideoClassification in eval mode (save_pretrained writes the
    HF folder). `config_overrides` are LvtConfig fields (num_frames=..., spatial_shift_size=...)."""
    from .modeling_lvt import LvtForVideoClassification

    ckpt = load_pickled_checkpoint(path, what=WHAT, placeholder_modules=("slowfast.", "fvcore.", "yacs."))
    state, cfg_yaml = _split(ckpt, path)
    config = config_from_state_dict(state, cfg_yaml if isinstance(cfg_yaml, str) else None, **config_overrides)
    model = LvtForVideoClassification(config)
    return load_converted_weights(model, convert_state_dict(state), path, "official LVT weights")


def _split(ckpt, path) -> tuple[dict, object]:
    """(state dict, cfg) of a SlowFast checkpoint, or of a bare state dict."""
    import torch

    if isinstance(ckpt, dict) and isinstance(ckpt.get("model_state"), dict):
        state, cfg = ckpt["model_state"], ckpt.get("cfg")
    elif isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        state, cfg = ckpt, None
    else:
        raise DataError(f"{path}: not {WHAT}: no 'model_state' state dict in it")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise DataError(f"{path}: not {WHAT}: {bad[0]} is not a tensor")
    return state, cfg


__all__ = ["config_from_state_dict", "convert_state_dict", "load_official_checkpoint"]
