"""Video classification datasets: Kinetics-style lists and Something-Something v2 JSON, clip sampling,
training augmentation, multi-view test views, and a resumable batch source for the shared trainer.

Lists (`read_video_list`):
  - Kinetics CSV with a header: `path,label[,...]` (path relative to the videos root, or absolute), or the
    official annotation layout `youtube_id,label,time_start,time_end[,split]`, whose clips are found under the
    root by name (`<youtube_id>_<start:06d>_<end:06d>.<ext>`, or any file whose name starts with the id,
    anywhere below the root, e.g. in per-class folders);
  - plain `path label` lines (the SlowFast / XViT format; the label is the last whitespace-separated field);
  - SSv2 JSON: a list of {"id", "label", "template", "placeholders"}; the class is the template with its
    brackets removed, looked up in labels.json (SSv2's `{"class name": "id"}` file, found beside the list
    when not given); the video is `<root>/<id>.webm` (or .mp4 / .mkv / .avi).
  A label is a class id (an integer) or a class name. Names go through the label map when one is given
  (a labels file: JSON {name: id} or [names], or a text file with one name per line; or a model's
  label2id); without one, names are numbered in sorted order (the Kinetics convention).

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

import csv
import json
import math
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import DataError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")
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


# ----------------------------------------------------------------------------- lists
@dataclass
class VideoItem:
    path: Path
    label: int | None  # class id (None: unlabelled, e.g. an SSv2 test list)
    raw_label: str = ""  # as written in the list


@dataclass
class VideoList:
    items: list[VideoItem]
    classes: list[str] | None  # id -> name when known (names in the list, or a label map)
    source: str = ""
    format: str = ""

    @property
    def num_classes(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        ids = [i.label for i in self.items if i.label is not None]
        return max(ids) + 1 if ids else 0

    def class_names(self) -> list[str]:
        return list(self.classes) if self.classes is not None else [str(i) for i in range(self.num_classes)]


def resolve_data_path(path: str | Path, roots: list[Path] = ()) -> Path:
    """A relative path from the working directory if it exists there, else from the first root that has it."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    for root in roots:
        if (Path(root) / p).exists():
            return Path(root) / p
    return p


def read_label_map(path: str | Path) -> dict[str, int]:
    """name -> id from JSON {name: id} (ids may be strings, as in SSv2's labels.json), JSON [names], or
    a text file with one name per line (line number = id)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"cannot read the label map {path}: {err.strerror or err}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise DataError(f"{path} is not valid JSON ({err})") from None
        if isinstance(data, list):
            return {str(name): i for i, name in enumerate(data)}
        if isinstance(data, dict):
            try:
                return {str(name): int(i) for name, i in data.items()}
            except (TypeError, ValueError):
                raise DataError(f"{path}: label map values must be class ids (integers)") from None
        raise DataError(f"{path}: a label map is a JSON object {{name: id}} or a list of names")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return {name: i for i, name in enumerate(names)}


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def read_video_list(path: str | Path, root: str | Path | None = None, *, labels: str | Path | None = None,
                    label2id: dict[str, int] | None = None) -> VideoList:
    """Parse a Kinetics CSV, a `path label` list or an SSv2 JSON list (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"video list not found: {path}; pass a CSV, a `path label` list or an SSv2 JSON file")
    root = Path(root) if root else path.parent
    if labels:  # an explicit label map wins; then (SSv2) labels.json beside the list; then `label2id`
        label2id = read_label_map(labels)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the video list {path}: {err}") from None
    if path.suffix == ".json" or text.lstrip().startswith("["):
        if not labels:
            label2id = _ssv2_label_map(path) or label2id
        return _read_ssv2(path, text, root, label2id)
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{path} lists no videos")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if "," in lines[0] and "label" in header and ("path" in header or "youtube_id" in header):
        rows = _read_csv(path, text, root, header)
        fmt = "kinetics-csv"
    else:
        rows = []
        for n, line in enumerate(lines, 1):
            parts = line.rsplit(None, 1)
            if len(parts) != 2:
                raise DataError(f"{path} line {n}: expected `path label`, got {line.strip()!r}")
            rows.append((_join(root, parts[0]), parts[1].strip()))
        fmt = "path-label"
    return _assign_labels(path, rows, label2id, fmt)


