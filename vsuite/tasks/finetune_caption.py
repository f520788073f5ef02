"""`vsuite finetune RECIPE` with `[task] kind = "caption"`: train a video-language model on Vript-format data.

Recipe tables:
  [task]   kind = "caption"
  [model]  vsuite.models.vlm_config.CaptionModelConfig: init = folder or Hub id of a video-language model
           (SmolVLM2, Qwen2-VL, ...); lora = true trains LoRA adapters (peft) and merges them into the weights
           on save; false trains every unfrozen weight.
  [data]   vsuite.data.vript.CaptionDataConfig: root = a folder holding <video_id>_caption.json files
           (searched recursively) with, beside each, <video_id>_asr.jsonl, <video_id>_cut_meta.json and either
           the clips (<clip_id>.mp4) or the long video (<video_id>.mp4, cut at cut_meta's times). Samples
           follow Vript's three paradigms: windows of min_scenes..max_scenes consecutive scenes -> one
           multi-scene script (video-script alignment); the voice-over in the instruction (`voiceover`);
           Duration/Sampling Rate in the input and per-scene `(Duration: [s, e]/Ts)` in the output
           (`timestamps`).
  [train]  vsuite.train.TrainConfig.

Run folder: OUT/checkpoints/step-N (training state for --resume) and OUT/model: the final weights (adapters
merged) + processor as a plain Hugging Face folder that `vsuite caption --model OUT/model` loads. Its path goes
to stdout.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

from ..console import log
from ..data import vript
from ..data.vript import CaptionDataConfig
from ..errors import DataError, RecipeError
from ..models.vlm_config import CaptionModelConfig


@dataclass
class _Clip:
    cid: str
    source: Path  # clip file, or the long video
    start: float  # seconds within source
    end: float
    caption: dict
    asr: list[tuple[float, float, str]]  # spans relative to the clip start
    has_asr: bool = True  # the clip has a line in <video_id>_asr.jsonl (data.stage 1 | 2 need one, as Vript)


@dataclass
class Sample:
    clips: list[_Clip]
    instruction: str
    target: str


def _video_clips(caption_path: Path) -> list[_Clip]:
    video = vript.load_video_annotations(caption_path)
    folder = caption_path.parent
    long_video = next((p for p in (folder / f"{video.video_id}.{ext}" for ext in ("mp4", "mkv", "webm", "mov"))
                       if p.is_file()), None)
    out = []
    for cid in video.clip_ids():
        clip_file = folder / f"{cid}.mp4"
        asr = [(float(t["span"][0]), float(t["span"][1]), str(t["text"]))
               for t in video.asr.get(cid, {}).get("scene_text", [])]
        caption = video.clips[cid]["caption"]
        if clip_file.is_file():
            from ..media import probe

            info = probe(clip_file)
            out.append(_Clip(cid, clip_file, 0.0, info.num_frames / info.fps, caption, asr, cid in video.asr))
        elif long_video is not None and video.span(cid) is not None:
            s, e = video.span(cid)
            out.append(_Clip(cid, long_video, s, e, caption, asr, cid in video.asr))
        else:
            raise DataError(f"{caption_path}: clip {cid} has neither {clip_file.name} nor a long video "
                            f"{video.video_id}.mp4 with cut times in {video.video_id}_cut_meta.json")
    return out


def build_samples(clips: list[_Clip], cfg: CaptionDataConfig, seed: int = 0) -> list[Sample]:
    """One video's clips -> (instruction, target) samples following Vript's three paradigms.

    data.stage = 0: every window of min_scenes..max_scenes consecutive clips (max_windows_per_video random
    windows of each length when set). data.stage = 1 | 2: as Vript's stage-1/2 builders
    (vsuite.data.vript_training): every clip alone, then the randomly drawn windows.
    """
    if cfg.stage:
        return _vript_samples(clips, cfg, seed)
    rng = random.Random(seed)
    samples = []
    for k in range(cfg.min_scenes, min(cfg.max_scenes, len(clips)) + 1):
        windows = [clips[i:i + k] for i in range(len(clips) - k + 1)]
        if cfg.max_windows_per_video:
            windows = rng.sample(windows, min(len(windows), cfg.max_windows_per_video))
        for win in windows:
            samples.append(make_sample(win, cfg))
    return samples


def _vript_samples(clips: list[_Clip], cfg: CaptionDataConfig, seed: int) -> list[Sample]:
    from ..data import vript_training as T

    if not clips:
        return []
    clips = sorted(clips, key=lambda c: T.scene_number(c.cid))
    # one random stream per video (str seeds hash with sha512: the same in every process and file order)
    rng = random.Random(f"{seed}:{clips[0].cid.rsplit('-Scene-', 1)[0]}")
    samples = []
    for c in clips:  # build_training_vript_stage{1,2}_single.py
        if not T.single_clip_has_asr_record(c.has_asr):
            continue
        if cfg.stage == 2 and not T.keep_single_clip(rng, T.single_clip_duration(c.end - c.start, c.asr)):
            continue
        samples.append(make_sample([c], cfg, rng))
    numbers = [T.scene_number(c.cid) for c in clips]
    for a, b in T.sample_windows(rng, numbers, cfg.stage):  # build_training_vript_stage{1,2}_concat.py
        win = clips[a:b]
        if T.window_has_asr_records([c.has_asr for c in win]):
            sample = make_sample(win, cfg, rng)
            if sample is not None:
                samples.append(sample)
    return samples


def make_sample(win: list[_Clip], cfg: CaptionDataConfig, rng: random.Random | None = None) -> Sample | None:
    """Consecutive clips `win` -> one Sample. With data.stage = 2 a window of several clips follows the stage-2
    rules (ASR segments merged past 15 words, voice-over over 2048 words removed, short windows kept with
    p = 0.1, voice-over used with p = 0.3; `rng` draws) and is None when dropped."""
    from ..data import vript_training as T

    rng = rng or random.Random(0)
    offsets, t = [], 0.0
    for c in win:
        offsets.append(t)
        t += c.end - c.start
    total = t
    if len(win) == 1:
        target = win[0].caption.get("content", "")
    else:
        blocks = []
        for i, (c, off) in enumerate(zip(win, offsets)):
            title = c.caption.get("scene_title", "")
            header = (vript.script_header(i, len(win), title, off, off + c.end - c.start, total) if cfg.timestamps
                      else f"[Scene {i + 1}/{len(win)}: {title}]")
            blocks.append(f"{header}\n{c.caption.get('content', '')}")
        target = "\n\n".join(blocks)
    stage2_window = cfg.stage == 2 and len(win) > 1
    if stage2_window and not T.keep_window(rng, round(total, 1), len(win)):
        return None
    voice = None
    if cfg.voiceover:
        per_clip = [T.merge_asr_segments(c.asr) if stage2_window else c.asr for c in win]
        segs = T.concat_voiceover_segments(per_clip, [c.end - c.start for c in win],
                                           official_compat=cfg.official_compat)
        text = vript.voiceover_lines(segs)
        if stage2_window:
            text = T.drop_long_voiceover(text)
        keep_p = T.STAGE2_VOICEOVER_P if stage2_window else 1.0
        if T.use_voiceover(rng, text, target, keep_p, mention_needed=not cfg.voiceover_always):
            voice = text
    if cfg.timestamps:
        # the rate as the official data: duration / 64 whatever the frames sampled (vript.RATE_FRAMES)
        instruction = vript.vriptor_prompt(total, scene_by_scene=len(win) > 1, voiceover=voice,
                                           family=PROMPT_FAMILY)
    else:
        what = "the video scene by scene in detail." if len(win) > 1 else "the video in detail."
        instruction = (f'Voiceover:"{voice}". Based on the video and voiceover, describe {what}' if voice
                       else f"Describe {what}")
    return Sample(win, instruction, target)


def _positions(c: _Clip) -> tuple[float, ...]:
    from ..media import vript_positions

    return vript_positions(c.end - c.start)


def load_sample_frames(sample: Sample, backend: str = "auto"):
    """Vript's 3/4/5 frames of every scene, concatenated; (frames, indices on the joined timeline, fps, total)."""
    import torch

    from ..media import read_frames

    frames, times, off, fps = [], [], 0.0, 0.0
    for c in sample.clips:
        pos = _positions(c)
        ts = [c.start + p * (c.end - c.start) for p in pos]
        dec = read_frames(c.source, times=ts, backend=backend)
        fps = fps or dec.info.fps
        frames.append(dec.frames)
        times += [off + p * (c.end - c.start) for p in pos]
        off += c.end - c.start
    joined = torch.cat(frames) if len({f.shape[1:] for f in frames}) == 1 else _resize_all(frames)
    indices = [int(t * fps) for t in times]
    return joined, indices, fps, off


