"""The audio-visual segmenter (vsuite.models.avs) as the `segment`, `eval avsbench` and `finetune` commands use it.

One floor below the tasks, because three task modules need the same things:
  - `SegmentModelConfig`: the [model] table of a `[task] kind = "segment"` finetune recipe;
  - `model_folder(ref)`: `--model` -> a local model folder (a run folder gives its val-selected `best/`
    checkpoint when there is one, else its newest complete checkpoint; Hub ids through vsuite.hub);
  - `load_segmenter(folder, device)`: the AVSModel, float32, eval mode;
  - `frames_to_pixels` / `window_logits`: the one preprocessing of frames (squash-resize to the model's
    image_size, ImageNet normalisation, as AVSBench's loaders do) and the one forward call.

Importing this module is light (pydantic only): torch and transformers load inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ModelNotFoundError

BEST = "best"  # RUN/best: the checkpoint selected on the validation split by `vsuite finetune` (kind segment)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # AVSBench / AVS-bidirectional loaders: transforms.Normalize
IMAGENET_STD = (0.229, 0.224, 0.225)


class SegmentModelConfig(BaseModel):
    """[model] of a segment finetune recipe: a new AVSModel from [model.config] (fields of
    vsuite.models.avs.AVSConfig; `setting` follows data.split when not given), or `init` = a model folder,
    run folder or Hub id to continue from."""

    model_config = ConfigDict(extra="forbid", strict=True)

    config: dict[str, Any] = Field(default_factory=dict, description="AVSConfig fields")
    init: str = Field("", description="model folder / run folder / Hub id to start from")


def model_folder(ref: str, flag: str = "--model") -> Path:
    """A model folder, a run folder (RUN/best when present, else its newest complete checkpoint) or a Hub id ->
    a local folder with config.json and weights. ModelNotFoundError (exit 4) otherwise."""
    from ..hub import weight_files
    from ..train.checkpoint import model_or_run_folder

    path = Path(ref).expanduser()
    if path.is_dir() and not (path / "config.json").exists() and (path / BEST / "config.json").is_file():
        folder = path / BEST
    elif path.is_file():
        raise ModelNotFoundError(f"{flag} {ref} is a file; pass a model folder (config.json + model.safetensors), "
                                 "a run folder of `vsuite finetune` or a Hub id")
    else:
        folder = model_or_run_folder(ref)
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{flag} {ref}: no config.json in {folder}; pass a model folder saved by vsuite "
                                 "finetune (e.g. RUN/best or RUN/checkpoints/step-XXXXXXXX) or a run folder")
    weight_files(folder)  # ModelNotFoundError when there are no weights
    return folder


def load_segmenter(folder: Path, device):
    """The AVSModel of a model folder: float32, eval mode, on `device`."""
    import torch
    from transformers import AutoConfig

    from . import avs  # noqa: F401  (registers model_type "vsuite_avs")
    from .avs import AVSModel

    from ..hub import quiet_loading

    quiet_loading()
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # denormal activations are ~100x slower on x86 CPUs
    try:
        config = AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError, OSError) as err:
        raise ModelNotFoundError(f"{folder}: not a model config vsuite knows ({str(err).splitlines()[0]})") from None
    if getattr(config, "model_type", None) != "vsuite_avs":
        raise ModelNotFoundError(f"{folder} holds a {config.model_type!r} model, not an audio-visual segmenter "
                                 "(vsuite_avs); pass a model trained with `vsuite finetune` kind segment")
    try:
        model = AVSModel.from_pretrained(folder, config=config, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError) as err:
        raise ModelNotFoundError(f"{folder}: the weights do not load ({str(err).splitlines()[0]})") from None
    return model.to(device).eval()


def frames_to_pixels(frames, size: int):
    """uint8 RGB frames [N, H, W, 3] -> float32 [N, 3, size, size]: squash-resized (bilinear, antialiased; the
    benchmark resizes every frame to a square, whatever its aspect), /255, ImageNet-normalised."""
    import torch
    import torch.nn.functional as F

    x = frames.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def window_logits(model, pixel_values, audio_log_mel, device):
    """Mask logits [B, T, H, W] (float32, CPU) of windows pixel_values [B, T, 3, S, S], audio_log_mel
    [B, T, 1, 96, 64]; no grad."""
    import torch

    with torch.no_grad():
        out = model(pixel_values=pixel_values.to(device), audio_log_mel=audio_log_mel.to(device))
    return out.logits[:, :, 0].float().cpu()


__all__ = ["BEST", "IMAGENET_MEAN", "IMAGENET_STD", "SegmentModelConfig", "frames_to_pixels", "load_segmenter",
           "model_folder", "window_logits"]
