"""Planning a `vsuite caption` run: everything that can fail on bad input, before anything is written.

Modes (`resolve_mode`): `vript` captions each detected scene with Vript's annotation prompt (3/4/5 frames);
`vriptor` is Vriptor's own dense mode: the whole video, 64 frames (`get_seq_frames`), the "scene by scene"
instruction, the answer split back into scenes; `whole` is one whole-video caption. A model folder written
by `vsuite finetune` records its mode and prompt family (vsuite_caption.json) and gets them by default.

`make_plan` probes the video, resolves the video-language model's folder, the Whisper folder (with
--voiceover), the device and the dtype, then splits the video into scenes and picks each scene's frames.
Every user error (missing or unreadable video, no audio for --voiceover, missing model, bad device) is
raised here, so a failing run creates no output folder and no scene detection runs for nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...console import log
from ...data import vript
from ...errors import ModelNotFoundError, UsageError

CACHE_VERSION = 2  # bump when a cached record's meaning changes
MODES = ("auto", "whole", "vript", "vriptor")
DEFAULT_MAX_NEW_TOKENS = 256  # vript and whole modes; vriptor mode: VRIPTOR_DECODING's 2048


def cache_key(*parts) -> str:
    """A short hash of everything a cached result depends on (JSON of the parts)."""
    blob = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class CaptionOptions:
    model: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    out: Path | None = None
    dense: bool | None = None  # True: a dense mode (vript or vriptor by model), False: whole, None: by model
    mode: str = "auto"  # auto | whole | vript | vriptor
    title: str = ""
    voiceover: bool = False
    asr_model: str = "openai/whisper-small"
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 4
    max_new_tokens: int | None = None  # None: the mode's default
    num_beams: int | None = None  # None: the mode's default (vriptor: demo.py's decoding; others: greedy)
    top_p: float | None = None
    repetition_penalty: float | None = None
    do_sample: bool | None = None
    seed: int = 0  # sampling decodes are seeded per request
    frames: int | None = None  # whole-video modes (whole, vriptor); None: 64
    threshold: float = 27.0
    min_scene_len: int = 15
    storyboard: Path | None = None
    video_backend: str = "auto"


@dataclass
class ScenePlan:
    """One scene (or the whole video without --dense) and the frames the model will see."""

    index: int
    clip_id: str
    start_frame: int
    end_frame: int  # exclusive
    start: float  # seconds
    end: float
    sample: Any  # vsuite.media.FrameSample


@dataclass
class Plan:
    video: Path
    video_id: str
    title: str  # --title, or the file name's stem (what caption.json calls video_title)
    out: Path
    fps: float
    num_frames: int
    duration: float  # seconds = num_frames / fps
    dense: bool  # per-scene captions from scene detection (the vript mode)
    model_ref: str
    model_dir: Path
    family: str  # config.json model_type
    fingerprint: str  # model name, weights' stat and dtype: part of every scene's cache key
    device: Any  # torch.device
    dtype: Any  # torch.dtype
    asr_dir: Path | None = None  # Whisper folder with --voiceover
    scenes: list[ScenePlan] = field(default_factory=list)
    mode: str = "vript"  # whole | vript | vriptor (resolved)
    prompt_family: str = "vript"  # vsuite.data.vript.PROMPT_FAMILIES
    generation: dict = field(default_factory=dict)  # generate() settings, max_new_tokens included

    @property
    def spans(self) -> list[tuple[float, float]]:
        return [(s.start, s.end) for s in self.scenes]


def model_fingerprint(name: str, folder: Path, family: str, dtype) -> str:
    """Name, family, the weights' size and mtime, dtype: retraining into the same folder invalidates the cache."""
    stamp = ";".join(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}"
                     for f in sorted(Path(folder).glob("*.safetensors")))
    return f"{name}|{family}|{stamp}|{dtype}"


def model_folder(ref: str, flag: str = "--model") -> Path:
    """The local Hugging Face folder of `ref` (folder or Hub id); ModelNotFoundError (exit 4) without config.json.

    Only the hub client: vsuite.models (torch, transformers) is not imported while planning.
    """
    from ...hub import resolve_model_dir

    folder = resolve_model_dir(ref, flag=flag)
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder} has no config.json; {flag} needs a Hugging Face model folder or Hub id")
    return folder


