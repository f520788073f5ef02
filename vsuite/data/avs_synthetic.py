"""A tiny synthetic AVSBench in the official layout (see vsuite.data.avsbench), learnable by a tiny model.

Every clip shows two squares on a grey background, a red one and a blue one, at random places that drift a
few pixels from frame to frame. A pure tone says which square sounds: red = 440 Hz, blue = 1320 Hz (both
tones, summed, when both sound). The ground-truth mask of a frame is the union of the sounding squares.
  S4  one square sounds for the whole clip (single source); train clips carry only the first frame's mask,
      as AVSBench's S4 train does.
  MS3 each one-second segment picks its sounding set at random from {red}, {blue}, {red, blue}.
Audio: 5 s of 16 kHz mono (80000 samples = exactly 5 VGGish examples), written as the preprocessing's
audio_wav/*.wav (16-bit PCM) and/or as the official audio_log_mel/*.pkl (pickle.dump of a float32 tensor
[5, 1, 96, 64], the exact format AVSBench ships, so the safe reader is exercised on it).

`write_synthetic_avs_video` writes the same kind of clip as one MP4 with sound, for `vsuite segment` tests.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from .avsbench import NUM_FRAMES, SUBSETS

SAMPLE_RATE = 16000
COLOURS = {"red": (220, 40, 40), "blue": (40, 70, 230)}
TONES_HZ = {"red": 440.0, "blue": 1320.0}
BACKGROUND = (128, 128, 128)


@dataclass(frozen=True)
class SyntheticClip:
    """What one synthetic clip holds: square corners per frame and sounding sources per frame."""

    name: str
    positions: dict  # colour -> [(top, left)] * 5
    side: int
    sounding: tuple  # per frame, a tuple of colours


def make_clip(rng: random.Random, name: str, size: int, split: str, seconds: int = NUM_FRAMES) -> SyntheticClip:
    """Random square tracks (non-overlapping in every frame) and sounding sources for one clip."""
    side = max(4, size // 4)
    drift = max(1, size // 32)
    while True:
        start = {c: (rng.randint(0, size - side), rng.randint(0, size - side)) for c in COLOURS}
        step = {c: (rng.choice((-drift, drift)), rng.choice((-drift, drift))) for c in COLOURS}
        pos = {c: [_clamp(start[c], step[c], t, size - side) for t in range(seconds)] for c in COLOURS}
        if all(not _overlap(pos["red"][t], pos["blue"][t], side) for t in range(seconds)):
            break
    if split == "s4":
        one = rng.choice(tuple(COLOURS))
        sounding = tuple((one,) for _ in range(seconds))
    else:
        sounding = tuple(rng.choice((("red",), ("blue",), ("red", "blue"))) for _ in range(seconds))
    return SyntheticClip(name, pos, side, sounding)


def _clamp(start, step, t, hi):
    return tuple(min(max(s + d * t, 0), hi) for s, d in zip(start, step))


def _overlap(a, b, side) -> bool:
    return abs(a[0] - b[0]) < side and abs(a[1] - b[1]) < side


def render_frame(clip: SyntheticClip, t: int, size: int):
    """uint8 [size, size, 3] RGB frame t."""
    import numpy as np

    img = np.empty((size, size, 3), np.uint8)
    img[:] = BACKGROUND
    for colour, rgb in COLOURS.items():
        top, left = clip.positions[colour][t]
        img[top:top + clip.side, left:left + clip.side] = rgb
    return img


def render_mask(clip: SyntheticClip, t: int, size: int):
    """bool [size, size]: the squares that sound in frame t."""
    import numpy as np

    mask = np.zeros((size, size), bool)
    for colour in clip.sounding[t]:
        top, left = clip.positions[colour][t]
        mask[top:top + clip.side, left:left + clip.side] = True
    return mask


def render_audio(clip: SyntheticClip, sample_rate: int = SAMPLE_RATE, amplitude: float = 0.4):
    """float32 [seconds * sample_rate]: second t holds the tones of the sources sounding in frame t."""
    import numpy as np

    seconds = len(clip.sounding)
    t = np.arange(seconds * sample_rate, dtype=np.float64) / sample_rate
    wave = np.zeros_like(t)
    for second, sources in enumerate(clip.sounding):
        part = slice(second * sample_rate, (second + 1) * sample_rate)
        for colour in sources:
            wave[part] += amplitude / len(sources) * np.sin(2 * np.pi * TONES_HZ[colour] * t[part])
    return wave.astype(np.float32)


def write_wav(path: Path, wave, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono WAV (what AVSBench's preprocessing extracted with moviepy)."""
    import wave as wavmod

    import numpy as np

    pcm = np.clip(np.round(np.asarray(wave) * 32767.0), -32768, 32767).astype("<i2")
    with wavmod.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())


