"""`vsuite eval avsbench`: mIoU, F official (per test batch, at the official batch size) and F per frame against a
naive re-computation of the official definitions, the results.json / samples.jsonl schema, and bad inputs.

The scoring tests use a stand-in segmenter that marks red pixels (so it is right on clips where the red square
sounds and wrong where the blue one does), which makes the batch grouping matter for the official F."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error, check_results_schema, check_samples_file, run_vsuite

from vsuite.data.avsbench import IMAGENET_MEAN, IMAGENET_STD, AVSBenchDataset

N_TEST = 7  # not a multiple of 4: the official batches are 4 + 3 clips


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from vsuite.data.avs_synthetic import write_synthetic_avsbench

    return write_synthetic_avsbench(tmp_path_factory.mktemp("avs") / "syn", split="s4", n_train=1, n_val=1,
                                    n_test=N_TEST, size=64, audio="pkl")


class RedMarker(torch.nn.Module):
    """logits = 8 (R - B) of the de-normalised frame: positive on the red square, negative on the blue one."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(image_size=64, setting="s4", num_frames=5, model_type="vsuite_avs")

    def forward(self, pixel_values, audio_log_mel):
        std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
        rgb = pixel_values * std + mean  # [B, T, 3, S, S]
        return SimpleNamespace(logits=8.0 * (rgb[:, :, :1] - rgb[:, :, 2:3]))


@pytest.fixture
def stand_in(monkeypatch):
    import vsuite.models.segmenter as seg

    monkeypatch.setattr(seg, "model_folder", lambda ref, flag="--model": Path(ref))
    monkeypatch.setattr(seg, "load_segmenter", lambda folder, device: RedMarker())


def _naive_scores(data: Path, clips_per_batch: int) -> dict:
    """The official definitions, written out with numpy loops (AVSBench utils/utility.py)."""
    dataset = AVSBenchDataset(data, "s4", "test", image_size=64)
    probs, gts = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        logits = RedMarker()(item["pixel_values"][None], None).logits[0, :, 0]
        probs += list(torch.sigmoid(logits).numpy())
        gts += list(item["masks"][:, 0].numpy() > 0.5)
    thresholds = np.linspace(0, 1 - 1e-10, 255).astype(np.float32)

    def iou(p, g):
        pred = p > 0.5
        if g.sum() == 0:
            return (~pred & ~g).sum() / (g.size + 1e-7)
        return (pred & g).sum() / (np.maximum(pred, g).sum() + 1e-7)

    def f_curve(p, g):
        out = []
        for th in thresholds:
            pred = p >= th
            tp = (pred & g).sum()
            prec, rec = tp / (pred.sum() + 1e-20), tp / (g.sum() + 1e-20)
            f = 1.3 * prec * rec / (0.3 * prec + rec) if (0.3 * prec + rec) > 0 else 0.0
            out.append(f)
        return np.array(out)

    ious = [iou(p, g) for p, g in zip(probs, gts)]
    curves = [f_curve(p, g) for p, g in zip(probs, gts)]  # every synthetic S4 frame has an object
    size = clips_per_batch * 5
    batches = range(0, len(ious), size)
    return {"miou": np.mean([np.mean(ious[s:s + size]) for s in batches]),
            "f_official": np.mean([np.mean(curves[s:s + size], axis=0).max() for s in batches]),
            "f_per_frame": np.mean(curves, axis=0).max(), "ious": ious}


def test_scores_equal_the_official_definitions_at_both_batch_sizes(tmp_path, data, stand_in, capsys):
    from vsuite.tasks import eval_avsbench as task

    docs = {}
    for clips in (4, 1):
        docs[clips] = task.run(split="s4", model="stand-in", data=str(data), batch_size=clips,
                               out=tmp_path / f"b{clips}")
        want = _naive_scores(data, clips)
        got = docs[clips]["scores"]
        assert got["miou"] == pytest.approx(want["miou"], abs=1e-6)
        assert got["f_official"] == pytest.approx(want["f_official"], abs=1e-6)
        assert got["f_per_frame"] == pytest.approx(want["f_per_frame"], abs=1e-6)
        samples = check_samples_file(tmp_path / f"b{clips}" / "samples.jsonl", N_TEST)
        assert [s["frame_iou"] for s in samples] == [pytest.approx(want["ious"][5 * i:5 * i + 5], abs=1e-6)
                                                      for i in range(N_TEST)]
        assert docs[clips]["details"]["official_batch_frames"] == 5 * clips
    # F official depends on how frames are batched; F per frame does not (and mIoU only through the short batch)
    assert docs[4]["scores"]["f_official"] != pytest.approx(docs[1]["scores"]["f_official"], abs=1e-3)
    assert docs[4]["scores"]["f_per_frame"] == docs[1]["scores"]["f_per_frame"]
    err = capsys.readouterr().err
    assert "F official" in err and "F per frame" in err  # the table on stderr


def test_default_batch_is_the_official_one_and_results_follow_the_schema(tmp_path, data, stand_in, capsys):
    from vsuite.tasks import eval_avsbench as task

    doc = task.run(split="s4", model="stand-in", data=str(data), out=tmp_path / "e", as_json=True)
    assert json.loads(capsys.readouterr().out) == json.loads((tmp_path / "e" / "results.json").read_text())
    check_results_schema(doc)
    assert doc["benchmark"] == "avsbench-s4" and set(doc["scores"]) == {"miou", "f_official", "f_per_frame",
                                                                        "miou_per_frame"}
    assert doc["config"]["batch_size"] == 4 and doc["protocol"]["official_batch_frames"] == 20
    assert doc["n_samples"] == N_TEST and doc["details"]["n_official_batches"] == 2
    assert "--batch-size 4" in doc["command"] and doc["protocol"]["frames"] == 5


def test_the_command_runs_a_real_model(tmp_path, data):
    from helpers import save_tiny_segmenter

    save_tiny_segmenter(tmp_path / "model")
    res = run_vsuite("eval", "avsbench", "--split", "s4", "--model", str(tmp_path / "model"), "--data", str(data),
                     "--limit", "3", "--json", "--out", str(tmp_path / "out"))
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    check_results_schema(doc)
    assert doc["n_samples"] == 3 and doc["details"]["n_frames"] == 15 and 0 <= doc["scores"]["miou"] <= 1
    check_samples_file(tmp_path / "out" / "samples.jsonl", 3)


@pytest.mark.parametrize("case, code, words", [
    ("no-data", 5, "does not exist"),
    ("no-model", 4, "no model folder"),
    ("bad-split", 2, "--split must be one of s4, ms3"),
])
def test_bad_inputs_are_one_line_errors(tmp_path, data, case, code, words):
    args = {"no-data": ["--split", "s4", "--model", str(tmp_path), "--data", str(tmp_path / "nope")],
            "no-model": ["--split", "s4", "--model", str(tmp_path / "nope"), "--data", str(data)],
            "bad-split": ["--split", "avss", "--model", str(tmp_path), "--data", str(data)]}[case]
    res = run_vsuite("eval", "avsbench", *args, "--out", str(tmp_path / "out"))
    assert_one_line_error(res, code)
    assert words in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()
