"""Converters from published checkpoints to vsuite's AVLFormer (all read with torch.load(weights_only=True)
through vsuite.models.pickled_checkpoint; nothing in a file is executed).

  Video Swin   swin_base_patch244_window877_kinetics600_22k.pth (SwinTransformer/Video-Swin-Transformer
               release, mmaction layout): {"meta", "state_dict": {"backbone.<name>", "cls_head.*"}}
               -> swin.backbone.<name>; cls_head and the stored relative_position_index buffers are dropped.
  PaSST        passt-s-f128-p16-s10-ap.476-swa.pt (kkoutini/PaSST release, `passt_s_swa_p16_128_ap476`): a
               flat state dict {patch_embed.proj, cls_token, dist_token, new_pos_embed, freq_new_pos_embed,
               time_new_pos_embed, blocks.N.*, norm, head.0 (LayerNorm), head.1, head_dist}
               -> passt.net.<name>; the classifier heads are dropped (AVLFormer builds PaSST with
               n_classes=0 and never calls them).
  AVLFormer    the official model.bin (release r-pt-model): the VideoTransformer state dict, keys as vsuite's
               (swin.backbone.*, fc, passt.net.*, passt.linear, learn_vid_att.weight,
               trans_encoder.bert.*, trans_encoder.cls.predictions.*); dropped: relative_position_index
               buffers, the BERT pooler (trans_encoder.bert.pooler.*), the unused image-feature head
               (trans_encoder.cls_img_feat.*), PaSST's heads (passt.net.head*); prefixes `module.` (DDP)
               and `_checkpoint_wrapped_module.` (activation checkpoint wrappers) are removed.

Verified offline only against the key layouts read from the official code (tests build tiny state dicts in
those layouts); the real files could not be downloaded here, so their exact key sets (e.g. extra metadata
entries) are unverified: an unknown key is reported, never silently ignored.
"""

from __future__ import annotations

import os

from ..pickled_checkpoint import load_converted_weights, load_pickled_checkpoint

_WRAPPER_PREFIXES = ("module.", "_checkpoint_wrapped_module.")
_FRAMEWORKS = ("mmcv.", "mmaction.", "mmengine.", "fairscale.", "src.")


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _WRAPPER_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
        key = key.replace("._checkpoint_wrapped_module.", ".")
    return key


def _state_of(ckpt, path, what: str) -> dict:
    import torch

    from ...errors import DataError

    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not ckpt:
        raise DataError(f"{path}: no state dict found in {what}")
    bad = [k for k, v in ckpt.items() if not torch.is_tensor(v)]
    if bad:
        raise DataError(f"{path}: {what} holds non-tensor entries ({', '.join(map(str, bad[:3]))})")
    return {_strip(str(k)): v for k, v in ckpt.items()}


def convert_swin_state_dict(state: dict) -> dict:
    """Published Video Swin (backbone.* / cls_head.*) -> {swin.backbone.*}."""
    out = {}
    for k, v in state.items():
        k = _strip(k)
        if k.startswith("cls_head.") or k.endswith("relative_position_index"):
            continue
        if k.startswith("backbone."):
            k = k[len("backbone."):]
        out[f"swin.backbone.{k}"] = v
    return out


def convert_passt_state_dict(state: dict) -> dict:
    """Published PaSST (flat, with net. prefix or without) -> {passt.net.*}."""
    out = {}
    for k, v in state.items():
        k = _strip(k)
        if k.startswith("net."):
            k = k[len("net."):]
        if k.startswith(("head.", "head_dist.", "pre_logits.")):
            continue
        out[f"passt.net.{k}"] = v
    return out


def convert_avlformer_state_dict(state: dict) -> dict:
    """Official AVLFormer model.bin -> vsuite names (see the module docstring for what is dropped)."""
    drop = ("trans_encoder.bert.pooler.", "trans_encoder.cls_img_feat.", "passt.net.head.", "passt.net.head_dist.",
            "passt.net.pre_logits.", "passt.mel.")
    out = {}
    for k, v in state.items():
        k = _strip(k)
        if k.startswith(drop) or k.endswith("relative_position_index"):
            continue
        out[k] = v
    return out


def _load_part(model, state: dict, path, what: str, prefix: str):
    """Load `state` (keys under `prefix`) strictly for that part of the model."""
    from ...errors import DataError

    own = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        problems = [f"missing {', '.join(missing[:3])}"] if missing else []
        problems += [f"unexpected {', '.join(unexpected[:3])}"] if unexpected else []
        raise DataError(f"{path}: {what} do not fit the model's {prefix.rstrip('.')} ({'; '.join(problems)})")
    wrong = [k for k in state if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        k = wrong[0]
        raise DataError(f"{path}: {what}: {k} has shape {tuple(state[k].shape)}, the model's is "
                        f"{tuple(own[k].shape)} (set [model.config] to the checkpoint's sizes)")
    model.load_state_dict(state, strict=False)
    return model


def load_published_swin(model, path: str | os.PathLike):
    what = "a published Video Swin checkpoint"
    state = _state_of(load_pickled_checkpoint(path, what=what, placeholder_modules=_FRAMEWORKS), path, what)
    return _load_part(model, convert_swin_state_dict(state), path, "Video Swin weights", "swin.backbone.")


def load_published_passt(model, path: str | os.PathLike):
    what = "a published PaSST checkpoint"
    state = _state_of(load_pickled_checkpoint(path, what=what, placeholder_modules=_FRAMEWORKS), path, what)
    return _load_part(model, convert_passt_state_dict(state), path, "PaSST weights", "passt.net.")


def load_official_avlformer(model, path: str | os.PathLike):
    """The official model.bin into `model` (built with the checkpoint's sizes), strictly."""
    what = "the official AVLFormer model.bin"
    state = _state_of(load_pickled_checkpoint(path, what=what, placeholder_modules=_FRAMEWORKS), path, what)
    load_converted_weights(model, convert_avlformer_state_dict(state), path, "official AVLFormer weights")
    return model.train()


__all__ = ["convert_avlformer_state_dict", "convert_passt_state_dict", "convert_swin_state_dict",
           "load_official_avlformer", "load_published_passt", "load_published_swin"]
