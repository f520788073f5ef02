"""Shared by the classification task tests: a tiny random LVT checkpoint and small bar-video lists."""

from __future__ import annotations

from pathlib import Path

from vsuite.media import synth


def save_tiny_lvt(folder: Path, labels=("left", "right"), num_frames: int = 4, size: int = 32) -> Path:
    import torch

    from vsuite.data.video_classification import VideoPreprocess
    from vsuite.models.lvt import LvtConfig, LvtForVideoClassification

    torch.manual_seed(0)
    cfg = LvtConfig(image_size=size, num_frames=num_frames, patch_size=8, patch_stride=8, patch_padding=4,
                    hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2.0, num_segments=num_frames,
                    head_hidden_size=16, id2label=dict(enumerate(labels)),
                    label2id={name: i for i, name in enumerate(labels)})
    LvtForVideoClassification(cfg).save_pretrained(folder)
    VideoPreprocess(num_frames=num_frames, sampling="dense", sampling_rate=2, crop_size=size, test_short_side=size,
                    single_crop_short_side=size).save(folder)
    return folder


def bar_videos(folder: Path, n: int = 4) -> list[tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        direction = ("left", "right")[k % 2]
        out.append((synth.make_bar_video(folder / f"{direction}{k}.mp4", direction=direction, num_frames=12,
                                         size=(32, 40), bar_width=4), direction))
    return out
