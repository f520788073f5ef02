"""`vsuite describe VIDEO`: fine-grained audible video description with AVLFormer (FAVD).

The clip's frames and sound (vsuite.data.favd_clips, the model's protocol: frame count, size, audio length)
go through the model; the generated paragraph is split as FAVDBench defines it (vsuite.data.favdbench.
split_description: the first sentence is the summary, the last one or two are about the sound, the rest is
visual detail). Plain output: three labelled lines on stdout; --json: one document with the paragraph, the
parts, the model, the decoder and the sampling protocol. A video without sound is a one-line DataError
(exit 5) before the model loads; a missing model is exit 4.

`describe_clips(model, clips, ...)` (vsuite.models.describer) is the same pipeline over many clips, used by
`vsuite eval favdbench --model`: {clip id: description}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ModelNotFoundError, UsageError

from ..models.describer import LANGS, check_lang, clip_protocol, load_describer


def run(video: str, *, model: str | None, lang: str = "en", as_json: bool = False, beams: int = 1,
        device: str = "auto", max_length: int | None = None) -> dict:
    """Describe one video; prints the result (stdout) and returns it as a dict."""
    from ..data.favd_clips import load_clip_audio, load_clip_frames
    from ..data.favdbench import split_description
    from ..media import errors as media_errors
    from ..models.avlformer.describe_config import decode_caption

    if lang not in LANGS:
        raise UsageError(f"--lang must be en or zh, got {lang!r}")
    path = Path(video)
    if not path.is_file():
        raise media_errors.not_found(path)
    from ..media import probe

    info = probe(path)
    if not info.has_audio:  # before the model loads: AVLFormer describes what it sees and hears
        raise media_errors.no_audio(path)
    if not model:
        raise ModelNotFoundError("no AVLFormer model given: pass --model FOLDER (e.g. runs/favd-tiny-cpu/model from "
                                 "`vsuite finetune finetune/favd-tiny-cpu`); no pretrained describer ships with vsuite")
    net, tokenizer, folder = load_describer(model, device)
    check_lang(folder, lang)
    protocol = clip_protocol(net.config)
    dev = next(net.parameters()).device
    wave = load_clip_audio(path, protocol)
    frames = load_clip_frames(path, protocol)
    ids = net.generate_ids(frames[None].to(dev), wave[None].to(dev), num_beams=beams, max_length=max_length)[0]
    text = decode_caption(tokenizer, ids, lang)
    summary, visual, audio = split_description(text, lang)
    result = {"video": str(path), "model": str(folder), "lang": lang, "description": text, "summary": summary,
              "visual": visual, "audio": audio,
              "decoder": {"num_beams": beams, "max_length": max_length or net.config.max_gen_length,
                          "slot": "[MASK] appended each step (official)"},
              "protocol": {**protocol.record(), "fps": info.fps, "duration": info.duration}}
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(f"summary: {summary}\nvisual: {' '.join(visual)}\naudio: {' '.join(audio)}\n")
    sys.stdout.flush()
    return result
