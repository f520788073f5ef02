"""Video classification data: list formats, label maps, sampling, test views, mixup / label smoothing,
resumable batches."""

import json
import random

import pytest
import torch

from vsuite.data.video_classification import (
    VideoClassificationDataConfig,
    VideoClipBatches,
    VideoPreprocess,
    load_views,
    mixup,
    read_label_map,
    read_video_list,
    smooth_one_hot,
    spatial_crops,
    view_frame_samples,
    train_frame_indices,
)
from vsuite.errors import DataError
from vsuite.media import synth


# ----------------------------------------------------------------------------- lists
def test_csv_with_class_names_sorted(tmp_path):
    (tmp_path / "train.csv").write_text("path,label\na/x.mp4,walking\nb/y.mp4,abseiling\nc/z.mp4,walking\n")
    videos = read_video_list(tmp_path / "train.csv", tmp_path / "vids")
    assert videos.classes == ["abseiling", "walking"] and videos.format == "kinetics-csv"
    assert [i.label for i in videos.items] == [1, 0, 1]
    assert videos.items[0].path == tmp_path / "vids" / "a" / "x.mp4"


def test_path_label_lines_with_ids_and_spaces(tmp_path):
    (tmp_path / "val.txt").write_text("clips/a b.mp4 3\n/abs/c.mp4 0\n\n# comment\nclips/d.mp4 1\n")
    videos = read_video_list(tmp_path / "val.txt")
    assert [i.label for i in videos.items] == [3, 0, 1] and videos.classes is None and videos.num_classes == 4
    assert videos.items[0].path == tmp_path / "clips" / "a b.mp4"
    assert str(videos.items[1].path) == "/abs/c.mp4"
    assert videos.class_names() == ["0", "1", "2", "3"]


def test_kinetics_youtube_id_csv_finds_clips(tmp_path):
    root = tmp_path / "k400"
    (root / "train" / "abseiling").mkdir(parents=True)
    (root / "train" / "abseiling" / "-3B32lodo2M_000059_000069.mp4").write_bytes(b"")
    (root / "train" / "zumba").mkdir(parents=True)
    (root / "train" / "zumba" / "0a1b2c3d4e5.mp4").write_bytes(b"")  # named by id only
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                        "abseiling,-3B32lodo2M,59,69,train\nzumba,0a1b2c3d4e5,10,20,train\n"
                                        "zumba,missing0000,0,10,train\n")
    videos = read_video_list(tmp_path / "train.csv", root)
    assert videos.items[0].path.name == "-3B32lodo2M_000059_000069.mp4"
    assert videos.items[1].path.name == "0a1b2c3d4e5.mp4"
    assert not videos.items[2].path.exists() and videos.items[2].path.name == "missing0000_000000_000010.mp4"
    assert videos.classes == ["abseiling", "zumba"]


def test_label_maps(tmp_path):
    (tmp_path / "map.json").write_text(json.dumps({"b": "1", "a": "0"}))
    (tmp_path / "names.txt").write_text("left\nright\n")
    (tmp_path / "list.json").write_text(json.dumps(["x", "y", "z"]))
    assert read_label_map(tmp_path / "map.json") == {"a": 0, "b": 1}
    assert read_label_map(tmp_path / "names.txt") == {"left": 0, "right": 1}
    assert read_label_map(tmp_path / "list.json") == {"x": 0, "y": 1, "z": 2}
    (tmp_path / "l.csv").write_text("path,label\nv.mp4,right\nw.mp4,0\n")
    videos = read_video_list(tmp_path / "l.csv", labels=tmp_path / "names.txt")
    assert [i.label for i in videos.items] == [1, 0] and videos.classes == ["left", "right"]
    (tmp_path / "bad.csv").write_text("path,label\nv.mp4,up\n")
    with pytest.raises(DataError, match="'up' is not in the label map"):
        read_video_list(tmp_path / "bad.csv", labels=tmp_path / "names.txt")


