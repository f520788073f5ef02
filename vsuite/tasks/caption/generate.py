"""Prompts, the scene cache and the model calls of `vsuite caption`.

Each scene gets Vript's annotation prompt (--dense: title and the scene's voice-over) or Vriptor's whole-video
instruction (duration, sampling rate, voice-over lines). A scene's cache key covers the model fingerprint,
system prompt, prompt, frame indices and generation length; a finished scene is written atomically to
OUT/scenes/<clip_id>.json, and a rerun reuses every scene whose key matches. The model is loaded only when
a scene is left to caption; scenes go to it `batch_size` at a time, their frames decoded in one pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ...console import log
from ...data import vript
from .plan import CaptionOptions, Plan, ScenePlan, cache_key

Segment = tuple[float, float, str]  # (start, end, text) in seconds


@dataclass
class Request:
    scene: ScenePlan
    voice: list[Segment]  # the scene's voice-over on the scene's clock (--dense) or the video's (whole mode)
    prompt: str
    system: str
    key: str


def scene_voice(segments: list[Segment], start: float, end: float) -> list[Segment]:
    """ASR segments overlapping [start, end), clipped and shifted to the scene's clock."""
    out = []
    for s, e, text in segments:
        if e > start and s < end and text.strip():
            out.append((max(s, start) - start, min(e, end) - start, text.strip()))
    return out


def requests(plan: Plan, opts: CaptionOptions, segments: list[Segment]) -> list[Request]:
    out = []
    for scene in plan.scenes:
        if plan.dense:
            voice = scene_voice(segments, scene.start, scene.end)
            text = " ".join(t for _, _, t in voice)
            prompt = vript.scene_prompt(opts.title or None, text or None)
            system = vript.ANNOTATION_SYSTEM
        else:
            voice = [(s, e, t) for s, e, t in segments]
            lines = vript.voiceover_lines(voice)
            prompt = vript.vriptor_prompt(plan.duration, len(scene.sample), voiceover=lines or None)
            system = vript.VRIPTOR_SYSTEM
        key = cache_key(plan.fingerprint, system, prompt, list(scene.sample.indices), opts.max_new_tokens)
        out.append(Request(scene, voice, prompt, system, key))
    return out


def cached(plan: Plan, reqs: list[Request]) -> dict[int, dict]:
    """Scene index -> its cached record, for the scenes whose cache file carries the same key."""
    found = {}
    for req in reqs:
        try:
            rec = json.loads((plan.out / "scenes" / f"{req.scene.clip_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and rec.get("key") == req.key:
            found[req.scene.index] = rec
    return found


def caption_scenes(plan: Plan, opts: CaptionOptions, segments: list[Segment]) -> tuple[list[dict], int]:
    """Every scene's record (cached or generated now), in order, and how many were generated."""
    reqs = requests(plan, opts, segments)
    results = cached(plan, reqs)
    todo = [r for r in reqs if r.scene.index not in results]
    if results:
        log(f"resuming: {len(results)} of {len(reqs)} scene(s) already captioned in {plan.out / 'scenes'}")
    if todo:
        from ...models.vlm import VideoLM

        vlm = VideoLM.load(plan.model_dir, device=plan.device, dtype=plan.dtype, name=plan.model_ref)
        for i in range(0, len(todo), opts.batch_size):
            for req, rec in _generate(vlm, plan, opts, todo[i:i + opts.batch_size]):
                vript.atomic_write_json(plan.out / "scenes" / f"{req.scene.clip_id}.json", rec)
                results[req.scene.index] = rec
                log(f"scene {req.scene.index + 1}/{len(reqs)} [{req.scene.start:.1f}, {req.scene.end:.1f}] s: "
                    f"{rec['caption']['scene_title'][:60]}")
    return [results[r.scene.index] for r in reqs], len(todo)


def _generate(vlm, plan: Plan, opts: CaptionOptions, chunk: list[Request]) -> list[tuple[Request, dict]]:
    """One batch: decode all its frames in one pass (the file's index is read once), one generate call."""
    from ...media import SamplingRecord, read_frames
    from ...models.vlm import VideoPrompt
    from .storyboard import thumbnail_uri

    joined = read_frames(plan.video, [i for r in chunk for i in r.scene.sample.indices], backend=opts.video_backend)
    decoded, items, at = [], [], 0
    for req in chunk:
        n = len(req.scene.sample)
        frames = joined.frames[at:at + n]  # [n, H, W, 3] uint8
        at += n
        record = SamplingRecord.from_sample(req.scene.sample, fps=plan.fps, backend=joined.backend,
                                            resolution=(int(frames.shape[1]), int(frames.shape[2])))
        decoded.append((frames, record))
        items.append(VideoPrompt(frames, list(req.scene.sample.indices), plan.fps, plan.duration, req.prompt,
                                 req.system, total_frames=plan.num_frames))
    answers = vlm.generate(items, max_new_tokens=opts.max_new_tokens)
    out = []
    for req, (frames, record), answer in zip(chunk, decoded, answers):
        sc = req.scene
        rec = {"key": req.key, "clip_id": sc.clip_id, "start": round(sc.start, 3), "end": round(sc.end, 3),
               "start_frame": sc.start_frame, "end_frame": sc.end_frame,
               "caption": vript.parse_caption(answer), "raw": vript.clean_text(answer),
               "voiceover": [t for _, _, t in req.voice],
               "voice_segments": [[round(s, 2), round(e, 2), t] for s, e, t in req.voice],
               "prompt": req.prompt, "sampling": {**record.to_dict(), **vlm.describe()},
               "thumbnails": [thumbnail_uri(f) for f in frames.numpy()]}  # for the storyboard, no re-decode
        out.append((req, rec))
    return out
