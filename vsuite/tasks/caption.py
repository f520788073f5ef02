"""`vsuite caption VIDEO`: Vript-style dense, script-like captions of a (long) video.

Pipeline: scene split (vsuite.media.detect_scenes, streaming) -> Vript's 3/4/5 frames per scene
(sample_vript_scene; frames read by index) -> optional voice-over (Whisper through transformers) -> Vript's
annotation prompt per scene (title and voice-over as Vript gives them) -> a video-language model
(vsuite.models.vlm) -> caption.json (Vript layout), script.md, captions.srt, captions.vtt, cut_meta.json,
[asr.jsonl], [storyboard HTML].

Without --dense: one whole-video caption from uniformly sampled frames with Vriptor's whole-video instruction
(duration and sampling rate).

Resume: each finished scene is written atomically to OUT/scenes/<clip_id>.json with a key (model, prompt,
frames, generation settings); a rerun reuses scenes whose key matches and redoes the rest.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..console import log
from ..data import vript
from ..errors import UsageError

CACHE_VERSION = 1


@dataclass
class CaptionOptions:
    model: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    out: Path | None = None
    dense: bool = False
    title: str = ""
    voiceover: bool = False
    asr_model: str = "openai/whisper-small"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 4
    max_new_tokens: int = 256
    frames: int = 64  # whole-video mode
    threshold: float = 27.0
    min_scene_len: int = 15
    storyboard: Path | None = None
    video_backend: str = "auto"


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str).encode()).hexdigest()[:16]


def _model_fingerprint(vlm) -> str:
    """Name plus the loaded weights' folder stat, so retraining into the same folder invalidates the cache."""
    path = getattr(vlm.model, "name_or_path", "") or vlm.name
    stamp = ""
    p = Path(path)
    if p.is_dir():
        stamp = ";".join(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}"
                         for f in sorted(p.glob("*.safetensors")))
    return f"{vlm.name}|{vlm.family}|{stamp}|{vlm.dtype}"


def _scene_voice(segments, start: float, end: float) -> list[tuple[float, float, str]]:
    """ASR segments overlapping [start, end), shifted to the scene's clock."""
    out = []
    for s, e, text in segments:
        if e > start and s < end and text.strip():
            out.append((max(s, start) - start, min(e, end) - start, text.strip()))
    return out


