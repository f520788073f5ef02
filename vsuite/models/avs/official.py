"""Official weights -> vsuite's AVSModel: the AVS-bidirectional checkpoint, the backbones, VGGish.

Every file is read with torch.load(weights_only=True) only (vsuite/models/pickled_checkpoint.py) or as safetensors.

AVS-bidirectional checkpoint (train.py: `torch.save(model.state_dict(), "<TASK>_best.pth")`). Rename table:
  module.*                      stripped when every key has it (DataParallel)
  encoder.<official backbone>   -> encoder.<transformers backbone>: PVT_V2 / TORCHVISION_RESNET below
  audio_neck.*                  dropped: built by the official AVSModel but never called in its forward
  decoder.short_connect_with_decode_module.0.resConfUnit1.*   dropped: likewise never called (the deepest
                                fusion block has no skip input)
  corr_atten.*                  dropped when motion=False (the official model always builds it)
  mask_encoder.*, maksed_visual_to_audio.*   dropped when projection=False
  neck.*, fusion_modules.*, decoder.*, corr_atten.*, mask_encoder.*, maksed_visual_to_audio.*   unchanged
  audio_backbone.* (VGGish)     not in the file (the official trainer keeps VGGish outside the model): from
                                `vggish_path` (vggish-10086976.pth) through convert_vggish_state_dict

PVT_V2 (pvt_v2_b5.pth, model/encoder/pvt.py) -> transformers PvtV2Model, stage i = 1..4 -> layers.{i-1}:
  patch_embed{i}.proj / .norm    -> encoder.layers.{i-1}.patch_embedding.proj / .layer_norm
  block{i}.{j}.norm1 / .norm2    -> encoder.layers.{i-1}.blocks.{j}.layer_norm_1 / .layer_norm_2
  block{i}.{j}.attn.q            -> ...attention.query
  block{i}.{j}.attn.kv           -> ...attention.key (rows [0, C)) and ...attention.value (rows [C, 2C))
  block{i}.{j}.attn.proj / .sr / .norm -> ...attention.proj / .spatial_reduction / .layer_norm
  block{i}.{j}.mlp.fc1 / .dwconv.dwconv / .fc2 -> ...mlp.dense1 / .dwconv.dwconv / .dense2
  norm{i}                        -> encoder.layers.{i-1}.layer_norm
  head.*                         dropped (the ImageNet classifier; the official AVS encoder has none)

TORCHVISION_RESNET (resnet50-19c8e357.pth) -> transformers ResNetModel:
  conv1 / bn1                    -> embedder.embedder.convolution / .normalization
  layer{s}.{b}.conv{k} / bn{k}   -> encoder.stages.{s-1}.layers.{b}.layer.{k-1}.convolution / .normalization
  layer{s}.{b}.downsample.0 / .1 -> encoder.stages.{s-1}.layers.{b}.shortcut.convolution / .normalization
  fc.*                           dropped
  (files older than torch 0.4 have no BatchNorm num_batches_tracked; those buffers then start at 0)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ...errors import DataError, ModelNotFoundError
from ..pickled_checkpoint import load_converted_weights, load_pickled_checkpoint
from .configuration_avs import AVSConfig
from .vggish import convert_vggish_state_dict

WHAT = "an official AVS-bidirectional checkpoint (<TASK>_best.pth)"

_PVT_RULES = [
    (re.compile(r"^patch_embed(\d)\.proj\.(.+)$"), "encoder.layers.{s}.patch_embedding.proj.{1}"),
    (re.compile(r"^patch_embed(\d)\.norm\.(.+)$"), "encoder.layers.{s}.patch_embedding.layer_norm.{1}"),
    (re.compile(r"^block(\d)\.(\d+)\.norm1\.(.+)$"), "encoder.layers.{s}.blocks.{1}.layer_norm_1.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.norm2\.(.+)$"), "encoder.layers.{s}.blocks.{1}.layer_norm_2.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.attn\.q\.(.+)$"), "encoder.layers.{s}.blocks.{1}.attention.query.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.attn\.proj\.(.+)$"), "encoder.layers.{s}.blocks.{1}.attention.proj.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.attn\.sr\.(.+)$"),
     "encoder.layers.{s}.blocks.{1}.attention.spatial_reduction.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.attn\.norm\.(.+)$"), "encoder.layers.{s}.blocks.{1}.attention.layer_norm.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.mlp\.fc1\.(.+)$"), "encoder.layers.{s}.blocks.{1}.mlp.dense1.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.mlp\.fc2\.(.+)$"), "encoder.layers.{s}.blocks.{1}.mlp.dense2.{2}"),
    (re.compile(r"^block(\d)\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)$"),
     "encoder.layers.{s}.blocks.{1}.mlp.dwconv.dwconv.{2}"),
    (re.compile(r"^norm(\d)\.(.+)$"), "encoder.layers.{s}.layer_norm.{1}"),
]
_PVT_KV = re.compile(r"^block(\d)\.(\d+)\.attn\.kv\.(weight|bias)$")

_RESNET_RULES = [
    (re.compile(r"^conv1\.(.+)$"), "embedder.embedder.convolution.{0}"),
    (re.compile(r"^bn1\.(.+)$"), "embedder.embedder.normalization.{0}"),
    (re.compile(r"^layer(\d)\.(\d+)\.conv(\d)\.(.+)$"), "encoder.stages.{s}.layers.{1}.layer.{k}.convolution.{3}"),
    (re.compile(r"^layer(\d)\.(\d+)\.bn(\d)\.(.+)$"), "encoder.stages.{s}.layers.{1}.layer.{k}.normalization.{3}"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.0\.(.+)$"), "encoder.stages.{s}.layers.{1}.shortcut.convolution.{2}"),
    (re.compile(r"^layer(\d)\.(\d+)\.downsample\.1\.(.+)$"),
     "encoder.stages.{s}.layers.{1}.shortcut.normalization.{2}"),
]


def _apply(rules, key: str) -> str | None:
    """The renamed key, or None. Templates: {0}, {1}... the regex groups; {s} group 0 minus 1 (stage),
    {k} group 2 minus 1 (conv index)."""
    for pattern, template in rules:
        m = pattern.match(key)
        if m:
            groups = m.groups()
            named = {}
            if "{s}" in template:
                named["s"] = int(groups[0]) - 1
            if "{k}" in template:
                named["k"] = int(groups[2]) - 1
            return template.format(*groups, **named)
    return None


def convert_pvt_v2_state_dict(sd: dict) -> dict:
    """Official PVT-v2 keys (pvt_v2_b5.pth, or the `encoder.*` part of an AVS checkpoint without the prefix)
    -> transformers PvtV2Model keys. The fused `attn.kv` is split into key and value."""
    out, unknown = {}, []
    for key, value in sd.items():
        if key.startswith("head."):
            continue
        if m := _PVT_KV.match(key):
            stage, block, kind = int(m.group(1)) - 1, m.group(2), m.group(3)
            half = value.shape[0] // 2
            prefix = f"encoder.layers.{stage}.blocks.{block}.attention."
            out[prefix + f"key.{kind}"] = value[:half]
            out[prefix + f"value.{kind}"] = value[half:]
            continue
        new = _apply(_PVT_RULES, key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise DataError(f"not an official PVT-v2 state dict: unexpected keys {', '.join(unknown[:3])}")
    return out


def convert_torchvision_resnet_state_dict(sd: dict) -> dict:
    """torchvision ResNet keys (resnet50-19c8e357.pth) -> transformers ResNetModel keys (fc dropped)."""
    out, unknown = {}, []
    for key, value in sd.items():
        if key.startswith("fc."):
            continue
        new = _apply(_RESNET_RULES, key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise DataError(f"not a torchvision ResNet state dict: unexpected keys {', '.join(unknown[:3])}")
    return out


def _backbone_converter(config: AVSConfig):
    return convert_pvt_v2_state_dict if config.backbone == "pvt_v2_b5" else convert_torchvision_resnet_state_dict


def convert_official_avs_state_dict(sd: dict, config: AVSConfig) -> dict:
    """An official AVSModel state dict -> vsuite AVSModel keys (without audio_backbone.*); see the table above."""
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    dropped = ["audio_neck.", "decoder.short_connect_with_decode_module.0.resConfUnit1."]
    if not config.motion:
        dropped.append("corr_atten.")
    if not config.projection:
        dropped += ["mask_encoder.", "maksed_visual_to_audio."]
    kept = ("neck.", "fusion_modules.", "decoder.", "corr_atten.", "mask_encoder.", "maksed_visual_to_audio.")
    out, encoder, unknown = {}, {}, []
    for key, value in sd.items():
        if key.startswith(tuple(dropped)):
            continue
        if key.startswith("encoder."):
            encoder[key[len("encoder."):]] = value
        elif key.startswith(kept):
            out[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise DataError(f"not an official AVS-bidirectional state dict: unexpected keys {', '.join(unknown[:3])}")
    if not encoder:
        raise DataError("not an official AVS-bidirectional state dict: no encoder.* weights")
    out.update({"encoder." + k: v for k, v in _backbone_converter(config)(encoder).items()})
    return out


# ----------------------------------------------------------------------------- reading files
def _read_tensors(path: str | os.PathLike, what: str) -> dict:
    """A flat {name: tensor} from a safetensors or torch.save file (weights_only), or from a model folder."""
    import torch

    file = Path(path)
    if file.is_dir():
        from ...hub import load_state_dict

        return load_state_dict(file)
    if not file.is_file():
        raise ModelNotFoundError(f"{file}: no such file (expected {what})")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file), device="cpu")
        except Exception as err:
            raise DataError(f"cannot read {file}: {str(err).splitlines()[0] if str(err) else err}") from None
    state = load_pickled_checkpoint(file, what=what)
    for wrapper in ("state_dict", "model", "model_state"):  # common training-script wrappers
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{file}: not {what}: not a flat state dict of tensors")
    return dict(state)


def load_backbone_weights(backbone, config: AVSConfig, path: str | os.PathLike) -> None:
    """Pretrained backbone weights into `backbone` (strict): an official file (pvt_v2_b5.pth, torchvision
    resnet50-*.pth), or transformers weights (a folder, a Hub id such as OpenGVLab/pvt_v2_b5 or
    microsoft/resnet-50, or a safetensors file; the classifier is dropped)."""
    text = os.fspath(path)
    if Path(text).expanduser().exists():
        state = _read_tensors(Path(text).expanduser(), f"{config.backbone} backbone weights")
    else:
        from ...hub import load_state_dict, resolve_model_dir

        state = load_state_dict(resolve_model_dir(text, flag="backbone_path"))
    if any(k.startswith(("patch_embed1.", "block1.", "conv1.", "layer1.")) for k in state):
        state = _backbone_converter(config)(state)
    else:  # transformers layout, possibly inside a *ForImageClassification (pvt_v2.* / resnet.* + classifier.*)
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        for prefix in ("pvt_v2.", "resnet."):
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
    load_converted_weights(backbone, state, text, f"{config.backbone} backbone weights")


def load_vggish_weights(vggish, path: str | os.PathLike) -> None:
    """torchvggish weights (vggish-10086976.pth or a safetensors copy) into a VGGish (strict)."""
    state = convert_vggish_state_dict(_read_tensors(path, "torchvggish weights (vggish-10086976.pth)"))
    load_converted_weights(vggish, state, os.fspath(path), "VGGish weights")


def load_official_avs_checkpoint(path: str | os.PathLike, config: AVSConfig, *, vggish_path=None):
    """An official AVS-bidirectional checkpoint -> AVSModel in eval mode (save_pretrained writes the HF folder).

    `config` must describe the checkpoint (backbone, fusion, setting); every weight in the file must fit it.
    VGGish comes from `vggish_path` (or config.vggish_path); without one it keeps its initialisation and the
    model is only meaningful with precomputed `audio_features` (a warning says so)."""
    import warnings

    from .modeling_avs import AVSModel

    state = _read_tensors(path, WHAT)
    converted = convert_official_avs_state_dict(state, config)
    model = AVSModel(config)
    vggish = model.audio_backbone
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("audio_backbone.")}
    missing = sorted(set(own) - set(converted))
    # BatchNorm counters absent from pre-0.4 backbone files are filled by torch; anything else must be there
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    unexpected = sorted(set(converted) - set(own))
    if missing or unexpected:
        problems = [f"missing {', '.join(missing[:3])}"] if missing else []
        problems += [f"unexpected {', '.join(unexpected[:3])}"] if unexpected else []
        raise DataError(f"{path}: official AVS weights do not fit the configured model ({'; '.join(problems)}); "
                        "check backbone, fusion, motion and projection")
    try:
        model.load_state_dict(converted, strict=False)
    except RuntimeError as err:
        raise DataError(f"{path}: official AVS weights do not fit the configured model "
                        f"({str(err).strip().splitlines()[-1].strip()})") from None
    vggish_path = vggish_path if vggish_path is not None else config.vggish_path
    if vggish_path:
        load_vggish_weights(vggish, vggish_path)
    else:
        warnings.warn("no VGGish weights given (vggish_path): audio_log_mel inputs go through an untrained "
                      "VGGish; pass vggish_path or precomputed audio_features", stacklevel=2)
    return model.eval()


__all__ = ["convert_official_avs_state_dict", "convert_pvt_v2_state_dict", "convert_torchvision_resnet_state_dict",
           "load_backbone_weights", "load_official_avs_checkpoint", "load_vggish_weights"]
