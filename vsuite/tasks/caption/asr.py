"""Voice-over for `vsuite caption --voiceover`: Whisper (through transformers) on the whole video, once.

What Vript records (mutonix/Vript@3dd89c7, the real vriptor/training_data/videos/vript_long_videos/*/<id>_asr.jsonl):
one line per clip `{clip_id, duration, lang, scene_text: [{span: [s, e], text}], full_text}` with spans in
seconds from the clip's start and Whisper's own segment text. Vript ran faster-whisper (reference §1.1); so does
the Vriptor demo (vriptor/demo.py lines 55-77: `whisper_model.transcribe(audio_file, ...)` on the whole file,
one `[start, end] text` line per segment). vsuite does the same with transformers' Whisper:

- the whole audio track is transcribed with timestamps (long-form generation: Whisper's own segments, not
  fixed windows), in blocks of BLOCK_S seconds so memory stays bounded on long videos; a block's unfinished
  last segment is redone at the start of the next block;
- the language is detected once, on the first 30 s of audio (faster-whisper's default), with
  `model.detect_language`, and passed to every generate call; it is every record's `lang`. A checkpoint
  without language tokens (the English-only `*.en` ones) is English;
- the segments (video seconds) are cached in OUT/scenes/voiceover.json; outputs.py attaches them to the clips
  (vript.attach_segments) and writes <video_id>_asr.jsonl.

`asr_folder` runs while planning: a video without sound or a missing Whisper model fails before scene detection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...console import log
from ...data import vript
from ...errors import ModelNotFoundError
from .plan import cache_key, model_folder

SAMPLE_RATE = 16000  # Whisper's input rate
WINDOW_S = 30.0  # Whisper's input length
BLOCK_S = 600.0  # audio decoded and transcribed at a time: 10 min = 9.6M samples, 38 MB of float32

Segment = tuple[float, float, str]  # (start, end, text) in seconds of the video; text as Whisper wrote it


@dataclass
class Transcript:
    """The whole video's voice-over: Whisper segments on the video's clock and the detected language."""

    segments: list[Segment]
    lang: str
    model: str = ""


def asr_folder(path: Path, info, model_ref: str) -> Path:
    """The Whisper model's local folder; NoAudioStreamError (exit 5) or ModelNotFoundError (exit 4)."""
    from ...media import NoAudioStreamError

    if not info.has_audio:
        raise NoAudioStreamError(f"{path} has no audio track, so --voiceover has nothing to transcribe; "
                                 "drop --voiceover", path)
    return model_folder(model_ref, "--asr-model")


def prompt_segments(plan, transcript: Transcript | None, *, annotation: bool) -> list[Segment]:
    """The segments a prompt may use: none for a short video under Vript's annotation prompt.

    Vript gives the annotator the voice-over only outside its short-video collection (README.md line 221:
    `if scene in voiceovers_dict and 'short' not in args.video_dir:`); its asr.jsonl is still recorded for
    short videos (DATA.md: vript_short_videos_clips/<id>/<id>_asr.jsonl). vript.is_short_video says which
    videos are short (portrait, at most 10 min). Vriptor's own prompt (demo.py) uses the voice-over always.
    """
    if transcript is None:
        return []
    if annotation and _is_short(plan):
        log(f"voice-over: {plan.duration:.1f} s is a short video; as in Vript, the annotation prompt gets no "
            "voice-over (the ASR file is still written)")
        return []
    return list(transcript.segments)


def _is_short(plan) -> bool:
    from ...media import probe

    info = probe(plan.video)  # the header only
    return vript.is_short_video(plan.duration, int(info.width), int(info.height))


def voiceover(plan, model_ref: str, transcribe_fn=None) -> Transcript:
    """The whole video's transcript, from OUT/scenes/voiceover.json when the model and the video match.

    `transcribe_fn(path, folder, device=..., duration=...) -> Transcript` replaces Whisper (tests)."""
    cache = plan.out / "scenes" / "voiceover.json"
    stat = Path(plan.video).stat()
    key = cache_key(str(plan.asr_dir), str(Path(plan.video).resolve()), stat.st_size, int(stat.st_mtime))
    try:
        rec = json.loads(cache.read_text(encoding="utf-8"))
        if rec.get("key") == key:
            found = Transcript([(float(s), float(e), str(t)) for s, e, t in rec["segments"]], str(rec["lang"]),
                               str(rec.get("model", model_ref)))
            log(f"voice-over: {len(found.segments)} segment(s) ({found.lang}) from {cache}")
            return found
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = (transcribe_fn or transcribe)(plan.video, plan.asr_dir, device=plan.device, duration=plan.duration)
    found.model = model_ref
    vript.atomic_write_json(cache, {"key": key, "model": model_ref, "lang": found.lang,
                                    "segments": [list(x) for x in found.segments]})
    log(f"voice-over: {len(found.segments)} segment(s) transcribed with {model_ref}, language {found.lang}")
    return found


