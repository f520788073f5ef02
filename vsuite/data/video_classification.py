"""Video classification datasets: Kinetics-style lists and Something-Something v2 JSON, clip sampling,
training augmentation, multi-view test views, and a resumable batch source for the shared trainer.

Lists: vsuite.data.video_lists. Transforms and targets: vsuite.data.video_transforms.

Frame sampling (`VideoPreprocess`, stored with every checkpoint as video_preprocessor_config.json):
  - "dense" (Kinetics): num_frames frames `sampling_rate` apart. Training: a uniformly random start in
    [0, max(L - span, 0)]; testing: vsuite.media.sample_clips (K clips, segment-centre starts). Frames past the
    end repeat the last frame.
  - "segments" (the official SSv2 loader): L - 1 is cut into num_frames segments [round(s i), round(s (i+1))]
    with s = (L - 1) / num_frames; training takes a random frame of each (ends included); test clip 0 takes
    the middle (start + end) // 2, clip 1 the start, clip 2 the end (at most 3 clips).
Spatial: training either "jitter" (official: short side resized to a random integer in
train_jitter_scales, then a random crop_size square) or "resized" (a random-resized crop: area fraction in
resized_scale, aspect ratio in [3/4, 4/3], resized to crop_size); then a horizontal flip with p = 0.5 if
random_flip (turn it off for direction-sensitive classes, e.g. SSv2 "left"/"right" or moving bars).
Testing: short side resized to test_short_side (single_crop_short_side for one crop), then `crops` squares
along the longer side (1: centre; 3: start / centre / end, SlowFast's uniform crop). Views are clip-major
(view = clip * crops + crop); predictions average the softmax over views. Pixels: x / 255, then
(x - mean) / std; bilinear resizing (align_corners False).

Targets: label smoothing gives (1 - eps) one_hot + eps / C; mixup draws lam ~ Beta(alpha, alpha) per batch and
mixes each sample with the batch reversed: x = lam x + (1 - lam) x.flip(0), targets likewise (timm's
batch mode). With either on, batches carry target distributions [B, C] instead of class ids [B].

Batches (`VideoClipBatches`): endless over epochs, each epoch a permutation seeded by (seed, epoch), rank r of
W takes positions r, r + W, ... cut to whole batches; every random choice of a sample is seeded by (seed,
epoch, position), so the stream is the same with any number of loader workers and `load_state_dict`
continues exactly where a run stopped.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import DataError, UsageError
from .video_lists import VideoItem, VideoList, read_label_map, read_video_list, resolve_data_path
from .video_transforms import (mixup, normalize, random_resized_crop, resize_short_side, smooth_one_hot, spatial_crops,
                               to_float)

PREPROCESS_FILE = "video_preprocessor_config.json"


# ----------------------------------------------------------------------------- configs
class VideoClassificationDataConfig(BaseModel):
    """The [data] table of a classification finetune recipe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    train: str = Field("", description="training list: CSV (path,label / youtube_id,label,...), `path label` "
                                       "lines, or SSv2 JSON; relative paths: working directory, then the checkout")
    val: str = Field("", description="held-out list scored during training (see [eval]); empty: none")
    root: str = Field("", description="videos root; empty: the folder of the list")
    labels: str = Field("", description="label map: JSON {name: id} or [names], or one name per line")
    num_frames: int = Field(0, ge=0, description="frames per clip; 0 = the model's num_frames")
    sampling: Literal["dense", "segments"] = "dense"
    sampling_rate: int = Field(16, ge=1, description="dense sampling: frames between sampled frames")
    crop_size: int = Field(224, ge=1)
    train_crop: Literal["jitter", "resized"] = "jitter"
    train_jitter_scales: list[int] = Field(default_factory=lambda: [256, 320])
    resized_scale: list[float] = Field(default_factory=lambda: [0.08, 1.0])
    random_flip: bool = True
    mixup_alpha: float = Field(0.0, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    test_short_side: int = Field(0, ge=0, description="short side before several test crops; 0 = crop_size")
    single_crop_short_side: int = Field(0, ge=0, description="short side before one centre crop; 0 = "
                                                             "train_jitter_scales[0]")
    batch_size: int = Field(8, ge=1, description="clips per micro-batch on each rank")
    num_workers: int = Field(0, ge=0, description="decoding processes per rank (0: decode in the training process)")
    cache: bool = Field(False, description="keep every decoded video in memory (small datasets only)")
    video_backend: Literal["auto", "decord", "pyav"] = "auto"
    shuffle: bool = True
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> VideoClassificationDataConfig:
        lo_hi = self.train_jitter_scales
        if len(lo_hi) != 2 or not 1 <= lo_hi[0] <= lo_hi[1]:
            raise ValueError(f"train_jitter_scales must be [min, max] with 1 <= min <= max, got {lo_hi}")
        if self.train_crop == "jitter" and lo_hi[0] < self.crop_size:
            raise ValueError(f"train_jitter_scales {lo_hi} must not go below crop_size {self.crop_size}")
        sc = self.resized_scale
        if len(sc) != 2 or not 0 < sc[0] <= sc[1] <= 1:
            raise ValueError(f"resized_scale must be [min, max] within (0, 1], got {sc}")
        return self

    def preprocess(self, num_frames: int, mean: list[float], std: list[float]) -> VideoPreprocess:
        """The test-time protocol this data config implies, for a model taking `num_frames` frames."""
        return VideoPreprocess(num_frames=self.num_frames or num_frames, sampling=self.sampling,
                               sampling_rate=self.sampling_rate, crop_size=self.crop_size,
                               test_short_side=self.test_short_side or self.crop_size,
                               single_crop_short_side=self.single_crop_short_side or self.train_jitter_scales[0],
                               mean=list(mean), std=list(std))


@dataclass
class VideoPreprocess:
    """How frames become model inputs: sampling protocol, crop geometry, normalisation."""

    num_frames: int = 16
    sampling: str = "dense"
    sampling_rate: int = 16
    crop_size: int = 224
    test_short_side: int = 224
    single_crop_short_side: int = 256
    mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / PREPROCESS_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict) -> VideoPreprocess:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def for_model(cls, folder: str | Path | None, model_config) -> VideoPreprocess:
        """The checkpoint's video_preprocessor_config.json, else defaults from the model config (dense
        sampling at rate 16 like the Kinetics recipe, crops of image_size, test short side image_size)."""
        path = Path(folder) / PREPROCESS_FILE if folder is not None else None
        if path is not None and path.is_file():
            try:
                return cls.from_dict(json.loads(path.read_text()))
            except (ValueError, TypeError) as err:
                raise DataError(f"cannot read {path}: {err}") from None
        size = int(getattr(model_config, "image_size", 224))
        return cls(num_frames=int(getattr(model_config, "num_frames", 16)), crop_size=size, test_short_side=size,
                   single_crop_short_side=size, mean=list(getattr(model_config, "image_mean", [0.5] * 3)),
                   std=list(getattr(model_config, "image_std", [0.5] * 3)))