def _join(root: Path, rel: str) -> Path:
    p = Path(rel.strip()).expanduser()
    return p if p.is_absolute() else root / p


def _read_csv(path: Path, text: str, root: Path, header: list[str]) -> list[tuple[Path, str]]:
    reader = csv.DictReader(text.splitlines())
    reader.fieldnames = [h.strip().lower() for h in reader.fieldnames or []]
    index = _VideoIndex(root)
    rows = []
    for n, row in enumerate(reader, 2):
        label = (row.get("label") or "").strip()
        if "path" in header:
            rel = (row.get("path") or "").strip()
            if not rel:
                raise DataError(f"{path} line {n}: empty path")
            rows.append((_join(root, rel), label))
        else:
            yid = (row.get("youtube_id") or "").strip()
            if not yid:
                raise DataError(f"{path} line {n}: empty youtube_id")
            stem = yid
            if (row.get("time_start") or "").strip() and (row.get("time_end") or "").strip():
                try:
                    stem = f"{yid}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
                except ValueError:
                    raise DataError(f"{path} line {n}: time_start/time_end must be numbers") from None
            rows.append((index.find(stem, yid, label), label))
    return rows


class _VideoIndex:
    """Video files below a root by stem, built on first use (official Kinetics layouts name clips by id)."""

    def __init__(self, root: Path):
        self.root, self._by_stem = root, None

    def find(self, stem: str, youtube_id: str, label: str) -> Path:
        if self._by_stem is None:
            self._by_stem = {}
            for folder, _, files in os.walk(self.root):
                for name in files:
                    p = Path(folder) / name
                    if p.suffix.lower() in VIDEO_SUFFIXES:
                        self._by_stem.setdefault(p.stem, p)
                        self._by_stem.setdefault(p.stem[:11], p)  # YouTube ids are 11 characters
        found = self._by_stem.get(stem) or self._by_stem.get(youtube_id)
        # a missing clip keeps its nominal path, so decoding reports it as "media file not found"
        return found or self.root / label / f"{stem}.mp4"


def _ssv2_label_map(list_path: Path) -> dict[str, int] | None:
    for name in ("labels.json", "something-something-v2-labels.json"):
        if (list_path.parent / name).is_file():
            return read_label_map(list_path.parent / name)
    return None


def _read_ssv2(path: Path, text: str, root: Path, label2id: dict[str, int] | None) -> VideoList:
    try:
        entries = json.loads(text)
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
        raise DataError(f"{path}: an SSv2 list is a JSON list of objects with an \"id\"")
    if not entries:
        raise DataError(f"{path} lists no videos")
    items = []
    for e in entries:
        vid = str(e["id"])
        video = root / f"{vid}.webm"
        if not video.exists():
            video = next((root / f"{vid}{s}" for s in VIDEO_SUFFIXES if (root / f"{vid}{s}").exists()), video)
        template = e.get("template")
        if template is None and e.get("label") is None:
            items.append(VideoItem(video, None, ""))
            continue
        name = (template or e["label"]).replace("[", "").replace("]", "")
        if label2id is None:
            raise DataError(f"{path} has labelled SSv2 entries but no label map: put labels.json beside it or "
                            "pass the labels file")
        if name not in label2id:
            raise DataError(f"{path}: video {vid}: class {name!r} is not in the label map")
        items.append(VideoItem(video, label2id[name], name))
    classes = _names_from_map(label2id) if label2id else None
    return VideoList(items, classes, str(path), "ssv2-json")


def _names_from_map(label2id: dict[str, int]) -> list[str]:
    n = max(label2id.values()) + 1
    names = [str(i) for i in range(n)]
    for name, i in label2id.items():
        names[i] = name
    return names