def _load(folder: Path, device):
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    from ...hub import quiet_loading

    quiet_loading(errors_only=True)
    try:
        processor = AutoProcessor.from_pretrained(folder)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(folder).to(device).eval()
    except (OSError, ValueError, KeyError) as err:
        raise ModelNotFoundError(f"{folder} does not load as a Whisper model: {str(err).splitlines()[0][:200]}"
                                 ) from None
    return processor, model


def language_codes(generation_config) -> dict[int, str]:
    """Token id -> language code ("<|pt|>" -> "pt") of a multilingual Whisper; {} for an English-only one."""
    table = getattr(generation_config, "lang_to_id", None) or {}
    if not getattr(generation_config, "is_multilingual", bool(table)):
        return {}
    return {int(i): tok.strip("<|>") for tok, i in table.items()}


def transcribe(path, folder: Path, *, device, duration: float | None = None) -> Transcript:
    """Whisper on the whole audio track: its timestamped segments (video seconds) and detected language."""
    import torch

    from ...media import load_audio, probe

    processor, model = _load(folder, device)
    gen = model.generation_config
    codes = language_codes(gen)
    no_ts = getattr(gen, "no_timestamps_token_id", None)
    timestamps = no_ts is not None and model.config.vocab_size > no_ts + 1  # timestamp tokens follow it
    # Whisper's decoding length per 30 s window: half the text context (openai/whisper decoding.py `sample_len`)
    max_new = max(1, int(getattr(model.config, "max_target_positions", 448)) // 2)
    total = float(duration if duration is not None else probe(path).duration)
    lang, segments, t0 = None, [], 0.0
    while t0 < total - 0.01:
        t1 = min(total, t0 + BLOCK_S)
        audio = load_audio(path, SAMPLE_RATE, start=t0, end=t1).numpy()  # [samples] mono float32
        if audio.size < SAMPLE_RATE // 100:  # under 10 ms there is nothing to hear
            break
        long = audio.size > 30 * SAMPLE_RATE  # more than Whisper's one input window
        # under 30 s: padded to Whisper's 3000 frames; longer: all frames and their mask (long-form generation)
        feats = processor.feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                            **({"truncation": False, "padding": "longest",
                                                "return_attention_mask": True} if long else {}))
        x = feats.input_features.to(device, model.dtype)  # [1, 80 or 128, frames]
        kwargs = {"attention_mask": feats.attention_mask.to(device)} if long else {}
        if lang is None:
            lang = codes[int(model.detect_language(x[:, :, :3000])[0])] if codes else "en"
        if codes:
            kwargs.update(language=lang, task="transcribe")
        heard = audio.size / SAMPLE_RATE
        with torch.inference_mode():
            if timestamps:
                found = _timestamped(model, processor, x, kwargs, max_new, no_ts + 1, heard)
            else:  # a checkpoint without timestamp tokens: one segment per 30 s window
                found = _windows(model, processor, audio, {k: v for k, v in kwargs.items() if k != "attention_mask"},
                                 max_new)
        last = t1 >= total - 0.01
        margin = min(WINDOW_S, BLOCK_S / 2)
        if not last:  # keep what began before the block's last window; its end is where the next block starts
            found = [s for s in found if s[0] < BLOCK_S - margin]
        segments += [(round(t0 + s, 3), round(t0 + e, 3), text) for s, e, text in found]
        if last:
            break
        t0 += max(found[-1][1], 1.0) if found else BLOCK_S - margin  # always forward
    return Transcript(segments, lang or "en")


def _decode(processor, tokens, timestamp_begin: int | None) -> str:
    ids = [int(t) for t in tokens if timestamp_begin is None or int(t) < timestamp_begin]
    return processor.tokenizer.decode(ids, skip_special_tokens=True)


def _timestamped(model, processor, x, kwargs, max_new: int, timestamp_begin: int, heard: float) -> list[Segment]:
    """transformers' long-form generation (sequential 30 s windows, seeking to the last full segment)."""
    out = model.generate(x, return_timestamps=True, return_segments=True, max_new_tokens=max_new, **kwargs)
    found = []
    for seg in out["segments"][0]:
        text = _decode(processor, seg["tokens"], timestamp_begin)
        start, end = float(seg["start"]), min(float(seg["end"]), heard)  # a padded window can end past the audio
        if text.strip() and start < heard:
            found.append((start, max(start, end), text))
    return found


def _windows(model, processor, audio, kwargs, max_new: int) -> list[Segment]:
    """One segment per 30 s window of `audio` (only for a checkpoint that cannot write timestamps)."""
    found, step = [], int(WINDOW_S * SAMPLE_RATE)
    for k in range(0, audio.size, step):
        chunk = audio[k:k + step]
        if chunk.size < SAMPLE_RATE // 100:
            break
        x = processor.feature_extractor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        ids = model.generate(x.to(model.device, model.dtype), max_new_tokens=max_new, **kwargs)
        text = _decode(processor, ids[0], None)
        if text.strip():
            found.append((k / SAMPLE_RATE, (k + chunk.size) / SAMPLE_RATE, text))
    return found
