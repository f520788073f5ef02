"""AVSBench-object (S4 single-source, MS3 multi-source) in its official layout, as the official dataloaders read it.

Layout under the dataset root (`avsbench_data/`; the Single-source/ or Multi-sources/ folder itself works too):
  S4   Single-source/s4_meta_data.csv                       columns by position: 0 name, 2 category; rows
                                                            picked by the header column `split`
       Single-source/s4_data/visual_frames/{subset}/{category}/{name}/{name}_{1..5}.png
       Single-source/s4_data/gt_masks/{subset}/{category}/{name}/{name}_{k}.png      mode '1'
       Single-source/s4_data/audio_log_mel/{subset}/{category}/{name}.pkl            tensor [5, 1, 96, 64]
       Single-source/s4_data/audio_wav/{subset}/{category}/{name}.wav                (preprocessing output)
  MS3  Multi-sources/ms3_meta_data.csv                      columns by position: 0 name; header column `split`
       Multi-sources/ms3_data/visual_frames/{name}/{name}.mp4_{1..5}.png             no subset folder, ".mp4_"
       Multi-sources/ms3_data/gt_masks/{subset}/{name}/{name}_{1..5}.png             mode 'P'
       Multi-sources/ms3_data/audio_log_mel/{subset}/{name}.pkl
       Multi-sources/ms3_data/audio_wav/{subset}/{name}.wav

Items (`AVSBenchDataset[i]`): id (the CSV name), pixel_values float [5, 3, S, S] (RGB / 255, ImageNet mean/std),
audio_log_mel float [5, 1, 96, 64], masks float {0, 1} [5, 1, S, S], mask_valid bool [5].
- S4 train has one annotated frame per clip and the official trains on it alone: only {name}_1.png is read,
  masks[1:] are zeros and mask_valid = [True, False, False, False, False]. Everything else: 5 masks, all valid.
- Masks: S4 as PIL mode '1' (what the official loader converts to), MS3 as mode 'P' palette indices; a pixel
  is foreground when that value is non-zero (the official feeds ToTensor's value / 255 straight to the metric,
  which for AVSBench's 0 / 255 masks is the same).
- Resizing: the official frames and masks are already 224 x 224 and are not resized. When they differ from
  image_size, frames are resized with PIL bilinear (antialiased) and masks with nearest neighbour.
- Audio "pkl": the official pickled tensor, read without running code (vsuite.data.tensor_pickle); "wav": the
  16 kHz wav through vsuite.media.vggish_input and padded to 5 examples by repeating the last one (the
  preprocessing's rule); "auto": the pkl where it exists, else the wav.
Layout problems raise a one-line DataError naming the path when the dataset is built, before any training.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataError

NUM_FRAMES = 5
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SUBSETS = ("train", "val", "test")

# split -> (folder, meta CSV, data folder, mask PIL mode)
_SPLITS = {"s4": ("Single-source", "s4_meta_data.csv", "s4_data", "1"),
           "ms3": ("Multi-sources", "ms3_meta_data.csv", "ms3_data", "P")}


class AVSBenchConfig(BaseModel):
    """The [data] table of an AVSBench segmentation recipe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    root: str = Field("", description="AVSBench root (the folder holding Single-source/ and Multi-sources/); "
                                      "relative paths: working directory, then the checkout")
    split: Literal["s4", "ms3"] = Field("s4", description="s4 = Single-source, ms3 = Multi-sources")
    audio: Literal["auto", "pkl", "wav"] = Field("auto", description="log-mel source: the official .pkl, the "
                                                                     "16 kHz .wav through VGGish's front end, or "
                                                                     "auto (pkl where present, else wav)")
    image_size: int = Field(224, ge=32, description="frames and masks are resized to this square (official 224)")
    batch_size: int = Field(4, ge=1, description="clips per micro-batch on each rank (official TPAVI 4, AVSBG 12)")
    num_workers: int = Field(0, ge=0, description="loader processes per rank (0: load in the training process)")
    val_subset: Literal["val", "test"] = Field("val", description="subset scored during training (the AVSBG code "
                                                                   "selects on test, a leak; val is the default)")
    official_batch_clips: int = Field(4, ge=1, description="clips per batch for the official F / mIoU batching "
                                                           "(test.sh: --test_batch_size 4)")


@dataclass(frozen=True)
class AVSClip:
    """One clip's files; `mask_paths` holds 1 (S4 train) or 5 paths."""

    name: str
    category: str  # "" for MS3
    subset: str
    frame_paths: tuple[Path, ...]
    mask_paths: tuple[Path, ...]
    pkl_path: Path
    wav_path: Path


