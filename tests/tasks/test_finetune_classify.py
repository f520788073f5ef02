"""`vsuite finetune` (classify): the tiny LVT recipe learns the direction of a moving bar on the CPU and the
result loads in `vsuite eval classify` and `vsuite classify`; resuming; recipe dispatch and errors."""

import json
from pathlib import Path

import pytest
from helpers import run_vsuite

from vsuite.data.synthetic import make_bar_dataset
from vsuite.errors import RecipeError
from vsuite.recipes import load_recipe, task_of

ROOT = Path(__file__).resolve().parents[2]
# One thread: the tiny model's ops are too small to share, and on a busy 2-core machine two spinning OpenMP
# threads made the same run ~3x slower (13 s vs 35-170 s for 150 steps); results are identical.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


@pytest.mark.readme_block("finetune/lvt-tiny-cpu")
def test_tiny_lvt_learns_left_versus_right(readme_run, readme_workspace, tmp_path):
    """The README's tiny run (bar videos, finetune/lvt-tiny-cpu, eval, classify), checked here instead of trained
    twice."""
    from readme_blocks import block_with

    workspace = readme_workspace
    data, out = workspace / "data" / "bars", workspace / "runs" / "lvt-tiny-cpu"
    final = out / "checkpoints" / "step-00000150"
    assert (final / "video_preprocessor_config.json").is_file() and (final / "recipe.toml").is_file()
    config = json.loads((final / "config.json").read_text())
    assert config["model_type"] == "lvt" and config["id2label"] == {"0": "left", "1": "right"}

    ev = run_vsuite("eval", "classify", "--model", str(final), "--data", str(data / "test.csv"), "--json",
                    "--out", str(tmp_path / "eval"), env=ONE_THREAD, cwd=workspace)
    assert ev.code == 0, ev.stderr
    doc = json.loads(ev.stdout)  # results.json; the classification report is its `details`
    assert doc["scores"]["top1"] >= 90.0
    report = doc["details"]
    assert report["videos"] == 16 and report["top1"] >= 0.9, report
    assert report["protocol"]["sampling"] == "dense" and report["protocol"]["num_frames"] == 8

    # the README block's last command: `vsuite classify data/bars/videos/test_left_000.mp4 --model runs/lvt-tiny-cpu`
    # (a run folder) printed the held-out video's top-2, "left" first
    lines = readme_run.result(block_with("finetune/lvt-tiny-cpu")).stdout.strip().splitlines()
    assert lines[-2].split()[:2] == ["1", "left"], lines


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    data = make_bar_dataset(tmp_path / "bars", train_per_class=4, test_per_class=1, seed=1)
    args = [f"data.train={data / 'train.csv'}", f"data.root={data}", "data.batch_size=4", "train.warmup_steps=1",
            "train.log_every=1", "--out", str(tmp_path / "run")]
    first = run_vsuite("finetune", "finetune/lvt-tiny-cpu", "train.steps=2", f"data.val={data / 'test.csv'}",
                       "eval.clips=2", *args, env=ONE_THREAD)
    assert first.code == 0, first.stderr
    assert "eval at step 2: top1" in first.stderr  # the held-out check on data.val
    again = run_vsuite("finetune", "finetune/lvt-tiny-cpu", "train.steps=3", *args, "--resume", "auto",
                       env=ONE_THREAD)
    assert again.code == 0, again.stderr
    assert "step 2" in again.stderr and Path(again.stdout.strip()).name == "step-00000003"


def test_recipes_dispatch_on_task_kind(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "finetune" / "lvt-k400.toml", "finetune")
    assert recipe.task == "finetune-classify"
    assert recipe.tables["task"].kind == "classify" and recipe.model.config["share_gate"] is False
    ssv2 = load_recipe(ROOT / "recipes" / "finetune" / "lvt-ssv2.toml", "finetune")
    assert ssv2.data.sampling == "segments" and not ssv2.data.random_flip and ssv2.model.config["shift_div"] == 4
    assert task_of(ROOT / "recipes" / "finetune" / "lvt-tiny-cpu.toml") == "finetune"
    no_kind = tmp_path / "a.toml"
    no_kind.write_text("[model]\nmodel_type = 'lvt'\n")
    with pytest.raises(RecipeError, match=r"needs a \[task\] table with kind"):
        load_recipe(no_kind, "finetune")
    bad_kind = tmp_path / "b.toml"
    bad_kind.write_text("[task]\nkind = 'dance'\n")
    with pytest.raises(RecipeError, match="'dance' is not one of 'caption', 'classify'"):
        load_recipe(bad_kind, "finetune")
    bad_key = tmp_path / "c.toml"
    bad_key.write_text("[task]\nkind = 'classify'\n[model.config]\nhidden = 3\n")
    with pytest.raises(RecipeError, match="unknown field"):
        load_recipe(bad_key, "finetune")
    with pytest.raises(RecipeError, match="num_segments"):
        load_recipe(ROOT / "recipes" / "finetune" / "lvt-tiny-cpu.toml", "finetune", ["model.config.num_segments=3"])


def test_finetune_errors_are_one_line(tmp_path):
    from helpers import assert_one_line_error

    res = run_vsuite("finetune", "finetune/lvt-tiny-cpu", f"data.train={tmp_path / 'none.csv'}",
                     "--out", str(tmp_path / "run"))
    assert_one_line_error(res, 5)
    assert "video list not found" in res.stderr


def test_init_from_weights_replaces_a_mismatched_head(tmp_path):
    import torch
    from lvt_tiny import save_tiny_lvt

    from vsuite.models.video_classifier import ClassifyModelConfig
    from vsuite.tasks.finetune_classify import build_model

    src = save_tiny_lvt(tmp_path / "src", labels=("left", "right"))
    model = build_model(ClassifyModelConfig(init=str(src)), ["up", "down", "still"], seed=0)
    assert model.config.num_labels == 3 and model.config.id2label[2] == "still"
    assert model.consensus.mlp_head[-1].out_features == 3
    from vsuite.models.lvt import LvtForVideoClassification

    original = LvtForVideoClassification.from_pretrained(src)
    assert torch.equal(model.lvt.blocks[0].attn.qkv.weight, original.lvt.blocks[0].attn.qkv.weight)


def test_init_from_an_official_checkpoint_file(tmp_path, monkeypatch):
    """model.init = FILE: the official converter loads it, then the head is rebuilt for the list's classes."""
    import torch
    from lvt_tiny import save_tiny_lvt

    import vsuite.models.lvt.official as official
    from vsuite.models.lvt import LvtForVideoClassification
    from vsuite.models.video_classifier import ClassifyModelConfig
    from vsuite.tasks.finetune_classify import build_model

    src = save_tiny_lvt(tmp_path / "src", labels=("left", "right"))
    original = LvtForVideoClassification.from_pretrained(src)
    monkeypatch.setattr(official, "load_official_checkpoint", lambda path, **kw: original)
    ckpt = tmp_path / "official.pth"
    ckpt.write_bytes(b"stands for an official checkpoint")
    model = build_model(ClassifyModelConfig(init=str(ckpt)), ["up", "down", "still"], seed=0)
    assert model.config.num_labels == 3 and model.config.label2id == {"up": 0, "down": 1, "still": 2}
    assert model.consensus.mlp_head[-1].out_features == 3
    assert torch.equal(model.lvt.blocks[0].attn.qkv.weight, original.lvt.blocks[0].attn.qkv.weight)

