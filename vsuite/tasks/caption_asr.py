"""Voice-over for `vsuite caption --voiceover`: Whisper (through transformers) on each scene's audio.

Each scene is cut into windows of at most 30 s (Whisper's input length); each window gives one segment
(start, end, text) in seconds of the video. A video without an audio track gives no segments (a warning).
"""

from __future__ import annotations

from ..console import warn

WINDOW_S = 30.0


def transcribe(path, spans: list[tuple[float, float]], model_ref: str, *, device: str = "auto",
               max_new_tokens: int = 96) -> list[tuple[float, float, str]]:
    import torch

    from ..hub import resolve_model_dir
    from ..media import NoAudioStreamError, load_audio
    from ..models.vlm import _resolve_device

    from ..media import probe

    if not getattr(probe(path), "has_audio", True):
        warn(f"{path} has no audio track: captioning without voice-over")
        return []
    folder = resolve_model_dir(model_ref)
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    dev = _resolve_device(device)
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder).to(dev).eval()
    limit = int(getattr(model.config, "max_target_positions", 448))
    max_new_tokens = max(1, min(max_new_tokens, limit - 8))  # room for the start/language/task tokens
    segments = []
    for start, end in spans:
        t = start
        while t < end - 1e-3:
            stop = min(end, t + WINDOW_S)
            try:  # one window at a time: memory stays bounded on long videos
                chunk = load_audio(path, 16000, start=t, end=stop).numpy()
            except NoAudioStreamError:
                warn(f"{path} has no audio track: captioning without voice-over")
                return []
            if chunk.size >= 160:
                feats = processor(chunk, sampling_rate=16000, return_tensors="pt").input_features.to(dev)
                with torch.inference_mode():
                    ids = model.generate(feats, max_new_tokens=max_new_tokens)
                text = processor.batch_decode(ids, skip_special_tokens=True)[0]
                from ..data.vript import clean_text

                text = clean_text(text)
                if text:
                    segments.append((t, stop, text))
            t = stop
    return segments
