"""Prompts, the scene cache and the model calls of `vsuite caption`.

Mode `vript`: each scene gets Vript's annotation prompt (system prompt; `Voice-over: ...\\nVideo frames:`, the
frames, then the instruction). Modes `whole` and `vriptor`: one request for the whole video with Vriptor's
instruction (no system prompt; voice-over lines, duration, sample rate), "scene by scene" in vriptor mode,
whose answer is then split back into scenes at its `[Scene i/N: title](Duration: [s, e]/Ts)` headers.

A request's cache key covers the model fingerprint, system prompt, prompt, frame indices and the decoding
settings; a finished request is written atomically to OUT/scenes/<clip_id>.json, and a rerun reuses every
request whose key matches. The model is loaded only when a request is left; requests go to it `batch_size`
at a time, their frames decoded in one pass. An answer cut off by the token limit is kept unparsed and
flagged `truncated` (never read as a half-finished JSON object or script).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ...console import log
from ...data import vript
from .plan import CaptionOptions, Plan, ScenePlan, cache_key

Segment = tuple[float, float, str]  # (start, end, text) in seconds


@dataclass
class Request:
    scene: ScenePlan
    voice: list[Segment]  # the scene's voice-over on the scene's clock (vript) or the video's (whole modes)
    before: str  # text before the frames
    prompt: str  # text after the frames
    system: str | None
    key: str

    @property
    def full_prompt(self) -> str:
        """The user turn as one text, `<video>` where the frames go (what scene records store)."""
        return f"{self.before}<video>{self.prompt}"


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
        if plan.mode == "vript":
            voice = scene_voice(segments, scene.start, scene.end)
            text = " ".join(t for _, _, t in voice)
            before, prompt = vript.annotation_prompt(opts.title or None, text or None)
        else:
            voice = [(s, e, t) for s, e, t in segments]
            lines = vript.voiceover_lines(voice)
            before = ""
            # the official rate is duration / 64 whatever the frames (vript.RATE_FRAMES)
            prompt = vript.vriptor_prompt(plan.duration, vript.RATE_FRAMES, scene_by_scene=plan.mode == "vriptor",
                                          voiceover=lines or None, family=plan.prompt_family)
        system = vript.system_prompt(plan.prompt_family)
        seed = opts.seed if plan.generation.get("do_sample") else None
        key = cache_key(plan.fingerprint, system, before, prompt, list(scene.sample.indices), plan.generation, seed)
        out.append(Request(scene, voice, before, prompt, system, key))
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
    """Every scene's record (cached or generated now), in order, and how many requests were generated.
    In vriptor mode the one whole-video record is split into its scenes (`split_script`)."""
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
    records = [results[r.scene.index] for r in reqs]
    cut = [r["clip_id"] for r in records if r.get("truncated")]
    if cut:
        log(f"warning: {len(cut)} answer(s) cut off at --max-new-tokens {plan.generation['max_new_tokens']} "
            f"({', '.join(cut[:5])}{', ...' if len(cut) > 5 else ''}): kept unparsed and marked truncated; "
            "raise --max-new-tokens")
    if plan.mode == "vriptor":
        records = split_script(plan, records[0], segments)
    return records, len(todo)


def unparsed(answer: str) -> dict[str, str]:
    """The caption of an answer that is not read: the cleaned text as content, every other field empty."""
    return {"shot_type": "", "camera_movement": "", "content": vript.clean_text(answer) or "(no description)",
            "scene_title": ""}


def _caption(plan: Plan, answer: str, truncated: bool) -> dict[str, str]:
    if truncated:
        return unparsed(answer)
    if plan.mode == "vript":
        return vript.parse_caption(answer)
    if plan.mode == "vriptor":
        return unparsed(answer)  # split into scenes later (split_script)
    return {**unparsed(answer), "scene_title": " ".join(vript.clean_text(answer).split()[:6])}


def split_script(plan: Plan, rec: dict, segments: list[Segment]) -> list[dict]:
    """The vriptor-mode record -> one record per `[Scene i/N: title](Duration: [s, e]/Ts)` block of its answer.

    Each scene keeps the frames (and thumbnails) of the 64 that fall inside it, and its voice-over. A truncated
    answer, or one without any header, stays one whole-video record."""
    blocks = [] if rec.get("truncated") else vript.parse_script(rec.get("answer", ""), plan.duration)
    if not blocks:
        return [rec]
    out = []
    sampling, thumbs = rec["sampling"], rec.get("thumbnails", [])
    for k, b in enumerate(blocks):
        start, end = b["start"], b["end"]
        last = k == len(blocks) - 1
        keep = [n for n, t in enumerate(sampling["timestamps"]) if start <= t < end or (last and t >= start)]
        voice = scene_voice(segments, start, end)
        out.append({**rec, "clip_id": vript.clip_id(plan.video_id, k), "start": round(start, 3),
                    "end": round(end, 3), "start_frame": min(math.floor(start * plan.fps + 1e-6), plan.num_frames),
                    "end_frame": min(math.ceil(end * plan.fps - 1e-6), plan.num_frames),
                    "caption": {"shot_type": "", "camera_movement": "", "content": b["content"],
                                "scene_title": b["scene_title"]},
                    "voiceover": [t for _, _, t in voice],
                    "voice_segments": [[round(s, 2), round(e, 2), t] for s, e, t in voice],
                    "sampling": {**sampling, "frames": len(keep), "indices": [sampling["indices"][n] for n in keep],
                                 "timestamps": [sampling["timestamps"][n] for n in keep]},
                    "thumbnails": [thumbs[n] for n in keep if n < len(thumbs)]})
    return out


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
                                 req.system, total_frames=plan.num_frames, before=req.before))
    if plan.generation.get("do_sample"):
        import torch

        torch.manual_seed(opts.seed)  # sampled decodes repeat for the same seed
    answers = vlm.generate_full(items, **plan.generation)
    out = []
    for req, (frames, record), gen in zip(chunk, decoded, answers):
        sc = req.scene
        answer = vript.strip_control(gen.text)
        rec = {"key": req.key, "clip_id": sc.clip_id, "start": round(sc.start, 3), "end": round(sc.end, 3),
               "start_frame": sc.start_frame, "end_frame": sc.end_frame,
               "caption": _caption(plan, answer, gen.truncated), "raw": vript.clean_text(answer), "answer": answer,
               "truncated": gen.truncated, "new_tokens": gen.new_tokens,
               "voiceover": [t for _, _, t in req.voice],
               "voice_segments": [[round(s, 2), round(e, 2), t] for s, e, t in req.voice],
               "prompt": req.full_prompt, "system_prompt": req.system, "mode": plan.mode,
               "prompt_family": plan.prompt_family, "generation": dict(plan.generation),
               "sampling": {**record.to_dict(), **vlm.describe()},
               "thumbnails": [thumbnail_uri(f) for f in frames.numpy()]}  # for the storyboard, no re-decode
        out.append((req, rec))
    return out
