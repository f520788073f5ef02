"""AVSBench reader (vsuite.data.avsbench) on the synthetic dataset written in the official layouts
(vsuite.data.avs_synthetic), the safe .pkl reader, and layout errors."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from vsuite.data import avs_synthetic as syn
from vsuite.data.avsbench import AVSBenchConfig, AVSBenchDataset, collate, list_clips
from vsuite.data.tensor_pickle import load_pickled_tensor
from vsuite.errors import DataError

SIZE = 64
SIDE = SIZE // 4  # the synthetic squares


@pytest.fixture(scope="module")
def s4_root(tmp_path_factory):
    return syn.write_synthetic_avsbench(tmp_path_factory.mktemp("avs") / "s4", split="s4", n_train=3, n_val=2,
                                        n_test=2, size=SIZE, seed=0, audio="both")


@pytest.fixture(scope="module")
def ms3_root(tmp_path_factory):
    return syn.write_synthetic_avsbench(tmp_path_factory.mktemp("avs") / "ms3", split="ms3", n_train=2, n_val=1,
                                        n_test=2, size=SIZE, seed=0, audio="pkl")


def test_official_s4_layout_on_disk(s4_root):
    base = s4_root / "Single-source"
    header, *rows = (base / "s4_meta_data.csv").read_text().splitlines()
    assert header.split(",")[3] == "split" and len(rows) == 7
    name = "syn_test_0000"
    data = base / "s4_data"
    for k in range(1, 6):
        assert (data / "visual_frames/test/red_or_blue" / name / f"{name}_{k}.png").is_file()
        assert (data / "gt_masks/test/red_or_blue" / name / f"{name}_{k}.png").is_file()
    assert (data / "audio_log_mel/test/red_or_blue" / f"{name}.pkl").is_file()
    assert (data / "audio_wav/test/red_or_blue" / f"{name}.wav").is_file()
    train_masks = sorted(p.name for p in (data / "gt_masks/train/red_or_blue/syn_train_0000").iterdir())
    assert train_masks == ["syn_train_0000_1.png"]  # S4 train: the first frame only


def test_official_ms3_layout_on_disk(ms3_root):
    data = ms3_root / "Multi-sources" / "ms3_data"
    name = "syn_val_0000"
    assert (data / "visual_frames" / name / f"{name}.mp4_3.png").is_file()  # no subset folder, ".mp4_" infix
    assert (data / "gt_masks/val" / name / f"{name}_5.png").is_file()
    assert (data / "audio_log_mel/val" / f"{name}.pkl").is_file()
    from PIL import Image

    with Image.open(data / "gt_masks/val" / name / f"{name}_1.png") as img:
        assert img.mode == "P"


def test_s4_train_item(s4_root):
    ds = AVSBenchDataset(s4_root, "s4", "train", image_size=SIZE, audio="pkl")
    assert len(ds) == 3
    item = ds[0]
    assert item["id"] == "syn_train_0000"
    assert item["pixel_values"].shape == (5, 3, SIZE, SIZE) and item["pixel_values"].dtype == torch.float32
    assert item["audio_log_mel"].shape == (5, 1, 96, 64)
    assert item["masks"].shape == (5, 1, SIZE, SIZE)
    assert item["mask_valid"].tolist() == [True, False, False, False, False]
    assert item["masks"][0].sum() == SIDE * SIDE and item["masks"][1:].sum() == 0


def test_pixels_are_imagenet_normalised_and_masks_match_the_square(s4_root):
    item = AVSBenchDataset(s4_root, "s4", "test", image_size=SIZE)[1]
    rng_clip = _clip(s4_root, "s4", "test", 1)
    colour = rng_clip.sounding[0][0]
    top, left = rng_clip.positions[colour][2]
    r, g, b = syn.COLOURS[colour]
    expected = [(r / 255 - 0.485) / 0.229, (g / 255 - 0.456) / 0.224, (b / 255 - 0.406) / 0.225]
    assert item["pixel_values"][2, :, top + 2, left + 2].tolist() == pytest.approx(expected, abs=1e-6)
    grey = (128 / 255 - 0.485) / 0.229
    mask = item["masks"][2, 0]
    assert mask.sum() == SIDE * SIDE and mask[top:top + SIDE, left:left + SIDE].all()
    assert item["mask_valid"].all()
    # a background pixel: grey and not in the mask
    bg = (mask == 0) & (item["pixel_values"][2, 0] - grey).abs().lt(1e-5)
    assert bg.sum() > SIZE * SIZE // 2


def _clip(root, split, subset, index):
    """Recreate the synthetic clip description the writer drew (same seeded order)."""
    import random

    rng = random.Random(f"avs-synthetic/{split}/0")
    counts = {"s4": (3, 2, 2), "ms3": (2, 1, 2)}[split]
    for sub, n in zip(("train", "val", "test"), counts):
        for i in range(n):
            clip = syn.make_clip(rng, f"syn_{sub}_{i:04d}", SIZE, split)
            if sub == subset and i == index:
                return clip
    raise AssertionError("no such clip")


def test_resize_to_image_size(s4_root):
    item = AVSBenchDataset(s4_root, "s4", "test", image_size=32)[0]
    assert item["pixel_values"].shape == (5, 3, 32, 32)
    assert item["masks"].shape == (5, 1, 32, 32)
    assert set(item["masks"].unique().tolist()) == {0.0, 1.0}
    assert item["masks"][0].sum() == (SIDE // 2) ** 2  # nearest 2x: 16 consecutive rows hold 8 sampled ones


def test_wav_and_pkl_audio_agree_and_tell_the_source(s4_root):
    pkl = AVSBenchDataset(s4_root, "s4", "test", image_size=SIZE, audio="pkl")
    wav = AVSBenchDataset(s4_root, "s4", "test", image_size=SIZE, audio="wav")
    for i in range(len(pkl)):
        a, b = pkl[i]["audio_log_mel"], wav[i]["audio_log_mel"]
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-6  # (assert_close imports DTensor: slow)
    # the tone: mel energy near 440 Hz (red) vs near 1320 Hz (blue) decides the colour of every clip
    from vsuite.media.vggish_input import mel_matrix

    m = mel_matrix()
    low, high = int(m[14].argmax()), int(m[42].argmax())  # bins 14 = 437.5 Hz, 42 = 1312.5 Hz
    for split_name, root, n in (("s4", s4_root, 2),):
        ds = AVSBenchDataset(root, split_name, "test", image_size=SIZE)
        for i in range(n):
            mel = ds[i]["audio_log_mel"][:, 0].mean(1)  # [5, 64]
            colour = _clip(root, split_name, "test", i).sounding[0][0]
            louder = "red" if mel[:, low].mean() > mel[:, high].mean() else "blue"
            assert louder == colour


def test_ms3_items_and_per_second_sources(ms3_root):
    ds = AVSBenchDataset(ms3_root, "ms3", "test", image_size=SIZE)
    assert len(ds) == 2
    item = ds[0]
    assert item["mask_valid"].all()
    clip = _clip(ms3_root, "ms3", "test", 0)
    for t in range(5):
        assert item["masks"][t].sum() == SIDE * SIDE * len(clip.sounding[t])
    batch = collate([ds[0], ds[1]])
    assert batch["id"] == ["syn_test_0000", "syn_test_0001"]
    assert batch["pixel_values"].shape == (2, 5, 3, SIZE, SIZE) and batch["mask_valid"].shape == (2, 5)


def test_pickled_tensor_reader(tmp_path):
    t = torch.randn(5, 1, 96, 64)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(t.clone().requires_grad_(True)))  # as AVSBench's preprocessing wrote it
    got = load_pickled_tensor(plain)
    assert torch.equal(got, t) and not got.requires_grad
    saved = tmp_path / "saved.pkl"
    torch.save(t, saved)
    assert torch.equal(load_pickled_tensor(saved), t)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_pickled_tensor_reader_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(DataError, match=r"evil\.pkl.*refusing global (posix|os)\.system"):
        load_pickled_tensor(path)
    other = tmp_path / "list.pkl"
    other.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match="found a list"):
        load_pickled_tensor(other)


def test_missing_file_is_one_line_data_error(s4_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(s4_root, root)
    frame = root / "Single-source/s4_data/visual_frames/val/red_or_blue/syn_val_0001/syn_val_0001_4.png"
    frame.unlink()
    with pytest.raises(DataError) as err:
        AVSBenchDataset(root, "s4", "val", image_size=SIZE)
    assert str(frame) in str(err.value) and "\n" not in str(err.value)
    pkl = root / "Single-source/s4_data/audio_log_mel/test/red_or_blue/syn_test_0000.pkl"
    pkl.unlink()
    with pytest.raises(DataError, match="syn_test_0000.pkl"):
        AVSBenchDataset(root, "s4", "test", image_size=SIZE, audio="pkl")
    assert len(AVSBenchDataset(root, "s4", "test", image_size=SIZE, audio="auto")) == 2  # falls back to the wav


def test_bad_layouts(tmp_path, ms3_root):
    with pytest.raises(DataError, match="does not exist"):
        AVSBenchDataset(tmp_path / "nowhere", "s4", "test")
    with pytest.raises(DataError, match="s4_meta_data.csv"):
        AVSBenchDataset(ms3_root, "s4", "test")  # an MS3 root read as S4
    bad = tmp_path / "bad" / "Single-source"
    bad.mkdir(parents=True)
    (bad / "s4_meta_data.csv").write_text("name,start,category,subset\nx,0,c,test\n")
    with pytest.raises(DataError, match="'split' column"):
        AVSBenchDataset(tmp_path / "bad", "s4", "test")
    (bad / "s4_meta_data.csv").write_text("name,start,category,split\nx,0,c,train\n")
    with pytest.raises(DataError, match="no clip has split 'test'"):
        AVSBenchDataset(tmp_path / "bad", "s4", "test")
    with pytest.raises(DataError, match="subset"):
        AVSBenchDataset(ms3_root, "ms3", "dev")
    # the Single-source / Multi-sources folder itself is accepted as the root
    assert len(list_clips(ms3_root / "Multi-sources", "ms3", "train")) == 2


def test_config_table(tmp_path, s4_root):
    cfg = AVSBenchConfig(root=str(s4_root), split="s4", image_size=SIZE)
    assert (cfg.audio, cfg.batch_size, cfg.val_subset, cfg.official_batch_clips) == ("auto", 4, "val", 4)
    assert len(AVSBenchDataset.from_config(cfg, "val")) == 2
    with pytest.raises(ValidationError):
        AVSBenchConfig(root="x", split="avss")
    with pytest.raises(ValidationError):
        AVSBenchConfig(root="x", unknown_key=1)
    with pytest.raises(DataError, match="data.root is empty"):
        AVSBenchDataset.from_config(AVSBenchConfig(), "val")


def test_synthetic_video_has_matching_sound(tmp_path):
    from vsuite.media import load_audio, probe

    path = tmp_path / "clip.mp4"
    clip = syn.write_synthetic_avs_video(path, sounding=["blue", "blue", "red", ("red", "blue"), "blue"], size=SIZE)
    info = probe(path)
    assert info.num_frames == 5 * 8
    wave = load_audio(path, 16000).numpy()
    assert abs(len(wave) / 16000 - 5.0) < 0.1
    spectrum = np.abs(np.fft.rfft(wave[:16000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 1320) < 5  # second 0: the blue tone
    spectrum = np.abs(np.fft.rfft(wave[2 * 16000 + 1000: 3 * 16000 - 1000]))
    assert abs(np.argmax(spectrum) * 16000 / 14000 - 440) < 5  # second 2: the red tone
    assert clip.sounding[3] == ("red", "blue")
    mask = syn.render_mask(clip, 3, SIZE)
    assert mask.sum() == 2 * SIDE * SIDE


def test_synthetic_writer_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        syn.write_synthetic_avsbench(tmp_path, split="avss")
    with pytest.raises(ValueError):
        syn.write_synthetic_avsbench(tmp_path, audio="mp3")


def test_load_mask_modes(tmp_path):
    from PIL import Image

    from vsuite.data.avsbench import load_mask

    arr = np.zeros((8, 8), np.uint8)
    arr[2:4, 3:6] = 1
    p_index1 = Image.fromarray(arr, mode="L").convert("P")  # palette indices 0 / 1
    p_index1.save(tmp_path / "p1.png")
    Image.fromarray(arr * 255).convert("P").save(tmp_path / "p255.png")  # indices 0 / 255 (AVSBench)
    Image.fromarray(arr * 255).save(tmp_path / "l255.png")  # 8-bit grey, read as mode '1'
    for name, mode in (("p1.png", "P"), ("p255.png", "P"), ("l255.png", "1")):
        mask = load_mask(tmp_path / name, mode, 8)
        assert mask.shape == (1, 8, 8) and mask.sum() == 6 and mask[0, 2:4, 3:6].all(), name
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        load_mask(tmp_path / "broken.png", "1", 8)
