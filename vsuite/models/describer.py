"""The AVLFormer describer as `vsuite describe`, `vsuite eval favdbench --model` and the describe finetune use it.

One floor below the tasks, because two task modules need the same model loading and clip pipeline:
  - `load_describer(model, device)`: the AVLFormer folder (or Hub id) in eval mode + its tokenizer;
  - `model_lang` / `check_lang`: the language a finetuned model was trained on (RECORD_FILE);
  - `describe_clips(model, clips, ...)`: {clip id: description} over FAVDClip objects or (id, video, audio) tuples;
    `describe_with(net, tokenizer, clips, ...)` the same with a model in memory (validation during training).
Frames and audio come from vsuite.data.favd_clips with the model's protocol (frame count, size, audio length).
Importing this module is light: torch and transformers load inside the functions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..errors import ModelNotFoundError, UsageError

RECORD_FILE = "vsuite_describe.json"  # written by the describe finetune: {"lang": "en" | "zh"}
LANGS = ("en", "zh")


def load_describer(model: str, device: str = "auto"):
    """(model in eval mode on the device, tokenizer, model folder) of an AVLFormer folder or Hub id."""
    import torch
    from transformers import AutoTokenizer

    from ..devices import resolve_device
    from ..hub import resolve_model_dir
    from .avlformer import AvlformerForDescription

    folder = resolve_model_dir(model)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelNotFoundError(f"{folder} has no config.json: pass a folder written by `vsuite finetune` "
                                 "(kind = \"describe\"), e.g. runs/favd-tiny-cpu/model")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != "avlformer":
        raise ModelNotFoundError(f"{folder} holds a {model_type!r} model; describe needs an AVLFormer "
                                 "(model_type \"avlformer\") from `vsuite finetune` with kind = \"describe\"")
    if not (folder / "tokenizer_config.json").is_file():
        raise ModelNotFoundError(f"{folder} has no tokenizer (tokenizer_config.json); save it beside the weights")
    from ..hub import quiet_loading

    quiet_loading()
    dev = resolve_device(device)
    net = AvlformerForDescription.from_pretrained(folder, dtype=torch.float32).to(dev).eval()
    return net, AutoTokenizer.from_pretrained(folder), folder


def model_lang(folder: Path) -> str | None:
    path = Path(folder) / RECORD_FILE
    try:
        return json.loads(path.read_text()).get("lang") if path.is_file() else None
    except (OSError, ValueError):
        return None


def check_lang(folder: Path, lang: str) -> None:
    if lang not in LANGS:
        raise UsageError(f"--lang must be en or zh, got {lang!r}")
    trained = model_lang(folder)
    if trained and trained != lang:
        raise UsageError(f"{folder} was trained on {trained} descriptions; --lang {lang} needs a model finetuned "
                         f"on annotations_{'cn' if lang == 'zh' else 'en'}.json")


def clip_protocol(config):
    from ..data.favd_clips import ClipProtocol

    return ClipProtocol(config.num_frames, config.image_size, tuple(config.image_mean), tuple(config.image_std),
                        config.sample_rate, config.audio_samples)


def _clip_fields(clip) -> tuple[str, str, str | None]:
    """(id, video, audio) of a FAVDClip-like object or an (id, video[, audio]) tuple."""
    if isinstance(clip, (tuple, list)):
        return str(clip[0]), str(clip[1]), (str(clip[2]) if len(clip) > 2 and clip[2] else None)
    return str(clip.id), str(clip.video_path), (str(clip.audio_path) if getattr(clip, "audio_path", None) else None)


def describe_clips(model: str, clips, *, lang: str = "en", device: str = "auto", beams: int | None = None,
                   batch_size: int = 4, max_length: int | None = None) -> dict[str, str]:
    """{clip id: description} for FAVDClip objects (or (id, video, audio) tuples), `beams` wide (default 1,
    the official inference default), by the AVLFormer folder or Hub id `model`."""
    net, tokenizer, folder = load_describer(model, device)
    check_lang(folder, lang)
    return describe_with(net, tokenizer, clips, lang=lang, beams=beams, batch_size=batch_size, max_length=max_length)


def describe_with(net, tokenizer, clips, *, lang: str = "en", beams: int | None = None, batch_size: int = 4,
                  max_length: int | None = None, load_media: Callable | None = None) -> dict[str, str]:
    """`describe_clips` with a model already in memory (eval mode, no grad: the caller's). `load_media(id, video,
    audio)` -> (pixels [T, 3, S, S], wave [samples]) replaces decoding (e.g. a cache kept across evaluations)."""
    import torch

    from ..data.favd_clips import load_clip
    from .avlformer.describe_config import decode_caption

    items = [_clip_fields(c) for c in clips]
    protocol, dev = clip_protocol(net.config), next(net.parameters()).device
    load = load_media or (lambda _cid, video, audio: load_clip(video, audio, protocol))
    out: dict[str, str] = {}
    for start in range(0, len(items), max(1, batch_size)):
        chunk = items[start:start + batch_size]
        media = [load(*item) for item in chunk]
        pixels = torch.stack([m[0] for m in media]).to(dev)
        waves = torch.stack([m[1] for m in media]).to(dev)
        ids = net.generate_ids(pixels, waves, num_beams=beams or 1, max_length=max_length)
        for (cid, _, _), seq in zip(chunk, ids):
            out[cid] = decode_caption(tokenizer, seq, lang)
    return out


__all__ = ["LANGS", "RECORD_FILE", "check_lang", "clip_protocol", "describe_clips", "describe_with", "load_describer",
           "model_lang"]