def write_synthetic_avsbench(root: str | Path, *, split: str = "s4", n_train: int = 8, n_val: int = 4,
                             n_test: int = 4, size: int = 64, seed: int = 0, audio: str = "wav") -> Path:
    """Write the dataset under `root` (created) in the official layout of `split` ("s4" | "ms3") and return root.

    audio: "wav" (audio_wav/ only), "pkl" (audio_log_mel/ only) or "both"."""
    import pickle

    import numpy as np
    import torch
    from PIL import Image

    from ..media.vggish_input import pad_examples, waveform_to_examples

    if split not in ("s4", "ms3"):
        raise ValueError(f"split must be 's4' or 'ms3', got {split!r}")
    if audio not in ("wav", "pkl", "both"):
        raise ValueError(f"audio must be 'wav', 'pkl' or 'both', got {audio!r}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    root = Path(root)
    rng = random.Random(f"avs-synthetic/{split}/{seed}")
    counts = dict(zip(SUBSETS, (n_train, n_val, n_test)))
    base = root / ("Single-source" if split == "s4" else "Multi-sources")
    data = base / f"{split}_data"
    rows = []
    for subset in SUBSETS:
        for i in range(counts[subset]):
            category = "red_or_blue"
            name = f"syn_{subset}_{i:04d}"
            clip = make_clip(rng, name, size, split)
            rows.append([name, "0", category, subset] if split == "s4" else [name, subset])
            if split == "s4":
                frames_dir = data / "visual_frames" / subset / category / name
                masks_dir = data / "gt_masks" / subset / category / name
                audio_dir = category
            else:
                frames_dir = data / "visual_frames" / name
                masks_dir = data / "gt_masks" / subset / name
                audio_dir = ""
            frames_dir.mkdir(parents=True, exist_ok=True)
            masks_dir.mkdir(parents=True, exist_ok=True)
            infix = "_" if split == "s4" else ".mp4_"
            for t in range(NUM_FRAMES):
                Image.fromarray(render_frame(clip, t, size)).save(frames_dir / f"{name}{infix}{t + 1}.png")
            num_masks = 1 if (split == "s4" and subset == "train") else NUM_FRAMES
            for t in range(num_masks):
                mask = render_mask(clip, t, size)
                img = (Image.fromarray(mask) if split == "s4"  # mode '1'
                       else Image.fromarray(mask.astype(np.uint8) * 255).convert("P"))  # palette indices 0 / 255
                img.save(masks_dir / f"{name}_{t + 1}.png")
            wave = render_audio(clip)
            if audio in ("wav", "both"):
                wav_dir = data / "audio_wav" / subset / audio_dir
                wav_dir.mkdir(parents=True, exist_ok=True)
                write_wav(wav_dir / f"{name}.wav", wave)
            if audio in ("pkl", "both"):
                mel_dir = data / "audio_log_mel" / subset / audio_dir
                mel_dir.mkdir(parents=True, exist_ok=True)
                # the official format: pickle.dump of a float32 tensor [5, 1, 96, 64] (computed from the
                # 16-bit samples, as the preprocessing reads its wav)
                pcm = np.round(wave.astype(np.float64) * 32767.0) / 32768.0
                mel = torch.from_numpy(pad_examples(waveform_to_examples(pcm, SAMPLE_RATE), NUM_FRAMES))[:, None]
                with open(mel_dir / f"{name}.pkl", "wb") as handle:
                    pickle.dump(mel.float(), handle)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f"{split}_meta_data.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "start_time", "category", "split"] if split == "s4" else ["name", "split"])
        writer.writerows(rows)
    return root


def write_synthetic_avs_video(path: str | Path, *, sounding=("red",) * NUM_FRAMES, size: int = 64, fps: int = 8,
                              seed: int = 0, sample_rate: int = SAMPLE_RATE) -> SyntheticClip:
    """An MP4 (H.264 + AAC) of len(sounding) seconds of the synthetic scene: per second t the squares named in
    sounding[t] (colours, a str or a tuple) sound. Returns the clip description (positions per second; the
    video repeats frame t for the whole of second t, so frame-exact sampling is not needed)."""
    from ..media.synth import write_video

    rng = random.Random(f"avs-video/{seed}")
    per_second = tuple((s,) if isinstance(s, str) else tuple(s) for s in sounding)
    for sources in per_second:
        if not sources or any(c not in COLOURS for c in sources):
            raise ValueError(f"each second must name sounding colours among {tuple(COLOURS)}, got {sources!r}")
    base = make_clip(rng, Path(path).stem, size, "ms3", seconds=len(per_second))
    clip = SyntheticClip(base.name, base.positions, base.side, per_second)
    frames = (render_frame(clip, t, size) for t in range(len(per_second)) for _ in range(fps))
    write_video(path, frames, fps, audio=render_audio(clip, sample_rate), sample_rate=sample_rate)
    return clip


__all__ = ["COLOURS", "SAMPLE_RATE", "SyntheticClip", "TONES_HZ", "make_clip", "render_audio", "render_frame",
           "render_mask", "write_synthetic_avs_video", "write_synthetic_avsbench", "write_wav"]