def test_ssv2_json_with_labels_json(tmp_path):
    (tmp_path / "labels.json").write_text(json.dumps({"Putting something on something": "0",
                                                      "Pushing something from left to right": "1"}))
    (tmp_path / "train.json").write_text(json.dumps([
        {"id": "78687", "label": "putting a pen on a table", "template": "Putting [something] on [something]",
         "placeholders": ["a pen", "a table"]},
        {"id": "42326", "label": "pushing a cup from left to right",
         "template": "Pushing [something] from left to right", "placeholders": ["a cup"]}]))
    (tmp_path / "test.json").write_text(json.dumps([{"id": "1420"}]))
    videos = read_video_list(tmp_path / "train.json", tmp_path / "20bn")
    assert [i.label for i in videos.items] == [0, 1] and videos.format == "ssv2-json"
    assert videos.items[0].path == tmp_path / "20bn" / "78687.webm"
    assert videos.classes[1] == "Pushing something from left to right"
    assert read_video_list(tmp_path / "test.json").items[0].label is None


def test_list_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_video_list(tmp_path / "nope.csv")
    (tmp_path / "mixed.txt").write_text("a.mp4 3\nb.mp4 jumping\n")
    with pytest.raises(DataError, match="mixes class ids"):
        read_video_list(tmp_path / "mixed.txt")
    (tmp_path / "one.txt").write_text("just-a-path\n")
    with pytest.raises(DataError, match="line 1"):
        read_video_list(tmp_path / "one.txt")


# ----------------------------------------------------------------------------- sampling and views
def test_dense_and_segment_training_samples():
    rng = random.Random(0)
    dense = VideoPreprocess(num_frames=4, sampling="dense", sampling_rate=3)
    for _ in range(20):
        idx = train_frame_indices(30, dense, rng)
        assert [b - a for a, b in zip(idx, idx[1:])] == [3, 3, 3] and 0 <= idx[0] <= 30 - 10
    assert train_frame_indices(5, dense, rng) == [0, 3, 4, 4]  # shorter than the span: repeat the last frame
    seg = VideoPreprocess(num_frames=4, sampling="segments")
    for _ in range(20):  # L = 21: s = 5, segments [0,5] [5,10] [10,15] [15,20]
        idx = train_frame_indices(21, seg, rng)
        assert all(5 * i <= f <= 5 * (i + 1) for i, f in enumerate(idx))
    samples = view_frame_samples(21, 10.0, seg, 3)
    assert [list(s.indices) for s in samples] == [[2, 7, 12, 17], [0, 5, 10, 15], [5, 10, 15, 20]]
    with pytest.raises(DataError, match="3 test clips"):
        view_frame_samples(21, 10.0, seg, 4)


def test_spatial_crops_along_the_long_side():
    x = torch.arange(8.).view(1, 1, 1, 8).expand(2, 3, 4, 8)  # width 8, height 4: column index as value
    crops = spatial_crops(x, 4, 3)
    assert [c[0, 0, 0, 0].item() for c in crops] == [0, 2, 4] and all(c.shape[-2:] == (4, 4) for c in crops)
    assert spatial_crops(x, 4, 1)[0][0, 0, 0, 0].item() == 2
    tall = x.transpose(-1, -2)
    assert [c[0, 0, 0, 0].item() for c in spatial_crops(tall, 4, 3)] == [0, 2, 4]


def test_multi_view_counts_and_records(tmp_path):
    video = synth.make_index_video(tmp_path / "v.mp4", num_frames=40, fps=20, size=(48, 64))
    pre = VideoPreprocess(num_frames=4, sampling="dense", sampling_rate=2, crop_size=32, test_short_side=32,
                          single_crop_short_side=40)
    views, record = load_views(video, pre, clips=2, crops=3, backend="pyav")
    assert views.shape == (6, 4, 3, 32, 32) and record["views"] == 6
    assert [c["indices"] for c in record["clips"]] == [[8, 10, 12, 14], [25, 27, 29, 31]]  # starts (2k + 1) * 34 // 4
    assert record["clips"][0]["fps"] == 20.0 and record["clips"][0]["backend"] == "pyav"
    one, rec1 = load_views(video, pre, clips=1, crops=1, backend="pyav")
    assert one.shape == (1, 4, 3, 32, 32) and rec1["spatial"]["short_side"] == 40
    assert views.min() >= -1.0 - 1e-6 and views.max() <= 1.0 + 1e-6  # mean = std = 0.5