def split_dir(root: str | Path, split: str) -> Path:
    """The Single-source/ or Multi-sources/ folder of `root` (which may be that folder itself)."""
    if split not in _SPLITS:
        raise DataError(f"unknown AVSBench split {split!r}; use 's4' or 'ms3'")
    folder, meta, _, _ = _SPLITS[split]
    root = Path(root)
    if (root / folder / meta).is_file():
        return root / folder
    if (root / meta).is_file():
        return root
    if not root.is_dir():
        raise DataError(f"AVSBench root {root} does not exist; point data.root at the folder holding {folder}/")
    raise DataError(f"{root / folder / meta}: AVSBench meta file not found; data.root must hold {folder}/{meta}")


def read_meta(root: str | Path, split: str, subset: str) -> list[tuple[str, str]]:
    """(name, category) rows of `subset` from the meta CSV, in file order (category "" for MS3)."""
    if subset not in SUBSETS:
        raise DataError(f"unknown AVSBench subset {subset!r}; use one of {', '.join(SUBSETS)}")
    path = split_dir(root, split) / _SPLITS[split][1]
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read the AVSBench meta CSV ({err})") from None
    if not rows or "split" not in [c.strip() for c in rows[0]]:
        raise DataError(f"{path}: the meta CSV needs a header row with a 'split' column")
    col = [c.strip() for c in rows[0]].index("split")
    need = max(col, 2 if split == "s4" else 0) + 1
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < need:
            raise DataError(f"{path}: line {line} has {len(row)} columns, expected at least {need}")
        if row[col].strip() == subset:
            out.append((row[0].strip(), row[2].strip() if split == "s4" else ""))
    if not out:
        raise DataError(f"{path}: no clip has split '{subset}'")
    return out


def list_clips(root: str | Path, split: str, subset: str) -> list[AVSClip]:
    """Every clip of `subset` with its official file paths (not checked; see `check_clip`)."""
    base = split_dir(root, split)
    data = base / _SPLITS[split][2]
    clips = []
    for name, category in read_meta(root, split, subset):
        if split == "s4":
            frames_dir = data / "visual_frames" / subset / category / name
            frames = tuple(frames_dir / f"{name}_{k}.png" for k in range(1, NUM_FRAMES + 1))
            mask_dir = data / "gt_masks" / subset / category / name
            pkl = data / "audio_log_mel" / subset / category / f"{name}.pkl"
            wav = data / "audio_wav" / subset / category / f"{name}.wav"
        else:
            frames_dir = data / "visual_frames" / name
            frames = tuple(frames_dir / f"{name}.mp4_{k}.png" for k in range(1, NUM_FRAMES + 1))
            mask_dir = data / "gt_masks" / subset / name
            pkl = data / "audio_log_mel" / subset / f"{name}.pkl"
            wav = data / "audio_wav" / subset / f"{name}.wav"
        num_masks = 1 if (split == "s4" and subset == "train") else NUM_FRAMES
        masks = tuple(mask_dir / f"{name}_{k}.png" for k in range(1, num_masks + 1))
        clips.append(AVSClip(name, category, subset, frames, masks, pkl, wav))
    return clips


def audio_path(clip: AVSClip, audio: str) -> Path:
    """The file the log-mel comes from under `audio` ("auto" | "pkl" | "wav")."""
    if audio == "pkl" or (audio == "auto" and clip.pkl_path.is_file()):
        return clip.pkl_path
    if audio == "auto" and not clip.wav_path.is_file():
        raise DataError(f"{clip.pkl_path}: audio log-mel not found (nor {clip.wav_path.name} under audio_wav/)")
    if audio not in ("auto", "wav"):
        raise DataError(f"unknown audio source {audio!r}; use 'auto', 'pkl' or 'wav'")
    return clip.wav_path


def check_clip(clip: AVSClip, audio: str) -> None:
    """DataError naming the first missing file of `clip`."""
    for path in (*clip.frame_paths, *clip.mask_paths, audio_path(clip, audio)):
        if not path.is_file():
            raise DataError(f"{path}: file missing from the AVSBench layout")


