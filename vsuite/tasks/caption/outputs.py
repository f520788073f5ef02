"""What `vsuite caption` writes into OUT, and how a failed run takes it back.

Files: <video_id>_caption.json (Vript's meta + data), <video_id>_cut_meta.json, <video_id>_asr.jsonl (with
--voiceover), script.md, captions.srt, captions.vtt, sampling.json. Each is written atomically (temporary file,
then rename). The writers take the list of scene records (dicts with clip_id, start, end, caption, voiceover,
voice_segments, sampling) and return text.

`OutputGuard` remembers what existed before the run; when the run fails it removes what the run added (the
whole OUT when the run created it), so a failed run leaves nothing behind. An interrupted run (Ctrl-C) keeps
its finished scenes in OUT/scenes/ so that the same command resumes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...data import vript
from .plan import Plan


# ----------------------------------------------------------------------------- the files
def protocol(plan: Plan, scenes: list[dict]) -> dict:
    """The run's sampling protocol: recorded in caption.json, sampling.json, script.md, the VTT and storyboard."""
    first = scenes[0]["sampling"]
    return {"protocol": "vript" if plan.dense else "vriptor_seq", "backend": first["backend"], "fps": plan.fps,
            "resolution": first["resolution"], "model": plan.model_ref, "family": plan.family, "dense": plan.dense,
            "frames_per_scene": [s["sampling"]["frames"] for s in scenes]}


def write_outputs(plan: Plan, scenes: list[dict], transcript=None) -> dict:
    """Every file of OUT but the scene cache; returns the protocol.

    `transcript` (asr.Transcript: the whole video's Whisper segments and language, with --voiceover) gives
    <video_id>_asr.jsonl, one record per clip with the segments that overlap it (vript.asr_records), and each
    clip's `voiceover` in <video_id>_caption.json: `[full_text]`, `[""]` when silent. Without it no ASR file
    is written and `voiceover` stays `[]` (nothing was transcribed, which is not silence)."""
    out, proto, vid = plan.out, protocol(plan, scenes), plan.video_id
    spans = {s["clip_id"]: (float(s["start"]), float(s["end"])) for s in scenes}
    records = {r["clip_id"]: r for r in vript.asr_records(transcript.segments, spans, transcript.lang)} \
        if transcript is not None else {}
    clips = {s["clip_id"]: vript.clip_record(vid, s["clip_id"], plan.title, s["caption"],
                                             vript.clip_voiceover(records[s["clip_id"]]) if records else [],
                                             start=s["start"], end=s["end"], sampling=s["sampling"],
                                             **({"truncated": True} if s.get("truncated") else {}))
             for s in scenes}
    doc = vript.caption_json(vid, plan.title, clips,
                             extra_meta={"video": str(plan.video), "duration": round(plan.duration, 3),
                                         "fps": plan.fps, "mode": plan.mode,
                                         "prompt_family": plan.prompt_family,
                                         "sampling": proto})
    # Vript's names (vript.caption_file ...), one copy each: `finetune` globs *caption.json
    vript.atomic_write_json(out / vript.caption_file(vid), doc)
    vript.atomic_write_json(out / vript.cut_meta_file(vid), vript.cut_meta(spans))
    if transcript is not None:
        vript.write_asr_jsonl(out / vript.asr_file(vid), list(records.values()))
    vript.atomic_write_text(out / "script.md", to_markdown(scenes, video=plan.video.name, title=plan.title,
                                                           duration=plan.duration, protocol=proto))
    vript.atomic_write_text(out / "captions.srt", to_srt(scenes))
    vript.atomic_write_text(out / "captions.vtt", to_vtt(scenes, note=f"sampling {json.dumps(proto)}"))
    vript.atomic_write_json(out / "sampling.json", {"protocol": proto,
                                                    "scenes": {s["clip_id"]: s["sampling"] for s in scenes}})
    return proto


