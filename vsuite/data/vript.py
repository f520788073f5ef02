"""Vript formats and prompts (reference: /work/shared/reference/vript-favd.md §1).

Files of one video `<id>`:
  <id>_caption.json  {"meta": {video_id, video_title, num_clips, integrity}, "data": {clip_id: {video_id, clip_id,
                     video_title, caption: {shot_type, camera_movement, content, scene_title}, voiceover: [str]}}}
  <id>_asr.jsonl     one line per clip: {clip_id, duration, lang, scene_text: [{span: [s, e], text}], full_text}
                     (spans relative to the clip start)
  <id>_cut_meta.json clip_id -> {start, end, duration} in seconds of the long video (a list of such records with
                     clip_id is read too)
Clip ids are `<video_id>-Scene-NNN` (1-based, 3 digits). Extra keys (vsuite's `start`/`end`/`sampling`) are kept.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import DataError

CAPTION_KEYS = ("shot_type", "camera_movement", "content", "scene_title")

ANNOTATION_SYSTEM = "You are an excellent video director that can help me analyze the given video clip."
# Kept for callers that still pass it; no Vriptor prompt family sends a system prompt (see `system_prompt`).
VRIPTOR_SYSTEM = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
                  "movement of objects, and the action and pose of persons. Based on your observations, give your "
                  "answer that best addresses the question.")
# Vript README "Annotation Details / Prompt" (lines 241-249 at 3dd89c7), byte for byte: a leading and a trailing
# newline, one item per line, three spaces after "(150 words)", doubled braces are format escapes.
_ANNOTATION = ("\n"
               "Based on the {voice}successive frames {title}above, please describe:\n"
               "1) the shot type (15 words)\n"
               "2) the camera movement (15 words)\n"
               "3) what is happening as detailed as possible (e.g. plots, characters' actions, environment, light, "
               "all objects, what they look like, colors, etc.) (150 words)   \n"
               "4) Summarize the content to title the scene (10 words)\n"
               "Directly return in the json format like this:\n"
               '{{"shot_type": "...", "camera_movement": "...", "content": "...", "scene_title": "..."}}. '
               "Do not describe the frames individually but the whole clip.\n")
# Prompt families: which question a model is asked (and was trained on).
#   vript           Vript's GPT-4V annotation prompt, per scene, with its system prompt (README).
#   vriptor         the Vriptor demo's instructions (vriptor/demo.py): "Sample Rate", except the voiced
#                   scene-by-scene string, which the demo writes "Sampling Rate"; no system prompt.
#   vriptor-stage2  the stage-2 training data (build_training_vript_stage2_*.py): "Sampling Rate" everywhere;
#                   no system prompt. What `vsuite finetune` trains on and records in its checkpoint.
PROMPT_FAMILIES = ("vript", "vriptor", "vriptor-stage2")
# Vriptor demo.py's decoding (Chat.answer as demo.py calls it): beam search 3 with sampling, top_p 0.9,
# repetition penalty 1.5, up to 2048 new tokens. (Its max_length=8192 only crops the context.)
VRIPTOR_DECODING = {"num_beams": 3, "do_sample": True, "top_p": 0.9, "repetition_penalty": 1.5,
                    "max_new_tokens": 2048}
RATE_FRAMES = 64  # the official code always divides the duration by 64, whatever the frames sampled
VOICE_KEYWORDS = ("voicing", "narrat", "speak", "talk", "say")


def clip_id(video_id: str, index: int) -> str:
    """Clip id of scene `index` (0-based) -> `<video_id>-Scene-NNN` (1-based)."""
    return f"{video_id}-Scene-{index + 1:03d}"


# ----------------------------------------------------------------------------- prompts
def system_prompt(family: str) -> str | None:
    """The system prompt the official code sends for `family`: only Vript's annotation has one
    (Vriptor's conversation sends none: demo.py's `get_context_emb_sim`, the stage-2 datasets' system="")."""
    _check_family(family)
    return ANNOTATION_SYSTEM if family == "vript" else None


def annotation_prompt(title: str | None = None, voiceover: str | None = None) -> tuple[str, str]:
    """(text before the frames, instruction after them) of Vript's per-scene annotation prompt.

    Vript's user content is: `Voice-over: {text}\nVideo frames:` (only with a non-blank voice-over), the
    frames, then the instruction; the voice-over is stripped as Vript strips `full_text`."""
    voice = (voiceover or "").strip()
    before = f"Voice-over: {voice}\nVideo frames:" if voice else ""
    instruction = _ANNOTATION.format(voice="voice-over and " if voice else "",
                                     title=f'from a video titled "{title}" ' if title else "")
    return before, instruction


def scene_prompt(title: str | None = None, voiceover: str | None = None) -> str:
    """The annotation prompt as one text, `<video>` where the frames go (what cache keys and records store)."""
    before, instruction = annotation_prompt(title, voiceover)
    return f"{before}<video>{instruction}"


def _round_str(x: float, digits: int) -> str:
    """Python's str(round(x, digits)): `0.5`, `2.02`, `17.0` (the training data builders' formatting)."""
    return str(round(float(x), digits))


def vriptor_prompt(duration: float, num_frames: int = RATE_FRAMES, *, scene_by_scene: bool = False,
                   voiceover: str | None = None, family: str = "vriptor-stage2") -> str:
    """Vriptor's instruction for a video of `duration` seconds seen through `num_frames` frames.

    The rate is duration / num_frames rounded to 2 decimals and printed as Python prints it (`0.5`), as the
    stage-2 data has it; the official code always passes 64 (`RATE_FRAMES`). `voiceover` is the text of
    `voiceover_lines` (each line ends with a newline, so the quote closes after one). family `vriptor`: the
    demo's wording, duration with one decimal; `vriptor-stage2`: the training data's."""
    _check_family(family)
    if family == "vript":
        raise ValueError("the vript family has no whole-video instruction; use annotation_prompt")
    rate = _round_str(duration / max(num_frames, 1), 2)
    dur = f"{duration:.1f}" if family == "vriptor" else _round_str(duration, 1)
    what = "the video scene by scene in detail" if scene_by_scene else "the video in detail"
    word = "Sampling Rate" if family == "vriptor-stage2" or (voiceover and scene_by_scene) else "Sample Rate"
    tail = f"(Duration: [0.0, {dur}]s, {word}: {rate}s/frame)."
    if voiceover:
        return f'Voiceover:"{voiceover}". Based on the video and voiceover, describe {what} {tail}'
    return f"Describe {what} {tail}"


def voiceover_lines(segments: list[tuple[float, float, str]]) -> str:
    """ASR segments -> Vriptor's voice-over text: one `[s, e] text` line per segment, each ending with a
    newline (demo.py `process_audio`, the stage-2 builders); s and e as str(round(x, 1))."""
    return "".join(f"[{_round_str(s, 1)}, {_round_str(e, 1)}] {t.strip()}\n" for s, e, t in segments if t.strip())


def _check_family(family: str) -> None:
    if family not in PROMPT_FAMILIES:
        raise ValueError(f"unknown prompt family {family!r}; one of {', '.join(PROMPT_FAMILIES)}")


def mentions_voice(text: str) -> bool:
    low = text.lower()
    return ("voice" in low and "over" in low) or any(k in low for k in VOICE_KEYWORDS)


def script_header(index: int, total_scenes: int, title: str, start: float, end: float, duration: float) -> str:
    """`[Scene i/N: title](Duration: [s, e]/Ts)` (Vriptor stage-2 output)."""
    return f"[Scene {index + 1}/{total_scenes}: {title}](Duration: [{start:.1f}, {end:.1f}]/{duration:.1f}s)"


def script_block(index: int, total: int, caption: dict, start: float, end: float, duration: float) -> str:
    return f"{script_header(index, total, caption.get('scene_title', ''), start, end, duration)}\n" \
           f"{caption.get('content', '')}"


_HEADER = re.compile(r"^\s*\[Scene (\d+)(?:/\d+)?: ?(.*?)\]\s*\(Duration: \[([0-9.]+), ?([0-9.]+)\]"
                     r"(?:/[0-9.]+ ?s?)?\s*s?\)\s*$", re.M)


def parse_script(text: str, duration: float) -> list[dict]:
    """Vriptor's scene-by-scene answer -> [{scene_title, content, start, end}] in order.

    Blocks start with a header `[Scene i/N: title](Duration: [s, e]/Ts)` (stage 1: `[Scene i: title](Duration:
    [s, e])`); the content runs to the next header. Times are clamped to [0, duration] and made non-decreasing.
    An answer without a header gives [] (the caller keeps it as one whole-video caption)."""
    heads = list(_HEADER.finditer(text))
    out, last = [], 0.0
    for k, m in enumerate(heads):
        body = text[m.end():heads[k + 1].start() if k + 1 < len(heads) else len(text)]
        start = min(max(float(m.group(3)), last), duration)
        end = min(max(float(m.group(4)), start), duration)
        out.append({"scene_title": clean_text(m.group(2)), "content": clean_text(body), "start": start, "end": end})
        last = end
    return out


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")


def strip_control(text: str) -> str:
    """Drop control characters and replacement marks a model may emit; keep line breaks and spacing."""
    return _CONTROL.sub("", text)


def clean_text(text: str) -> str:
    """Drop control characters and replacement marks a model may emit; collapse whitespace."""
    return re.sub(r"\s+", " ", _CONTROL.sub("", text)).strip()


def parse_caption(text: str) -> dict[str, str]:
    """A model's answer -> {shot_type, camera_movement, content, scene_title}.

    The JSON object in the answer when there is one; otherwise the whole answer is the content and the title
    is its first words. Every value is a cleaned string.
    """
    found: dict[str, Any] = {}
    match = re.search(r"\{.*\}", text, re.S)
    if match:
        try:
            obj = json.loads(match.group(0))
            if isinstance(obj, dict):
                found = obj
        except json.JSONDecodeError:
            pass
    out = {k: clean_text(str(found.get(k, ""))) for k in CAPTION_KEYS}
    if not out["content"]:
        out["content"] = clean_text(text) or "(no description)"
    if not out["scene_title"]:
        out["scene_title"] = " ".join(out["content"].split()[:6])
    return out


# ----------------------------------------------------------------------------- the caption record of a model
CAPTION_RECORD = "vsuite_caption.json"  # in a model folder: the caption mode and prompt family it was trained with


def caption_record_text(mode: str, family: str) -> str:
    """The CAPTION_RECORD file's text: {"mode", "prompt_family", "system_prompt", "frames"}."""
    _check_family(family)
    return json.dumps({"mode": mode, "prompt_family": family, "system_prompt": system_prompt(family),
                       "frames": RATE_FRAMES}, indent=2) + "\n"


def read_caption_record(folder: str | Path) -> dict | None:
    """A model folder's CAPTION_RECORD, or None (absent or unreadable: not a model `vsuite finetune` wrote)."""
    try:
        rec = json.loads((Path(folder) / CAPTION_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("mode"), str) else None


# ----------------------------------------------------------------------------- files
@dataclass
class VriptVideo:
    """One video's Vript annotations: captions, ASR and cut times, in clip order."""

    video_id: str
    title: str = ""
    clips: dict[str, dict] = field(default_factory=dict)  # caption.json data
    asr: dict[str, dict] = field(default_factory=dict)  # clip_id -> asr record
    cuts: dict[str, dict] = field(default_factory=dict)  # clip_id -> {start, end, duration}
    meta: dict = field(default_factory=dict)

    def clip_ids(self) -> list[str]:
        return sorted(self.clips)

    def span(self, cid: str) -> tuple[float, float] | None:
        rec = self.cuts.get(cid) or self.clips.get(cid, {})
        if "start" in rec and "end" in rec:
            return float(rec["start"]), float(rec["end"])
        return None


def _atomic_write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def atomic_write_json(path: Path, obj: Any) -> Path:
    return _atomic_write(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_write_text(path: Path, text: str) -> Path:
    return _atomic_write(path, text)


def caption_json(video_id: str, title: str, clips: dict[str, dict], *, num_clips: int | None = None,
                 extra_meta: dict | None = None) -> dict:
    """The caption.json document; `integrity` is true when every clip has a caption."""
    n = len(clips) if num_clips is None else num_clips
    meta = {"video_id": video_id, "video_title": title, "num_clips": n,
            "integrity": len(clips) == n and all("caption" in c for c in clips.values()), **(extra_meta or {})}
    return {"meta": meta, "data": clips}


def clip_record(video_id: str, cid: str, title: str, caption: dict, voiceover: list[str], **extra) -> dict:
    return {"video_id": video_id, "clip_id": cid, "video_title": title,
            "caption": {k: caption.get(k, "") for k in CAPTION_KEYS}, "voiceover": list(voiceover), **extra}


def asr_record(cid: str, duration: float, segments: list[tuple[float, float, str]], lang: str = "") -> dict:
    """One line of Vript's `<video_id>_asr.jsonl`: {clip_id, duration, lang, scene_text, full_text}.

    As in Vript's own files (vriptor/training_data/videos/vript_long_videos/0J7UPHL08fU/0J7UPHL08fU_asr.jsonl):
    `duration` is the clip's length in seconds, `lang` the language Whisper detected (an empty string when
    unknown), `scene_text` one {span: [s, e] (seconds from the clip start, 2 decimals), text} per segment
    with the text as Whisper wrote it (leading space kept), and `full_text` = vript.full_text of the texts.
    """
    return {"clip_id": cid, "duration": round(float(duration), 6), "lang": lang,  # no float noise of end - start
            "scene_text": [{"span": [round(float(s), 2), round(float(e), 2)], "text": t} for s, e, t in segments],
            "full_text": full_text([t for _, _, t in segments])}


def full_text(texts: list[str]) -> str:
    """Vript's `full_text`: each segment's text followed by one space, so [" A", " B"] -> " A  B " (true of
    every line of both asr.jsonl files in the Vript repository); "" for a silent clip."""
    return "".join(f"{t} " for t in texts)


def clip_voiceover(record: dict) -> list[str]:
    """caption.json's `voiceover` of a clip from its ASR record: `[full_text.strip()]`, `[""]` when silent.

    Vript's annotation reads `voiceover['full_text'].strip()` (README.md lines 223-224) and its caption.json
    stores that one string in a list (0J7UPHL08fU_caption.json; 1-p2Q93MAjs-Scene-002 has [""])."""
    return [str(record.get("full_text", "")).strip()]


def attach_segments(segments: list[tuple[float, float, str]], start: float, end: float
                    ) -> list[tuple[float, float, str]]:
    """The whole video's ASR segments that overlap the clip [start, end), on the clip's clock.

    Overlap means sharing some time: s < end and e > start (a segment that ends exactly at a cut is not the next
    clip's; a zero-length one belongs where it lies). A segment spanning a cut is attached to both clips. Its
    start is clipped at the clip's start (0.0); its end is kept even past the clip's end: Vript's spans do
    that (15 of 103 segments of 0J7UPHL08fU_asr.jsonl end after the clip's `duration`) and its builders take
    `duration = max(duration, float(span[1]))` (build_training_vript_stage1_single.py line 80).
    Segments without text are dropped.
    """
    out = []
    for s, e, text in segments:
        inside = (s < end and e > start) or (s == e and start <= s < end)
        if inside and text.strip():
            out.append((max(s, start) - start, e - start, text))
    return out


def asr_records(segments: list[tuple[float, float, str]], spans: dict[str, tuple[float, float]],
                lang: str) -> list[dict]:
    """One asr.jsonl record per clip (silent clips included, as in Vript) from the whole video's segments."""
    return [asr_record(cid, e - s, attach_segments(segments, s, e), lang) for cid, (s, e) in spans.items()]


def write_asr_jsonl(path: Path, records: list[dict]) -> Path:
    return _atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def _load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); is it a Vript file?") from None


def read_caption_json(path: Path) -> dict:
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        raise DataError(f"{path} has no 'data' object; expected Vript's caption.json (meta + data keyed by clip id)")
    for cid, rec in doc["data"].items():
        if not isinstance(rec, dict) or not isinstance(rec.get("caption"), dict):
            raise DataError(f"{path}: clip {cid} has no 'caption' object")
    return doc


def read_asr_jsonl(path: Path) -> dict[str, dict]:
    out = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
                out[rec["clip_id"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{path}:{n} is not an ASR record with a clip_id") from None
    return out


def read_cut_meta(path: Path) -> dict[str, dict]:
    doc = _load_json(path)
    items = doc.items() if isinstance(doc, dict) else ((r.get("clip_id"), r) for r in doc)
    out = {}
    for cid, rec in items:
        if not cid or not isinstance(rec, dict) or "start" not in rec or "end" not in rec:
            raise DataError(f"{path}: every clip needs start and end seconds")
        out[cid] = {"start": float(rec["start"]), "end": float(rec["end"]),
                    "duration": float(rec.get("duration", float(rec["end"]) - float(rec["start"])))}
    return out


def cut_meta(spans: dict[str, tuple[float, float]]) -> dict[str, dict]:
    return {cid: {"start": round(s, 3), "end": round(e, 3), "duration": round(e - s, 3)}
            for cid, (s, e) in spans.items()}


def caption_file(video_id: str) -> str:
    """`<video_id>_caption.json`: the name Vript's data builders look for (`f.endswith("_caption.json")`,
    build_training_vript_stage1_single.py line 36)."""
    return f"{video_id}_caption.json"


def asr_file(video_id: str) -> str:
    """`<video_id>_asr.jsonl` (build_training_vript_stage1_single.py line 59)."""
    return f"{video_id}_asr.jsonl"


def cut_meta_file(video_id: str) -> str:
    """`<video_id>_cut_meta.json` (DATA.md, vript_long_videos_clips/<id>/)."""
    return f"{video_id}_cut_meta.json"


SHORT_VIDEO_MAX_S = 600.0  # TikTok's upload limit in 2024 (YouTube Shorts: 60 s then)


def is_short_video(duration: float, width: int, height: int) -> bool:
    """Whether a video looks like one of Vript's short videos (YouTube Shorts / TikTok), whose annotation prompt
    gets no voice-over (README.md line 221: `if scene in voiceovers_dict and 'short' not in args.video_dir`).
    Vript knew the source; vsuite goes by the format: a portrait frame (height > width) and at most
    SHORT_VIDEO_MAX_S seconds."""
    return height > width and duration <= SHORT_VIDEO_MAX_S


def _find(folder: Path, video_id: str, suffix: str) -> Path | None:
    for name in (f"{video_id}{suffix}", suffix.lstrip("_")):
        if (folder / name).is_file():
            return folder / name
    return None


def load_video_annotations(caption_path: Path) -> VriptVideo:
    """caption.json plus the asr.jsonl and cut_meta.json beside it (either `<id>_x` or plain `x` names)."""
    caption_path = Path(caption_path)
    doc = read_caption_json(caption_path)
    meta = doc.get("meta", {})
    first = next(iter(doc["data"].values()), {})
    video_id = meta.get("video_id") or first.get("video_id") or caption_path.stem.replace("_caption", "")
    video = VriptVideo(video_id, meta.get("video_title", ""), doc["data"], meta=meta)
    folder = caption_path.parent
    asr = _find(folder, video_id, "_asr.jsonl")
    if asr:
        video.asr = read_asr_jsonl(asr)
    cuts = _find(folder, video_id, "_cut_meta.json")
    if cuts:
        video.cuts = read_cut_meta(cuts)
    return video


class CaptionDataConfig(BaseModel):
    """The [data] table of a caption finetune: where the Vript-format data is and how samples are built
    (stage 0: every window of min_scenes..max_scenes consecutive scenes; stage 1 | 2: Vript's stage-1/2
    training-data builders, vsuite.data.vript_training; Vript's voice-over and timestamp paradigms)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    root: str = ""
    stage: int = Field(0, ge=0, le=2, description="0 = every window of min_scenes..max_scenes scenes; "
                       "1 | 2 = windows drawn as Vript's stage-1 (1-6 scenes) / stage-2 (2-20 scenes) builders")
    official_compat: bool = False  # voice-over spans shifted as Vript's builders do (by the previous speech end)
    min_scenes: int = Field(1, ge=1)
    max_scenes: int = Field(4, ge=1)
    voiceover: bool = True  # paradigm 2: ASR text in the instruction when the caption mentions speech
    voiceover_always: bool = False  # also when the caption does not mention voice/narration
    timestamps: bool = True  # paradigm 3
    max_windows_per_video: int = Field(0, ge=0, description="0 = every window")
    batch_size: int = Field(1, ge=1)
    shuffle: bool = True
    video_backend: str = "auto"

    @model_validator(mode="after")
    def _check(self) -> CaptionDataConfig:
        if self.max_scenes < self.min_scenes:
            raise ValueError(f"max_scenes ({self.max_scenes}) < min_scenes ({self.min_scenes})")
        stage0 = sorted({"min_scenes", "max_scenes", "max_windows_per_video"} & self.model_fields_set)
        if self.stage and stage0:
            raise ValueError(f"{', '.join(stage0)}: for stage = 0 only; stage {self.stage} draws its windows as "
                             f"Vript does (remove the key, or set stage = 0)")
        return self
