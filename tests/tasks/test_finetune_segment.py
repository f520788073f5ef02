"""`vsuite finetune` with kind "segment": the shipped avs-tiny-cpu recipe learns the synthetic two-squares task on
the CPU (held-out mIoU >= 0.5 through `vsuite eval avsbench`, and `vsuite segment` then masks the beeping square of
a new video), selection on the val split (RUN/best), the official recipes' hyper-parameters, resumable batches."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vsuite.cli import run as cli
from vsuite.errors import RecipeError
from vsuite.recipes import load_recipe

ROOT = Path(__file__).resolve().parents[2]


def _stdout(capsys, argv: list[str]) -> str:
    code = cli(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


@pytest.mark.readme_block("finetune/avs-tiny-cpu")
def test_tiny_segmenter_learns_which_square_beeps(readme_workspace, tmp_path, capsys, one_thread):
    """The README's tiny run (synthetic S4 set, finetune/avs-tiny-cpu, a new video segmented), checked here
    instead of trained twice."""
    from PIL import Image

    from helpers import check_results_schema, check_samples_file
    from vsuite.data.avs_synthetic import render_mask, write_synthetic_avs_video

    workspace = readme_workspace
    data, run = workspace / "data" / "avs-synthetic", workspace / "runs" / "avs-tiny-cpu"
    best = run / "best"  # the checkpoint selected on val, not the last one
    record = json.loads((best / "best.json").read_text())
    assert record["subset"] == "val" and record["step"] in (60, 120, 180)
    assert json.loads((best / "config.json").read_text())["model_type"] == "vsuite_avs"
    assert (run / "checkpoints" / "step-00000180").is_dir()
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "eval_miou" in line]
    assert [e["step"] for e in evals] == [60, 120, 180]
    assert record["scores"]["miou"] == max(e["eval_miou"] for e in evals)

    doc = json.loads(_stdout(capsys, ["eval", "avsbench", "--split", "s4", "--model", str(run), "--data", str(data),
                                      "--json", "--out", str(tmp_path / "eval")]))
    check_results_schema(doc)
    check_samples_file(tmp_path / "eval" / "samples.jsonl", 16)
    assert doc["details"]["model"] == str(best) and doc["details"]["subset"] == "test"
    # Masking both squares, deaf to the sound, scores about 0.5 on this data: the bar is above that.
    assert doc["scores"]["miou"] >= 0.65, doc["scores"]  # held-out clips (the test split)

    # the README's new video of the same scene (red sounds for 2 s, then blue for 3 s): the mask follows the sound.
    # Written again with the README's arguments, only to know where its squares are (the scene is seeded).
    clip = write_synthetic_avs_video(tmp_path / "beep.mp4", sounding=("red", "red", "blue", "blue", "blue"))
    seg = workspace / "data" / "beep.segment"
    summary = json.loads((seg / "summary.json").read_text())
    assert [r["second"] for r in summary["frames"]] == [0, 1, 2, 3, 4]
    ious, covered = [], []
    for rec in summary["frames"]:
        mask = np.asarray(Image.open(seg / rec["mask"])) > 127
        truth = render_mask(clip, rec["second"], 64)
        silent = render_mask(dataclasses.replace(clip, sounding=tuple(
            tuple({"red", "blue"} - set(s)) for s in clip.sounding)), rec["second"], 64)
        ious.append((mask & truth).sum() / max((mask | truth).sum(), 1))
        covered.append(((mask & truth).sum() / truth.sum(), (mask & silent).sum() / silent.sum()))
    assert np.mean(ious) >= 0.65, ious
    # the mask switches squares with the sound: more of the sounding square than of the silent one, every second
    assert all(sounding > silent for sounding, silent in covered), covered


def test_official_recipes_keep_the_official_hyper_parameters():
    for name, split, epochs, clips in (("avs-s4-pvt", "s4", 15, 3452), ("avs-ms3-pvt", "ms3", 30, 296)):
        recipe = load_recipe(ROOT / "recipes" / "finetune" / f"{name}.toml", "finetune")
        assert recipe.task == "finetune-segment"
        train, data, model = recipe.train, recipe.data, recipe.model
        per_epoch = math.ceil(clips / 12)  # the official loader keeps the last partial batch
        assert (data.batch_size, train.steps, train.eval_every) == (12, epochs * per_epoch, per_epoch)
        assert (train.lr, train.weight_decay, train.schedule, train.warmup_steps, train.clip_grad) == \
            (1e-4, 0.0, "constant", 0, 0.0)  # Adam, constant (StepLR gamma 1), no clipping
        assert train.betas == [0.9, 0.999] and train.seed == 42 and train.dtype == "float32"
        assert data.split == model.config["setting"] == split and data.val_subset == "val"
        assert model.config["backbone"] == "pvt_v2_b5" and model.config["fusion"] == "av_corr"
        assert data.image_size == 224 and data.official_batch_clips == 4


def test_setting_and_size_must_agree_with_the_data():
    from vsuite.tasks.finetune_segment import build_model

    tiny = ROOT / "recipes" / "finetune" / "avs-tiny-cpu.toml"
    with pytest.raises(RecipeError, match="setting is 'ms3' but data.split is 's4'"):
        build_model(load_recipe(tiny, "finetune", ["model.config.setting=ms3"]))
    with pytest.raises(RecipeError, match="takes 64px frames but data.image_size is 32"):
        build_model(load_recipe(tiny, "finetune", ["model.config.image_size=64"]))
    model = build_model(load_recipe(tiny, "finetune"))  # setting and size follow [data]
    assert model.config.setting == "s4" and model.config.image_size == 32 and model.config.vggish_frozen
    assert not any(p.requires_grad for p in model.audio_backbone.parameters())


def test_vggish_without_weights_tells_clips_apart():
    """Under PyTorch's default init a 9-layer ReLU VGGish maps every clip to the same vector; init_vggish fixes it."""
    from vsuite.models.avs import VGGish
    from vsuite.tasks.finetune_segment import init_vggish

    torch.manual_seed(0)
    t = torch.arange(15600) / 16000
    mels = []
    for hz in (440.0, 1320.0):
        from vsuite.media.vggish_input import waveform_to_examples

        mels.append(torch.from_numpy(waveform_to_examples((0.4 * torch.sin(2 * math.pi * hz * t)).numpy(), 16000)))
    x = torch.stack(mels)  # [2, 1, 96, 64]
    net = VGGish((4, 8, 8, 8, 8, 8), 16, 16)
    with torch.no_grad():
        before = torch.nn.functional.cosine_similarity(*net(x), dim=0)
        init_vggish(net)
        after = torch.nn.functional.cosine_similarity(*net(x), dim=0)
    assert before > 0.999 and after < 0.95, (before, after)