# ----------------------------------------------------------------------------- targets
def test_label_smoothing_and_mixup_math():
    y = torch.tensor([0, 2])
    t = smooth_one_hot(y, 4, 0.2)
    assert torch.allclose(t, torch.tensor([[0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.85, 0.05]]))
    assert torch.allclose(t.sum(1), torch.ones(2))
    x = torch.tensor([[1.0], [3.0]])
    mx, mt = mixup(x, t, 0.75)
    assert torch.allclose(mx, torch.tensor([[1.5], [2.5]]))
    assert torch.allclose(mt[0], 0.75 * t[0] + 0.25 * t[1]) and torch.allclose(mt.sum(1), torch.ones(2))


def _bars(tmp_path, n=6):
    rows = ["path,label"]
    for k in range(n):
        d = "left" if k % 2 else "right"
        synth.make_bar_video(tmp_path / f"{k}.mp4", direction=d, num_frames=10 + k, size=(32, 32), bar_width=4)
        rows.append(f"{k}.mp4,{d}")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    return read_video_list(tmp_path / "list.csv")


def test_batches_resume_exactly_and_match_with_workers(tmp_path):
    videos = _bars(tmp_path)
    cfg = VideoClassificationDataConfig(batch_size=2, crop_size=32, train_jitter_scales=[32, 40], random_flip=True,
                                        mixup_alpha=0.4, label_smoothing=0.1, video_backend="pyav")
    pre = cfg.preprocess(4, [0.5] * 3, [0.5] * 3)
    a = VideoClipBatches(videos, pre, cfg, num_classes=2)
    it = iter(a)
    first = [next(it) for _ in range(4)]  # crosses an epoch boundary (3 batches per epoch)
    assert first[0]["pixel_values"].shape == (2, 4, 3, 32, 32) and first[0]["labels"].shape == (2, 2)
    assert torch.allclose(first[0]["labels"].sum(1), torch.ones(2))
    state = a.state_dict()
    expected = next(it)
    b = VideoClipBatches(videos, pre, cfg, num_classes=2)
    b.load_state_dict(state)
    got = next(iter(b))
    assert torch.equal(got["pixel_values"], expected["pixel_values"]) and torch.equal(got["labels"], expected["labels"])
    workers = VideoClipBatches(videos, pre, cfg.model_copy(update={"num_workers": 1}), num_classes=2)
    assert torch.equal(next(iter(workers))["pixel_values"], first[0]["pixel_values"])
    plain = VideoClipBatches(videos, pre, cfg.model_copy(update={"mixup_alpha": 0.0, "label_smoothing": 0.0}),
                             num_classes=2)
    assert next(iter(plain))["labels"].dtype == torch.long


def test_ranks_get_disjoint_videos(tmp_path):
    videos = _bars(tmp_path)
    cfg = VideoClassificationDataConfig(batch_size=1, crop_size=32, train_jitter_scales=[32, 32])
    pre = cfg.preprocess(4, [0.5] * 3, [0.5] * 3)
    r0 = VideoClipBatches(videos, pre, cfg, num_classes=2, rank=0, world_size=2).epoch_order(0)
    r1 = VideoClipBatches(videos, pre, cfg, num_classes=2, rank=1, world_size=2).epoch_order(0)
    assert len(r0) == len(r1) == 3 and not set(r0) & set(r1)
    with pytest.raises(DataError, match="fewer than data.batch_size"):
        VideoClipBatches(videos, pre, cfg.model_copy(update={"batch_size": 4}), num_classes=2, world_size=2)