def _stamp(t: float, sep: str) -> str:
    ms = int(round(max(t, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cues(scenes: list[dict]) -> list[tuple[float, float, str]]:
    """Strictly increasing, non-overlapping cues (a zero-length scene gets at least 1 ms)."""
    cues, last = [], 0.0
    for sc in scenes:
        start = max(float(sc["start"]), last)
        end = max(float(sc["end"]), start + 0.001)
        cap = sc["caption"]
        cues.append((start, end, f"{cap['scene_title']}\n{cap['content']}"))
        last = end
    return cues


def to_srt(scenes: list[dict]) -> str:
    return "\n".join(f"{i}\n{_stamp(s, ',')} --> {_stamp(e, ',')}\n{text}\n"
                     for i, (s, e, text) in enumerate(_cues(scenes), 1))


def to_vtt(scenes: list[dict], note: str = "") -> str:
    """WebVTT; `note` (one line, e.g. the sampling protocol) becomes a NOTE block before the cues."""
    head = "WEBVTT\n\n" + (f"NOTE {' '.join(note.split()).replace('-->', '->')}\n\n" if note else "")
    body = "\n".join(f"{i}\n{_stamp(s, '.')} --> {_stamp(e, '.')}\n{text.replace('-->', '->')}\n"
                     for i, (s, e, text) in enumerate(_cues(scenes), 1))
    return head + body


def to_markdown(scenes: list[dict], *, video: str, title: str, duration: float, protocol: dict) -> str:
    """Vriptor's script blocks with the shot, camera and voice-over of each scene; the protocol at the end."""
    lines = [f"# {title or video}", "", f"Video: `{video}` ({duration:.1f} s, {len(scenes)} scene(s))", ""]
    for i, sc in enumerate(scenes):
        cap = sc["caption"]
        header, content = vript.script_block(i, len(scenes), cap, sc["start"], sc["end"], duration).split("\n", 1)
        lines += [f"## {header}", ""]
        facts = [f"- {label}: {cap[key]}" for label, key in (("Shot type", "shot_type"),
                                                            ("Camera movement", "camera_movement")) if cap.get(key)]
        lines += [*facts, ""] if facts else []
        lines += [content, ""]
        if sc.get("voiceover"):
            lines += ["> Voice-over: " + " ".join(sc["voiceover"]), ""]
    lines += [f"Sampling: {json.dumps(protocol)}", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- taking a failed run back
def _first_missing(path: Path) -> Path | None:
    """The highest folder (or the file) that writing `path` would create; None when `path` exists."""
    path = Path(path).absolute()
    if path.exists():
        return None
    while not path.parent.exists():
        path = path.parent
    return path


class OutputGuard:
    """Snapshot of OUT (and of extra output files such as the storyboard) before a run writes anything."""

    def __init__(self, out: Path, files: list[Path] = ()) -> None:
        self.out = Path(out).absolute()
        self.created = [p for p in (_first_missing(self.out), *(_first_missing(f) for f in files)) if p]
        self.before = set(self.out.rglob("*")) if self.out.is_dir() else set()
        # temporary files of an atomic write next to an extra file whose folder already exists
        self.temps = [(Path(f).absolute().parent, f".{Path(f).name}.tmp") for f in files]

    def added(self) -> list[Path]:
        """Paths this run created, deepest first."""
        new = set()
        for root in self.created:
            if root.exists():
                new.add(root)
                new.update(root.rglob("*") if root.is_dir() else ())
        if self.out.is_dir():
            new.update(set(self.out.rglob("*")) - self.before)
        for folder, prefix in self.temps:
            if folder.is_dir():
                new.update(p for p in folder.iterdir() if p.name.startswith(prefix))
        return sorted(new, key=lambda p: len(p.parts), reverse=True)

    def undo(self, keep: Path | None = None) -> int:
        """Remove what the run added; new files under `keep` survive (not half-written temporaries, not empty
        folders). Returns how many files were kept."""
        keep = Path(keep).absolute() if keep else None

        def kept_path(p: Path) -> bool:
            return keep is not None and (p == keep or keep in p.parents)

        kept = 0
        for path in self.added():  # deepest first: a folder's files are handled before the folder
            if path.is_dir() and not path.is_symlink():
                if kept_path(path) or (keep is not None and path in keep.parents):
                    if not any(path.iterdir()):
                        path.rmdir()
                else:
                    shutil.rmtree(path, ignore_errors=True)  # everything in it is new too
            elif kept_path(path) and not (path.name.startswith(".") and ".tmp" in path.name):
                kept += 1
            else:
                path.unlink(missing_ok=True)
        return kept