class _Clips:
    """A stand-in dataset: item i holds the value i."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"id": f"c{i}", "pixel_values": torch.full((5, 3, 2, 2), float(i)),
                "audio_log_mel": torch.zeros(5, 1, 96, 64), "masks": torch.zeros(5, 1, 2, 2),
                "mask_valid": torch.tensor([True, False, False, False, False])}


def _ids(batch):
    return batch["pixel_values"][:, 0, 0, 0, 0].long().tolist()


def test_batches_shuffle_per_epoch_keep_the_last_partial_batch_and_resume_exactly():
    from vsuite.tasks.finetune_segment import AVSBatches

    data = AVSBatches(_Clips(10), 4, seed=42)
    assert data.batches_per_epoch == 3  # 4 + 4 + 2, as the official loader (drop_last=False)
    stream = iter(data)
    first = [_ids(next(stream)) for _ in range(6)]  # two epochs
    assert [len(b) for b in first] == [4, 4, 2, 4, 4, 2]
    assert sorted(sum(first[:3], [])) == list(range(10)) and sorted(sum(first[3:], [])) == list(range(10))
    assert sum(first[:3], []) != sum(first[3:], [])  # a new order each epoch
    assert "id" not in next(iter(AVSBatches(_Clips(10), 4, seed=42)))  # only the model's inputs

    again = AVSBatches(_Clips(10), 4, seed=42)
    it = iter(again)
    for _ in range(4):
        next(it)
    state = again.state_dict()
    resumed = AVSBatches(_Clips(10), 4, seed=42)
    resumed.load_state_dict(state)
    assert [_ids(b) for b, _ in zip(iter(resumed), range(2))] == first[4:6]

    ranks = [AVSBatches(_Clips(10), 2, seed=1, rank=r, world_size=3) for r in range(3)]
    shares = [sum((_ids(next(iter(r))) for _ in range(1)), []) for r in ranks]
    assert all(r.per_rank == 3 and r.batches_per_epoch == 2 for r in ranks)
    assert len({tuple(s) for s in shares}) == 3


def test_missing_data_is_a_one_line_error(tmp_path):
    from helpers import assert_one_line_error, run_vsuite

    res = run_vsuite("finetune", "finetune/avs-tiny-cpu", f"data.root={tmp_path / 'nope'}", "--out",
                     str(tmp_path / "run"))
    assert_one_line_error(res, 5)
    assert "does not exist" in res.stderr and not (tmp_path / "run").exists()