def run(video: str, opts: CaptionOptions) -> Path:
    from ..media import probe

    t0 = time.monotonic()
    path = Path(video)
    if opts.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    info = probe(path)  # typed MediaError (exit 5) for missing / unreadable / video-less files
    out = Path(opts.out) if opts.out else path.with_name(f"{path.stem}.caption")
    video_id = path.stem
    from ..hub import resolve_model_dir

    resolve_model_dir(opts.model)  # exit 4 before torch is even imported

    import torch

    from ..media import SamplingRecord, detect_scenes, read_frames, sample_uniform, sample_vript_scene
    from ..models.vlm import VideoLM, VideoPrompt
    from . import caption_outputs as outputs

    vlm = VideoLM.load(opts.model, device=opts.device, dtype=opts.dtype)
    if opts.dense:
        scenes = detect_scenes(path, threshold=opts.threshold, min_scene_len=opts.min_scene_len,
                               backend=opts.video_backend)
        spans = [(sc.start_frame, sc.end_frame, sc.start_time, sc.end_time) for sc in scenes]
    else:
        if not info.num_frames:
            from ..media import errors as merr

            raise merr.empty_video(path)
        spans = [(0, info.num_frames, 0.0, info.num_frames / info.fps)]
    num_frames = spans[-1][1]
    fps = float(info.fps)
    duration = num_frames / fps
    ids = [vript.clip_id(video_id, i) for i in range(len(spans))]
    log(f"{path.name}: {duration:.1f} s at {fps:g} fps, {len(spans)} scene(s); model {vlm.name} ({vlm.family}) on "
        f"{vlm.device}; output {out}")

    segments: list[tuple[float, float, str]] = []
    if opts.voiceover:
        from .caption_asr import transcribe

        asr_cache = out / "scenes" / "voiceover.json"
        asr_key = _key(opts.asr_model, [(s, e) for _, _, s, e in spans])
        try:
            rec = json.loads(asr_cache.read_text(encoding="utf-8"))
            segments = [tuple(x) for x in rec["segments"]] if rec.get("key") == asr_key else None
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            segments = None
        if segments is None:
            segments = transcribe(path, [(s, e) for _, _, s, e in spans], opts.asr_model, device=opts.device)
            vript.atomic_write_json(asr_cache, {"key": asr_key, "model": opts.asr_model,
                                                "segments": [list(x) for x in segments]})
        else:
            log(f"voice-over: {len(segments)} segment(s) from {asr_cache}")

    fingerprint = _model_fingerprint(vlm)
    cache_dir = out / "scenes"
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(False)

    def request(k: int):
        a, b, start, end = spans[k]
        if opts.dense:
            sample = sample_vript_scene(num_frames, fps, start, end)
            voice = _scene_voice(segments, start, end)
            text = " ".join(t for _, _, t in voice)
            prompt = vript.scene_prompt(opts.title or None, text or None)
            system = vript.ANNOTATION_SYSTEM
        else:
            sample = sample_uniform(num_frames, fps, min(opts.frames, num_frames))
            voice = [(s, e, t) for s, e, t in segments]
            lines = vript.voiceover_lines(voice)
            prompt = vript.vriptor_prompt(duration, len(sample), voiceover=lines or None)
            system = vript.VRIPTOR_SYSTEM
        key = _key(fingerprint, system, prompt, list(sample.indices), opts.max_new_tokens)
        return sample, voice, prompt, system, key

    results: dict[int, dict] = {}
    todo = []
    for k, cid in enumerate(ids):
        sample, voice, prompt, system, key = request(k)
        cached = cache_dir / f"{cid}.json"
        if cached.is_file():
            try:
                rec = json.loads(cached.read_text(encoding="utf-8"))
                if rec.get("key") == key:
                    results[k] = rec
                    continue
            except (json.JSONDecodeError, OSError):
                pass
        todo.append((k, sample, voice, prompt, system, key))
    if results:
        log(f"resuming: {len(results)} of {len(ids)} scene(s) already captioned in {cache_dir}")

    generated = 0
    for i in range(0, len(todo), opts.batch_size):
        chunk = todo[i:i + opts.batch_size]
        # one decode per batch (the file's index is read once), split back into scenes
        joined = read_frames(path, [idx for c in chunk for idx in c[1].indices], backend=opts.video_backend)
        decoded, items, at = [], [], 0
        for k, sample, voice, prompt, system, key in chunk:
            frames = joined.frames[at:at + len(sample)]
            at += len(sample)
            record = SamplingRecord.from_sample(sample, fps=fps, backend=joined.backend,
                                                resolution=(int(frames.shape[1]), int(frames.shape[2])))
            decoded.append((frames, record))
            items.append(VideoPrompt(frames, list(sample.indices), fps, duration, prompt, system,
                                     total_frames=num_frames))
        answers = vlm.generate(items, max_new_tokens=opts.max_new_tokens)
        generated += len(items)
        for (k, sample, voice, prompt, system, key), (frames, record), answer in zip(chunk, decoded, answers):
            _, _, start, end = spans[k]
            rec = {"key": key, "clip_id": ids[k], "start": round(start, 3), "end": round(end, 3),
                   "start_frame": spans[k][0], "end_frame": spans[k][1], "caption": vript.parse_caption(answer),
                   "raw": vript.clean_text(answer), "voiceover": [t for _, _, t in voice],
                   "voice_segments": [[round(s, 2), round(e, 2), t] for s, e, t in voice],
                   "prompt": prompt, "sampling": {**record.to_dict(), **vlm.describe()},
                   "thumbnails": [outputs.thumbnail_uri(f) for f in frames.numpy()]}
            vript.atomic_write_json(cache_dir / f"{ids[k]}.json", rec)
            results[k] = rec
            log(f"scene {k + 1}/{len(ids)} [{start:.1f}, {end:.1f}] s: {rec['caption']['scene_title'][:60]}")

    scenes_out = [results[k] for k in range(len(ids))]
    protocol = {"protocol": "vript" if opts.dense else "uniform", "backend": scenes_out[0]["sampling"]["backend"],
                "fps": fps, "resolution": scenes_out[0]["sampling"]["resolution"], "model": vlm.name,
                "family": vlm.family, "dense": opts.dense,
                "frames_per_scene": [s["sampling"]["frames"] for s in scenes_out]}
    title = opts.title or video_id
    clips = {s["clip_id"]: vript.clip_record(video_id, s["clip_id"], title, s["caption"], s["voiceover"],
                                             start=s["start"], end=s["end"], sampling=s["sampling"])
             for s in scenes_out}
    doc = vript.caption_json(video_id, title, clips,
                             extra_meta={"video": str(path), "duration": round(duration, 3), "fps": fps,
                                         "mode": "dense" if opts.dense else "whole", "sampling": protocol})
    vript.atomic_write_json(out / "caption.json", doc)
    vript.atomic_write_json(out / "cut_meta.json", vript.cut_meta({s["clip_id"]: (s["start"], s["end"])
                                                                   for s in scenes_out}))
    if opts.voiceover:
        vript.write_asr_jsonl(out / "asr.jsonl", [
            vript.asr_record(s["clip_id"], s["end"] - s["start"], [tuple(v) for v in s["voice_segments"]])
            for s in scenes_out])
    vript.atomic_write_text(out / "script.md", outputs.to_markdown(scenes_out, video=path.name, title=title,
                                                                   duration=duration, protocol=protocol))
    srt_note = f"NOTE sampling {json.dumps(protocol)}\n\n"
    vript.atomic_write_text(out / "captions.srt", outputs.to_srt(scenes_out))
    vtt = outputs.to_vtt(scenes_out)
    vript.atomic_write_text(out / "captions.vtt", vtt.replace("WEBVTT\n\n", "WEBVTT\n\n" + srt_note, 1))
    vript.atomic_write_json(out / "sampling.json", {"protocol": protocol,
                                                    "scenes": {s["clip_id"]: s["sampling"] for s in scenes_out}})
    if opts.storyboard:
        thumbs = {s["clip_id"]: s.get("thumbnails") or [
            outputs.thumbnail_uri(f) for f in read_frames(path, s["sampling"]["indices"],
                                                          backend=opts.video_backend).frames.numpy()]
            for s in scenes_out}
        vript.atomic_write_text(Path(opts.storyboard), outputs.to_html(
            scenes_out, thumbs, video=path.name, title=title, duration=duration, protocol=protocol))
    log(f"done: {len(ids)} scene(s), {generated} generated, {len(ids) - generated} from cache, "
        f"{time.monotonic() - t0:.1f} s")
    return out