# ----------------------------------------------------------------------------- loading
def load_frame(path: Path, size: int):
    """float [3, size, size]: RGB / 255, ImageNet-normalised (the official ToTensor + Normalize)."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32) / 255.0  # [S, S, 3]
    except OSError as err:
        raise DataError(f"{path}: not a readable image ({err})") from None
    x = torch.from_numpy(arr).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return ((x - mean) / std).contiguous()


def load_mask(path: Path, mode: str, size: int):
    """float {0, 1} [1, size, size]: PIL mode '1' (S4) or 'P' (MS3 palette index), non-zero = object."""
    import numpy as np
    import torch
    from PIL import Image

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert(mode)) != 0  # [H, W] bool
    except OSError as err:
        raise DataError(f"{path}: not a readable mask image ({err})") from None
    if arr.shape != (size, size):
        small = Image.fromarray(arr.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
        arr = np.asarray(small) > 127
    return torch.from_numpy(arr.astype(np.float32))[None]


def load_log_mel(clip: AVSClip, audio: str = "auto"):
    """float [5, 1, 96, 64] log-mel examples of a clip (see the module docstring for the sources)."""
    import torch

    path = audio_path(clip, audio)
    if path.suffix == ".pkl":
        from .tensor_pickle import load_pickled_tensor

        mel = load_pickled_tensor(path, what="an AVSBench log-mel tensor [5, 1, 96, 64]").float()
    else:
        from ..media.vggish_input import pad_examples, wavfile_to_examples

        mel = torch.from_numpy(pad_examples(wavfile_to_examples(path), NUM_FRAMES, source=path))[:, None]
    if mel.ndim == 3:
        mel = mel[:, None]  # [5, 96, 64] -> [5, 1, 96, 64]
    if tuple(mel.shape[1:]) != (1, 96, 64) or mel.shape[0] < 1:
        raise DataError(f"{path}: expected a log-mel tensor [5, 1, 96, 64], found {list(mel.shape)}")
    if mel.shape[0] != NUM_FRAMES:  # pad / cut like the preprocessing (repeat the last example)
        mel = torch.cat([mel, mel[-1:].expand(max(NUM_FRAMES - mel.shape[0], 0), -1, -1, -1)])[:NUM_FRAMES]
    return mel.contiguous()


class AVSBenchDataset:
    """Map-style dataset of AVSBench clips (a torch Dataset by protocol: __len__ / __getitem__)."""

    def __init__(self, root: str | Path, split: str = "s4", subset: str = "train", *, image_size: int = 224,
                 audio: str = "auto", check_files: bool = True):
        if audio not in ("auto", "pkl", "wav"):
            raise DataError(f"unknown audio source {audio!r}; use 'auto', 'pkl' or 'wav'")
        self.root, self.split, self.subset = Path(root), split, subset
        self.image_size, self.audio = int(image_size), audio
        self.mask_mode = _SPLITS.get(split, ("", "", "", "1"))[3]
        self.clips = list_clips(root, split, subset)
        if check_files:
            for clip in self.clips:
                check_clip(clip, audio)

    @classmethod
    def from_config(cls, cfg: AVSBenchConfig, subset: str, *, check_files: bool = True) -> AVSBenchDataset:
        from . import data_roots
        from .video_lists import resolve_data_path

        if not cfg.root:
            raise DataError("data.root is empty; set it to the AVSBench folder (holding Single-source/ or "
                            "Multi-sources/)")
        root = resolve_data_path(cfg.root, data_roots())
        return cls(root, cfg.split, subset, image_size=cfg.image_size, audio=cfg.audio, check_files=check_files)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        import torch

        clip = self.clips[index]
        size = self.image_size
        pixel_values = torch.stack([load_frame(p, size) for p in clip.frame_paths])  # [5, 3, S, S]
        masks = torch.zeros(NUM_FRAMES, 1, size, size)
        for k, path in enumerate(clip.mask_paths):
            masks[k] = load_mask(path, self.mask_mode, size)
        mask_valid = torch.zeros(NUM_FRAMES, dtype=torch.bool)
        mask_valid[:len(clip.mask_paths)] = True
        return {"id": clip.name, "pixel_values": pixel_values, "audio_log_mel": load_log_mel(clip, self.audio),
                "masks": masks, "mask_valid": mask_valid}


def collate(items: list[dict]) -> dict:
    """Stack dataset items into a batch: ids a list, tensors [B, ...]."""
    import torch

    return {"id": [it["id"] for it in items],
            **{key: torch.stack([it[key] for it in items])
               for key in ("pixel_values", "audio_log_mel", "masks", "mask_valid")}}


__all__ = ["AVSBenchConfig", "AVSBenchDataset", "AVSClip", "IMAGENET_MEAN", "IMAGENET_STD", "NUM_FRAMES",
           "audio_path", "check_clip", "collate", "list_clips", "load_frame", "load_log_mel", "load_mask",
           "read_meta", "split_dir"]