def _assign_labels(path: Path, rows: list[tuple[Path, str]], label2id: dict[str, int] | None,
                   fmt: str) -> VideoList:
    if not rows:
        raise DataError(f"{path} lists no videos")
    if label2id is not None:
        items, n = [], max(label2id.values()) + 1
        for video, raw in rows:
            if raw in label2id:
                items.append(VideoItem(video, label2id[raw], raw))
            elif _is_int(raw) and 0 <= int(raw) < n:
                items.append(VideoItem(video, int(raw), raw))
            else:
                raise DataError(f"{path}: {video.name}: label {raw!r} is not in the label map ({n} classes)")
        return VideoList(items, _names_from_map(label2id), str(path), fmt)
    ints = [_is_int(raw) for _, raw in rows]
    if all(ints):
        items = [VideoItem(v, int(raw), raw) for v, raw in rows]
        bad = [i for i in items if i.label < 0]
        if bad:
            raise DataError(f"{path}: negative class id {bad[0].raw_label} for {bad[0].path.name}")
        return VideoList(items, None, str(path), fmt)
    if any(ints):
        first = next(raw for (_, raw), is_int in zip(rows, ints) if is_int)
        raise DataError(f"{path} mixes class ids ({first!r}) and class names; use one or the other, or pass a "
                        "label map")
    empty = [v for v, raw in rows if not raw]
    if empty:
        raise DataError(f"{path}: {empty[0].name} has no label")
    classes = sorted({raw for _, raw in rows})
    ids = {name: i for i, name in enumerate(classes)}
    return VideoList([VideoItem(v, ids[raw], raw) for v, raw in rows], classes, str(path), fmt)


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
def to_float(frames):
    """uint8 [T, H, W, 3] -> float32 [T, 3, H, W] in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(x, mean, std):
    import torch

    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def resize(x, height: int, width: int):
    import torch.nn.functional as F

    if x.shape[-2:] == (height, width):
        return x
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)


def resize_short_side(x, size: int):
    h, w = x.shape[-2:]
    if h <= w:
        return resize(x, size, max(size, round(w * size / h)))
    return resize(x, max(size, round(h * size / w)), size)


def spatial_crops(x, size: int, num: int) -> list:
    """`num` size x size crops along the longer side (1: centre; 3: start, centre, end)."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        x = resize_short_side(x, size)
        h, w = x.shape[-2:]
    if num == 1:
        offsets = [(h - size) // 2] if h > w else [(w - size) // 2]
    else:
        extent = (h if h > w else w) - size
        offsets = [round(k * extent / (num - 1)) for k in range(num)]
    if h > w:
        return [x[..., o:o + size, (w - size) // 2:(w - size) // 2 + size] for o in offsets]
    return [x[..., (h - size) // 2:(h - size) // 2 + size, o:o + size] for o in offsets]


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


def random_resized_crop(x, size: int, scale, rng: random.Random, ratio=(3 / 4, 4 / 3)):
    """torchvision's RandomResizedCrop sampling (10 tries, then a centre crop), one box for every frame."""
    h, w = x.shape[-2:]
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_r))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = rng.randint(0, h - ch), rng.randint(0, w - cw)
            return resize(x[..., top:top + ch, left:left + cw], size, size)
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize(x[..., top:top + side, left:left + side], size, size)


def views_from_clips(frames_per_clip: list, pre: VideoPreprocess, crops: int):
    """Clips of uint8 frames -> float [clips * crops, T, 3, crop, crop], clip-major."""
    import torch

    short = pre.test_short_side if crops > 1 else pre.single_crop_short_side
    views = []
    for frames in frames_per_clip:
        x = resize_short_side(to_float(frames), short)
        views.extend(normalize(c.contiguous(), pre.mean, pre.std) for c in spatial_crops(x, pre.crop_size, crops))
    return torch.stack(views)


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
def smooth_one_hot(labels, num_classes: int, smoothing: float = 0.0):
    """(1 - eps) one_hot + eps / C, float [B, C]."""
    import torch.nn.functional as F

    target = F.one_hot(labels.long(), num_classes).float()
    return target * (1.0 - smoothing) + smoothing / num_classes


def mixup(x, targets, lam: float):
    """Mix each sample with the batch reversed (timm batch mode): returns (x, targets) mixed with weight lam."""
    return lam * x + (1.0 - lam) * x.flip(0), lam * targets + (1.0 - lam) * targets.flip(0)


# ----------------------------------------------------------------------------- batches for the trainer
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