# ----------------------------------------------------------------------------- temporal sampling
def train_frame_indices(num_video_frames: int, pre: VideoPreprocess, rng: random.Random) -> list[int]:
    """One random training clip (see the module docstring)."""
    n, length = pre.num_frames, num_video_frames
    if pre.sampling == "segments":
        seg = (length - 1) / n
        return [rng.randint(round(seg * i), round(seg * (i + 1))) for i in range(n)]
    span = (n - 1) * pre.sampling_rate + 1
    start = rng.randint(0, max(length - span, 0))
    return [min(start + j * pre.sampling_rate, length - 1) for j in range(n)]


def view_frame_samples(num_video_frames: int, fps: float, pre: VideoPreprocess, clips: int) -> list:
    """K deterministic test clips as vsuite.media FrameSamples."""
    from ..media import FrameSample, sample_clips

    if pre.sampling == "dense":
        return sample_clips(num_video_frames, fps, clips, pre.num_frames, pre.sampling_rate)
    if clips > 3:
        raise DataError(f"segment sampling has 3 test clips at most (middle, start, end of each segment), "
                        f"asked for {clips}")
    seg = (num_video_frames - 1) / pre.num_frames
    bounds = [(round(seg * i), round(seg * (i + 1))) for i in range(pre.num_frames)]
    pick = [lambda a, b: (a + b) // 2, lambda a, b: a, lambda a, b: b]
    out = []
    for k in range(clips):
        idx = [pick[k](a, b) for a, b in bounds]
        out.append(FrameSample(tuple(idx), tuple(i / fps for i in idx), "segments",
                               {"num_frames": pre.num_frames, "clip": k, "num_clips": clips,
                                "position": ("middle", "start", "end")[k]}))
    return out


# ----------------------------------------------------------------------------- spatial transforms
def train_transform(frames, pre: VideoPreprocess, cfg: VideoClassificationDataConfig, rng: random.Random):
    """uint8 [T, H, W, 3] -> normalised float [T, 3, crop, crop] with the training augmentation."""
    x = to_float(frames)
    size = pre.crop_size
    if cfg.train_crop == "jitter":
        x = resize_short_side(x, rng.randint(*cfg.train_jitter_scales))
        h, w = x.shape[-2:]
        top, left = rng.randint(0, h - size), rng.randint(0, w - size)
        x = x[..., top:top + size, left:left + size]
    else:
        x = random_resized_crop(x, size, cfg.resized_scale, rng)
    if cfg.random_flip and rng.random() < 0.5:
        x = x.flip(-1)
    return normalize(x.contiguous(), pre.mean, pre.std)


def views_from_clips(frames_per_clip: list, pre: VideoPreprocess, crops: int):
    """Clips of uint8 frames -> float [clips * crops, T, 3, crop, crop], clip-major."""
    import torch

    short = pre.test_short_side if crops > 1 else pre.single_crop_short_side
    views = []
    for frames in frames_per_clip:
        x = resize_short_side(to_float(frames), short)
        views.extend(normalize(c.contiguous(), pre.mean, pre.std) for c in spatial_crops(x, pre.crop_size, crops))
    return torch.stack(views)


def check_views(clips: int, crops: int) -> None:
    """Multi-view testing needs at least one clip and one crop (UsageError, exit 2)."""
    if clips < 1 or crops < 1:
        raise UsageError(f"--clips and --crops must be >= 1, got {clips} and {crops}")


def load_views(path: str | Path, pre: VideoPreprocess, clips: int = 1, crops: int = 1, *, backend: str = "auto"):
    """Decode one video's test views: (float [clips * crops, T, 3, S, S], sampling record dict)."""
    from ..media import SamplingRecord, probe, read_frames

    info = probe(path)
    samples = view_frame_samples(info.num_frames, info.fps, pre, clips)
    wanted = [i for s in samples for i in s.indices]
    decoded = read_frames(path, wanted, backend=backend)
    t = pre.num_frames
    per_clip = [decoded.frames[k * t:(k + 1) * t] for k in range(len(samples))]
    res = (int(decoded.frames.shape[1]), int(decoded.frames.shape[2]))
    records = [SamplingRecord.from_sample(s, fps=info.fps, backend=decoded.backend, resolution=res).to_dict()
               for s in samples]
    record = {"clips": records, "num_clips": clips, "num_crops": crops, "views": clips * crops,
              "spatial": {"short_side": pre.test_short_side if crops > 1 else pre.single_crop_short_side,
                          "crop_size": pre.crop_size, "crops": crops},
              "preprocess": pre.to_dict(), "backend": decoded.backend, "video_frames": info.num_frames,
              "fps": info.fps}
    return views_from_clips(per_clip, pre, crops), record


def protocol(pre: VideoPreprocess, clips: int, crops: int, backend: str) -> dict[str, Any]:
    """The multi-view test protocol in words and numbers, for result files."""
    return {"sampling": pre.sampling, "num_frames": pre.num_frames,
            "sampling_rate": pre.sampling_rate if pre.sampling == "dense" else None,
            "clips": clips, "crops": crops, "views": clips * crops, "crop_size": pre.crop_size,
            "short_side": pre.test_short_side if crops > 1 else pre.single_crop_short_side,
            "mean": pre.mean, "std": pre.std, "aggregation": "mean of softmax over views", "backend": backend}


# ----------------------------------------------------------------------------- targets
def _rng(*parts) -> random.Random:
    return random.Random("/".join(str(p) for p in parts))


class _Clips:
    """Map-style access to training clips by (item index, sample seed); picklable for loader workers."""

    def __init__(self, items: list[VideoItem], pre: VideoPreprocess, cfg: VideoClassificationDataConfig):
        self.items, self.pre, self.cfg = items, pre, cfg
        self._cache: dict[int, Any] = {}

    def clip(self, index: int, seed: str):
        from ..media import probe, read_frames

        item, rng = self.items[index], _rng(seed)
        if self.cfg.cache:
            if index not in self._cache:
                n = probe(item.path).num_frames
                self._cache[index] = read_frames(item.path, list(range(n)), backend=self.cfg.video_backend).frames
            frames = self._cache[index]
            frames = frames[train_frame_indices(frames.shape[0], self.pre, rng)]
        else:
            n = probe(item.path).num_frames
            frames = read_frames(item.path, train_frame_indices(n, self.pre, rng),
                                 backend=self.cfg.video_backend).frames
        return train_transform(frames, self.pre, self.cfg, rng), item.label


class _EpochSlice:
    """torch Dataset over one epoch's remaining positions (for DataLoader workers)."""

    def __init__(self, clips: _Clips, jobs: list[tuple[int, str]]):
        self.clips, self.jobs = clips, jobs

    def __len__(self):
        return len(self.jobs)

    def __getitem__(self, k):
        return self.clips.clip(*self.jobs[k])


def _collate(samples):
    import torch

    return torch.stack([s[0] for s in samples]), torch.tensor([s[1] for s in samples], dtype=torch.long)


class VideoClipBatches:
    """{"labels", "pixel_values"} batches for one rank; endless over epochs, resumable (see module docstring)."""

    def __init__(self, videos: VideoList, pre: VideoPreprocess, cfg: VideoClassificationDataConfig, *,
                 num_classes: int, rank: int = 0, world_size: int = 1):
        unlabelled = [i for i in videos.items if i.label is None]
        if unlabelled:
            raise DataError(f"{videos.source}: {unlabelled[0].path.name} has no label; training needs labels")
        self.videos, self.pre, self.cfg = videos, pre, cfg
        self.num_classes, self.rank, self.world_size = num_classes, rank, world_size
        self.batch_size, self.seed = cfg.batch_size, cfg.seed
        self.num_videos = len(videos.items)
        self.batches_per_epoch = (self.num_videos // world_size) // self.batch_size
        if self.batches_per_epoch == 0:
            raise DataError(f"{videos.source} has {self.num_videos} videos, fewer than data.batch_size "
                            f"{self.batch_size} x {world_size} rank(s); add videos or lower data.batch_size")
        self.clips = _Clips(videos.items, pre, cfg)
        self.epoch, self.index = 0, 0

    def epoch_order(self, epoch: int) -> list[int]:
        order = list(range(self.num_videos))
        if self.cfg.shuffle:
            _rng("order", self.seed, epoch).shuffle(order)
        mine = order[self.rank::self.world_size][: self.num_videos // self.world_size]
        return mine[: self.batches_per_epoch * self.batch_size]

    def _batches(self, epoch: int, first: int) -> Iterator:
        order = self.epoch_order(epoch)
        jobs = [(order[p], f"clip/{self.seed}/{epoch}/{p}") for p in range(first * self.batch_size, len(order))]
        if self.cfg.num_workers == 0:
            for b in range(0, len(jobs), self.batch_size):
                yield _collate([self.clips.clip(*job) for job in jobs[b:b + self.batch_size]])
            return
        import torch

        loader = torch.utils.data.DataLoader(_EpochSlice(self.clips, jobs), batch_size=self.batch_size,
                                             num_workers=self.cfg.num_workers, collate_fn=_collate,
                                             persistent_workers=False)
        yield from loader

    def __iter__(self) -> Iterator[dict]:
        while True:
            epoch = self.epoch
            for x, y in self._batches(epoch, self.index):
                batch_index = self.index
                self.index += 1
                yield self._targets(x, y, epoch, batch_index)
            self.epoch, self.index = epoch + 1, 0

    def _targets(self, x, y, epoch: int, batch_index: int) -> dict:
        cfg = self.cfg
        if cfg.mixup_alpha <= 0 and cfg.label_smoothing <= 0:
            return {"labels": y, "pixel_values": x}
        target = smooth_one_hot(y, self.num_classes, cfg.label_smoothing)
        if cfg.mixup_alpha > 0:
            lam = _rng("mixup", self.seed, epoch, batch_index, self.rank).betavariate(cfg.mixup_alpha, cfg.mixup_alpha)
            x, target = mixup(x, target, lam)
        return {"labels": target, "pixel_values": x}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "num_videos": self.num_videos,
                "batch_size": self.batch_size, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        from ..console import warn

        for key in ("num_videos", "batch_size", "world_size", "seed"):
            if key in state and state[key] != getattr(self, key):
                warn(f"data position saved with {key}={state[key]}, now {getattr(self, key)}: the batches after "
                     "resuming will not be the ones the original run would have seen")
        self.epoch, self.index = int(state["epoch"]), min(int(state["index"]), self.batches_per_epoch)


__all__ = [
    "PREPROCESS_FILE", "VideoClassificationDataConfig", "VideoClipBatches", "VideoItem", "VideoList",
    "VideoPreprocess", "load_views", "mixup", "protocol", "read_label_map", "read_video_list",
    "resolve_data_path", "smooth_one_hot", "spatial_crops", "view_frame_samples", "views_from_clips",
    "train_frame_indices", "train_transform",
]
