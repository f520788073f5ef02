"""`vsuite caption VIDEO`: Vript-style dense, script-like captions of a (long) video.

    plan.py      probe, model / Whisper / device checks, scene split, each scene's frames  (nothing written)
    asr.py       --voiceover: Whisper on the whole video once (cached in OUT/scenes/voiceover.json)
    generate.py  prompts, the scene cache (OUT/scenes/<clip_id>.json), batched model calls
    outputs.py   <id>_caption.json, <id>_cut_meta.json, <id>_asr.jsonl, script.md, captions.srt/.vtt, sampling.json;
                 OutputGuard takes a failed run's files back
    storyboard.py  the HTML storyboard (--storyboard FILE)

With --dense: scenes from streaming scene detection, Vript's 3/4/5 frames and annotation prompt per scene.
Without: one whole-video caption from uniformly sampled frames with Vriptor's whole-video instruction.
A rerun reuses every finished scene whose cache key (model, prompt, frames, generation length) matches.
"""

from __future__ import annotations

import time
from pathlib import Path

from ...console import log
from .plan import CaptionOptions

__all__ = ["CaptionOptions", "run"]


def run(video: str, opts: CaptionOptions) -> Path:
    """Caption `video`; returns the output folder. A failed run leaves no new file behind."""
    from . import asr, generate, outputs, storyboard
    from .plan import make_plan

    t0 = time.monotonic()
    plan = make_plan(video, opts)  # every input error is raised here, before anything is written
    guard = outputs.OutputGuard(plan.out, [Path(opts.storyboard)] if opts.storyboard else [])
    try:
        transcript = asr.voiceover(plan, opts.asr_model) if plan.asr_dir else None  # the whole video, once
        segments = asr.prompt_segments(plan, transcript, annotation=plan.prompt_family == "vript")
        scenes, generated = generate.caption_scenes(plan, opts, segments)
        proto = outputs.write_outputs(plan, scenes, transcript)
        if opts.storyboard:
            storyboard.write(Path(opts.storyboard), plan, scenes, proto, backend=opts.video_backend)
    except KeyboardInterrupt:
        kept = guard.undo(keep=plan.out / "scenes")  # finished scenes stay: the same command resumes
        if kept:
            log(f"interrupted: {kept} finished result(s) kept in {plan.out / 'scenes'}; rerun the same command "
                "to resume")
        raise
    except BaseException:
        guard.undo()
        raise
    log(f"done: {len(scenes)} scene(s), {generated} generated, {len(scenes) - generated} from cache, "
        f"{time.monotonic() - t0:.1f} s")
    return plan.out
