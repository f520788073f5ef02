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
VRIPTOR_SYSTEM = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
                  "movement of objects, and the action and pose of persons. Based on your observations, give your "
                  "answer that best addresses the question.")
_ANNOTATION = ("Based on the {voice}successive frames {title}above, please describe: 1) the shot type (15 words) "
               "2) the camera movement (15 words) 3) what is happening as detailed as possible (e.g. plots, "
               "characters' actions, environment, light, all objects, what they look like, colors, etc.) (150 words) "
               "4) Summarize the content to title the scene (10 words). Directly return in the json format like "
               'this: {{"shot_type": "...", "camera_movement": "...", "content": "...", "scene_title": "..."}}. '
               "Do not describe the frames individually but the whole clip.")
VOICE_KEYWORDS = ("voicing", "narrat", "speak", "talk", "say")


def clip_id(video_id: str, index: int) -> str:
    """Clip id of scene `index` (0-based) -> `<video_id>-Scene-NNN` (1-based)."""
    return f"{video_id}-Scene-{index + 1:03d}"


# ----------------------------------------------------------------------------- prompts
def annotation_prompt(title: str | None = None, voiceover: str | None = None) -> tuple[str, str]:
    """(text before the frames, instruction after them) of Vript's per-scene annotation prompt."""
    before = f"Voice-over: {voiceover}\nVideo frames:" if voiceover else ""
    instruction = _ANNOTATION.format(voice="voice-over and " if voiceover else "",
                                     title=f'from a video titled "{title}" ' if title else "")
    return before, instruction


def scene_prompt(title: str | None = None, voiceover: str | None = None) -> str:
    """The annotation prompt as one text (voice-over first, as Vript orders it)."""
    before, instruction = annotation_prompt(title, voiceover)
    return f"{before}\n{instruction}" if before else instruction


def vriptor_prompt(duration: float, num_frames: int, *, scene_by_scene: bool = False,
                   voiceover: str | None = None) -> str:
    """Vriptor's whole-video instruction: `Describe the video ... (Duration: [0.0, D]s, Sampling Rate: Xs/frame).`"""
    rate = duration / max(num_frames, 1)
    what = "the video scene by scene in detail" if scene_by_scene else "the video in detail"
    tail = f"(Duration: [0.0, {duration:.1f}]s, Sampling Rate: {rate:.2f}s/frame)."
    if voiceover:
        return f'Voiceover:"{voiceover}". Based on the video and voiceover, describe {what} {tail}'
    return f"Describe {what} {tail}"


def voiceover_lines(segments: list[tuple[float, float, str]]) -> str:
    """ASR segments -> Vriptor's `[s, e] text` lines (seconds, 1 decimal)."""
    return "\n".join(f"[{s:.1f}, {e:.1f}] {t.strip()}" for s, e, t in segments if t.strip())


def mentions_voice(text: str) -> bool:
    low = text.lower()
    return ("voice" in low and "over" in low) or any(k in low for k in VOICE_KEYWORDS)


def script_header(index: int, total_scenes: int, title: str, start: float, end: float, duration: float) -> str:
    """`[Scene i/N: title](Duration: [s, e]/Ts)` (Vriptor stage-2 output)."""
    return f"[Scene {index + 1}/{total_scenes}: {title}](Duration: [{start:.1f}, {end:.1f}]/{duration:.1f}s)"


def script_block(index: int, total: int, caption: dict, start: float, end: float, duration: float) -> str:
    return f"{script_header(index, total, caption.get('scene_title', ''), start, end, duration)}\n" \
           f"{caption.get('content', '')}"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffd]")


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


def asr_record(cid: str, duration: float, segments: list[tuple[float, float, str]], lang: str = "en") -> dict:
    """One asr.jsonl line; segment spans relative to the clip start."""
    return {"clip_id": cid, "duration": round(duration, 3), "lang": lang,
            "scene_text": [{"span": [round(s, 2), round(e, 2)], "text": t} for s, e, t in segments],
            "full_text": " ".join(t.strip() for _, _, t in segments if t.strip())}


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
    (windows of min_scenes..max_scenes consecutive scenes; Vript's voice-over and timestamp paradigms)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    root: str = ""
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
        return self
