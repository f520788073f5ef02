"""Voice-over for `vsuite caption --voiceover`: Whisper (through transformers) on each scene's audio.

Each scene is cut into windows of at most 30 s (Whisper's input length); each window gives one segment
(start, end, text) in seconds of the video. `asr_folder` runs while planning: a video without sound or a
missing Whisper model fails before scene detection. The segments are cached in OUT/scenes/voiceover.json.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...console import log
from ...data import vript
from ...errors import ModelNotFoundError
from .plan import cache_key, model_folder

WINDOW_S = 30.0
SAMPLE_RATE = 16000  # Whisper's input rate


def asr_folder(path: Path, info, model_ref: str) -> Path:
    """The Whisper model's local folder; NoAudioStreamError (exit 5) or ModelNotFoundError (exit 4)."""
    from ...media import NoAudioStreamError

    if not info.has_audio:
        raise NoAudioStreamError(f"{path} has no audio track, so --voiceover has nothing to transcribe; "
                                 "drop --voiceover", path)
    return model_folder(model_ref, "--asr-model")


def voiceover(plan, model_ref: str) -> list[tuple[float, float, str]]:
    """Segments of the whole video, from OUT/scenes/voiceover.json when the model and scene spans match."""
    cache = plan.out / "scenes" / "voiceover.json"
    key = cache_key(str(plan.asr_dir), plan.spans)
    try:
        rec = json.loads(cache.read_text(encoding="utf-8"))
        if rec.get("key") == key:
            segments = [(float(s), float(e), str(t)) for s, e, t in rec["segments"]]
            log(f"voice-over: {len(segments)} segment(s) from {cache}")
            return segments
    except (OSError, ValueError, KeyError, TypeError):
        pass
    segments = transcribe(plan.video, plan.spans, plan.asr_dir, device=plan.device)
    vript.atomic_write_json(cache, {"key": key, "model": model_ref, "segments": [list(x) for x in segments]})
    log(f"voice-over: {len(segments)} segment(s) transcribed with {model_ref}")
    return segments


def transcribe(path, spans: list[tuple[float, float]], folder: Path, *, device,
               max_new_tokens: int = 96) -> list[tuple[float, float, str]]:
    """Whisper on windows of at most 30 s inside each span; `device` is a torch.device."""
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor
    from transformers.utils import logging as hf_logging

    from ...media import load_audio

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        processor = AutoProcessor.from_pretrained(folder)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(folder).to(device).eval()
    except (OSError, ValueError, KeyError) as err:
        raise ModelNotFoundError(f"{folder} does not load as a Whisper model: {str(err).splitlines()[0][:200]}"
                                 ) from None
    limit = int(getattr(model.config, "max_target_positions", 448))
    max_new_tokens = max(1, min(max_new_tokens, limit - 8))  # room for the start/language/task tokens
    segments = []
    for start, end in spans:
        t = start
        while t < end - 1e-3:
            stop = min(end, t + WINDOW_S)
            # one window at a time: memory stays bounded on long videos
            chunk = load_audio(path, SAMPLE_RATE, start=t, end=stop).numpy()  # [samples] mono float
            if chunk.size >= SAMPLE_RATE // 100:  # under 10 ms there is nothing to hear
                feats = processor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features.to(device)
                with torch.inference_mode():
                    ids = model.generate(feats, max_new_tokens=max_new_tokens)
                text = vript.clean_text(processor.batch_decode(ids, skip_special_tokens=True)[0])
                if text:
                    segments.append((t, stop, text))
            t = stop
    return segments