def _resize_all(frames):
    import torch
    import torch.nn.functional as F

    h, w = frames[0].shape[1:3]
    out = [F.interpolate(f.permute(0, 3, 1, 2).float(), size=(h, w), mode="bilinear").round().clamp(0, 255)
           .to(torch.uint8).permute(0, 2, 3, 1) for f in frames]
    return torch.cat(out)


class CaptionBatches:
    """Endless batches of processor inputs with labels; exact position for resume (epoch, index)."""

    def __init__(self, samples: list[Sample], vlm, cfg: CaptionDataConfig, seed: int, rank: int = 0,
                 world_size: int = 1) -> None:
        self.samples, self.vlm, self.cfg, self.seed = samples, vlm, cfg, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.index = 0, 0
        self._cache: dict[int, tuple] = {}

    def _order(self) -> list[int]:
        order = list(range(len(self.samples)))
        if self.cfg.shuffle:
            random.Random(self.seed * 7919 + self.epoch).shuffle(order)
        return order[self.rank::self.world_size] or order

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])

    def _item(self, i: int):
        from ..models.vlm import VideoPrompt

        if i not in self._cache:
            frames, indices, fps, total = load_sample_frames(self.samples[i], self.cfg.video_backend)
            if len(self._cache) < 256:  # small datasets stay decoded; big ones decode per step
                self._cache[i] = (frames, indices, fps, total)
        else:
            frames, indices, fps, total = self._cache[i]
        s = self.samples[i]
        return VideoPrompt(frames, indices, fps, total, s.instruction, vript.system_prompt(PROMPT_FAMILY),
                           total_frames=max(int(total * fps), max(indices) + 1)), s.target

    def __iter__(self):
        while True:
            order = self._order()
            per = max(1, len(order) // self.cfg.batch_size)
            while self.index < per:
                ids = order[self.index * self.cfg.batch_size:(self.index + 1) * self.cfg.batch_size]
                self.index += 1
                items = [self._item(i) for i in ids]
                yield self.vlm.training_batch([p for p, _ in items], [t for _, t in items])
            self.epoch, self.index = self.epoch + 1, 0


def wrap_model(model, cfg: CaptionModelConfig):
    """An nn.Module around the VLM (LoRA-wrapped or not) whose forward is the VLM's: the trainer saves its full
    state (adapters included) in checkpoints and resumes from it."""
    from torch import nn

    class CaptionTrainModule(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.vlm = inner

        def forward(self, **batch):
            return self.vlm(**batch)

    if cfg.lora:
        import warnings

        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft on transformers v5
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise RecipeError("model.lora = true needs the peft package (pip install peft)") from None
        names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [t for t in cfg.target_modules if t in names]
        if not targets:
            raise RecipeError(f"none of model.target_modules {cfg.target_modules} is a module of {cfg.init}")
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=rf".*(language_model|text_model|model\.layers).*\.({'|'.join(targets)})$",
                          modules_to_save=list(cfg.modules_to_save) or None)
        model = get_peft_model(model, lora)
    elif cfg.freeze_vision:
        for name, p in model.named_parameters():
            if "vision" in name or "visual" in name:
                p.requires_grad_(False)
    return CaptionTrainModule(model)


def _describe_checkpoint(folder: Path, cfg: CaptionModelConfig) -> None:
    """config.json of a training checkpoint: what it holds (the trainer's state dict of the wrapped VLM, LoRA
    adapters unmerged) -- no model_type, so it is not mistaken for a loadable model (that is OUT/model)."""
    import json

    (folder / "config.json").write_text(json.dumps({
        "vsuite_checkpoint": "finetune-caption", "base_model": cfg.init, "lora": cfg.lora, "caption_mode": CAPTION_MODE,
        "prompt_family": PROMPT_FAMILY,
        "note": "training state for --resume; the merged model that `vsuite caption --model` loads is OUT/model"},
        indent=2) + "\n")


# The question the trained model learns (recorded in OUT/model so that `vsuite caption` asks it the same):
# Vriptor's scene-by-scene mode in the wording of the stage-2 training data, no system prompt.
CAPTION_MODE = "vriptor"
PROMPT_FAMILY = "vriptor-stage2"


def find_caption_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*caption.json"))


def run(recipe, *, resume: str = "auto"):
    """Train as the recipe says; writes OUT/model and returns the trainer's TrainResult."""
    from ..models.vlm import VideoLM, save_vlm
    from ..train import distributed as D
    from ..data import data_roots
    from ..train import fit, parameter_summary, seed_everything
    from ..train.config import run_folder

    train, data, mcfg = recipe.train, recipe.data, recipe.model
    if not data.root:
        raise RecipeError(f"{recipe.source}: data.root is empty; give the folder with the Vript caption.json files")
    root = next((r / data.root for r in data_roots() if (r / data.root).is_dir()), Path(data.root))
    if not root.is_dir():
        raise DataError(f"data.root {data.root} is not a folder")
    files = find_caption_files(root)
    if not files:
        raise DataError(f"no *caption.json under {root}; expected Vript's <video_id>_caption.json files")
    out_dir = run_folder(train, recipe.source)
    env = D.init(train.device)
    try:
        samples = []
        for f in files:
            samples += build_samples(_video_clips(f), data, train.seed)
        seed_everything(train.seed)
        vlm = VideoLM.load(mcfg.init, device="cpu", dtype="float32")
        module = wrap_model(vlm.model, mcfg)
        batches = CaptionBatches(samples, vlm, data, train.seed, env.rank, env.world_size)
        if env.is_main:
            log(f"model {vlm.family} from {mcfg.init}: {parameter_summary(module)} "
                f"({'LoRA' if mcfg.lora else 'full'}) | {len(samples)} samples from {len(files)} video(s) "
                f"| run folder {out_dir}")
        result = fit(train, module, batches, recipe, out_dir=out_dir, resume=resume, env=env,
                     save_extra=lambda folder: _describe_checkpoint(folder, mcfg))
        if env.is_main:
            inner = module.vlm
            final = inner.merge_and_unload() if mcfg.lora else inner
            final.to("cpu")
            record = {vript.CAPTION_RECORD: vript.caption_record_text(CAPTION_MODE, PROMPT_FAMILY)}
            folder = save_vlm(final, vlm.processor, out_dir / "model", extra_files=record)
            recipe.write(folder / "recipe.toml")
            if result.losses:
                log(result.done_line(f"model (adapters merged) in {folder}"))
            sys.stdout.write(f"{folder}\n")
            sys.stdout.flush()
        return result
    finally:
        D.shutdown()