def model_family(folder: Path) -> str:
    """`model_type` of the folder's config.json ("smolvlm", "qwen2_vl", ...)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        return str(config.get("model_type") or "unknown")
    except (OSError, ValueError, AttributeError):
        raise ModelNotFoundError(f"{folder / 'config.json'} is not a readable JSON model config") from None


def _check_options(opts: CaptionOptions) -> None:
    # the CLI checks these too; run() is also a library entry point
    if opts.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    for flag, value in (("--max-new-tokens", opts.max_new_tokens), ("--frames", opts.frames),
                        ("--num-beams", opts.num_beams)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1")
    if opts.top_p is not None and not 0 < opts.top_p <= 1:
        raise UsageError("--top-p must be in (0, 1]")
    if opts.repetition_penalty is not None and not opts.repetition_penalty > 0:
        raise UsageError("--repetition-penalty must be > 0")
    if opts.mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got {opts.mode!r}")
    if opts.mode == "whole" and opts.dense or opts.mode in ("vript", "vriptor") and opts.dense is False:
        raise UsageError(f"--mode {opts.mode} contradicts --{'dense' if opts.dense else 'whole'}; drop one")


def vriptor_style(model_ref: str, family: str, record: dict | None) -> bool:
    """A Vriptor-style checkpoint: one `vsuite finetune` wrote (it records its mode), an ST-LLM model
    (`st_llm*` model_type, as Mutonix/Vriptor-STLLM), or a model named Vriptor."""
    return record is not None or family.startswith("st_llm") or "vriptor" in model_ref.lower()


def resolve_mode(opts: CaptionOptions, model_ref: str, family: str, record: dict | None) -> tuple[str, str]:
    """(mode, prompt family). --mode wins; else --dense picks the model's dense mode (vriptor for a
    Vriptor-style checkpoint, vript otherwise), --whole the whole mode, and neither the recorded mode
    (vriptor for a Vriptor-style checkpoint, whole otherwise). The prompt family is the recorded one, else
    `vriptor` (demo.py) for the whole-video modes and `vript` for the per-scene one."""
    styled = vriptor_style(model_ref, family, record)
    if opts.mode != "auto":
        mode = opts.mode
    elif opts.dense:
        mode = "vriptor" if styled else "vript"
    elif opts.dense is False:
        mode = "whole"
    elif record is not None and record.get("mode") in MODES[1:]:
        mode = record["mode"]
    else:
        mode = "vriptor" if styled else "whole"
    if mode == "vript":
        return mode, "vript"
    recorded = (record or {}).get("prompt_family")
    return mode, recorded if recorded in vript.PROMPT_FAMILIES and recorded != "vript" else "vriptor"


def generation_settings(opts: CaptionOptions, mode: str) -> dict:
    """generate() settings: the Vriptor demo's decoding in vriptor mode, greedy otherwise; flags override."""
    out = dict(vript.VRIPTOR_DECODING) if mode == "vriptor" else {"max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
                                                             "num_beams": 1, "do_sample": False}
    for key in ("max_new_tokens", "num_beams", "top_p", "repetition_penalty", "do_sample"):
        if getattr(opts, key) is not None:
            out[key] = getattr(opts, key)
    if not out.get("do_sample"):
        out.pop("top_p", None)  # no sampling: top_p would only draw a transformers warning
    return out


def make_plan(video: str | Path, opts: CaptionOptions) -> Plan:
    """Checks in the order of their cost: options, video header, model folders, device, then scene detection."""
    from ...devices import resolve_device, resolve_dtype
    from ...media import errors as media_errors
    from ...media import probe
    from .asr import asr_folder

    _check_options(opts)
    path = Path(video)
    out = Path(opts.out) if opts.out else path.with_name(f"{path.stem}.caption")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a folder (it is created if missing)")
    if opts.storyboard and Path(opts.storyboard).is_dir():
        raise UsageError(f"--storyboard {opts.storyboard} is a folder; pass an .html file name")
    info = probe(path)  # MediaError (exit 5): missing, unreadable, audio-only
    if not info.num_frames:
        raise media_errors.empty_video(path)
    model_dir = model_folder(opts.model)  # ModelNotFoundError (exit 4), before torch is imported
    asr_dir = asr_folder(path, info, opts.asr_model) if opts.voiceover else None
    device = resolve_device(opts.device)  # DeviceError (exit 6)
    dtype = resolve_dtype(opts.dtype, device)
    family = model_family(model_dir)
    mode, prompt_family = resolve_mode(opts, str(opts.model), family, vript.read_caption_record(model_dir))
    fps = float(info.fps)
    num_frames = int(info.num_frames)
    plan = Plan(video=path, video_id=path.stem, title=opts.title or path.stem, out=out, fps=fps,
                num_frames=num_frames, duration=num_frames / fps, dense=mode == "vript", model_ref=str(opts.model),
                model_dir=model_dir, family=family,
                fingerprint=model_fingerprint(str(opts.model), model_dir, family, dtype), device=device,
                dtype=dtype, asr_dir=asr_dir, mode=mode, prompt_family=prompt_family,
                generation=generation_settings(opts, mode))
    plan.scenes = _scenes(plan, opts)  # the one slow step: every frame is decoded once with --dense
    log(f"{path.name}: {plan.duration:.1f} s at {fps:g} fps, {len(plan.scenes)} scene(s); model {plan.model_ref} "
        f"({family}) on {device}; mode {mode} (prompts: {prompt_family}); output {plan.out}")
    return plan


def _scenes(plan: Plan, opts: CaptionOptions) -> list[ScenePlan]:
    """Scene spans (streaming detection with --dense, else the whole video) with their frame samples."""
    from ...media import detect_scenes, sample_vript_scene
    from ...media.sampling import sample_whole_video

    if plan.dense:
        found = detect_scenes(plan.video, threshold=opts.threshold, min_scene_len=opts.min_scene_len,
                              backend=opts.video_backend)
        spans = [(sc.start_frame, sc.end_frame, sc.start_time, sc.end_time) for sc in found]
        # the frames actually decoded, which can be fewer than the header's count
        plan.num_frames = spans[-1][1]
        plan.duration = plan.num_frames / plan.fps
    else:
        spans = [(0, plan.num_frames, 0.0, plan.duration)]
    out = []
    for k, (a, b, start, end) in enumerate(spans):
        if plan.dense:  # Vript: 3/4/5 frames by scene length
            sample = sample_vript_scene(plan.num_frames, plan.fps, start, end)
        else:  # Vriptor's whole-video sampling (get_seq_frames), 64 frames unless --frames
            sample = sample_whole_video(plan.num_frames, plan.fps, opts.frames or vript.RATE_FRAMES)
        out.append(ScenePlan(k, vript.clip_id(plan.video_id, k), a, b, start, end, sample))
    return out
