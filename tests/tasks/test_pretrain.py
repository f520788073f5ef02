"""`vsuite pretrain` with the shipped CPU recipe (shortened) and recipe errors."""

import json
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_vsuite

from vsuite.data.tokenizers import ByteTokenizer
from vsuite.errors import RecipeError
from vsuite.recipes import load_recipe
from vsuite.tasks.pretrain import LMModelConfig, build_model
from vsuite.train.metrics import read

ROOT = Path(__file__).resolve().parents[2]


def test_tnl_tiny_cpu_loss_falls(tmp_path):
    out = tmp_path / "run"
    res = run_vsuite("pretrain", "pretrain/tnl-tiny-cpu", "train.steps=20", "train.warmup_steps=4",
                     "train.log_every=1", "train.eval_every=0", "eval.max_batches=1", "--out", str(out),
                     cwd=tmp_path)  # relative corpus paths resolve against the checkout
    assert res.code == 0, res.stderr
    losses = [r["loss"] for r in read(out / "metrics.jsonl") if "loss" in r]
    assert len(losses) == 20
    assert sum(losses[-3:]) / 3 < losses[0] - 1.5, losses  # byte-level: ~5.6 -> below ~3.5
    assert "TransnormerForCausalLM" in res.stderr and "eval at step 20" in res.stderr
    final = Path(res.stdout.strip())
    assert final == out / "checkpoints" / "step-00000020"
    assert json.loads((final / "config.json").read_text())["model_type"] == "transnormer"
    assert (final / "vsuite_tokenizer.json").is_file()
    recipe = (out / "recipe.toml").read_text()
    assert "steps = 20" in recipe and "train.steps=20" in recipe.splitlines()[0]
    assert (final / "recipe.toml").read_text() == recipe
    again = load_recipe(out / "recipe.toml", "pretrain")  # the saved recipe reruns the same training
    assert again.train.steps == 20 and again.train.out_dir == str(out) and again.model.config["decoder_layers"] == 4


def test_bad_recipe_values_name_the_key(tmp_path):
    for override, words in [("train.lr=-1", "[train] lr: Input should be greater than 0"),
                            ("model.config.decoder_layerz=2", "unknown field(s) decoder_layerz"),
                            ("model.config.decoder_layers=1", "decoder_layers must be >= 2"),
                            ('data.seq_len="long"', "[data] seq_len: Input should be a valid integer"),
                            ("train.warmup_steps=1000", "must not exceed steps")]:
        with pytest.raises(RecipeError) as err:
            load_recipe("pretrain/tnl-tiny-cpu", "pretrain", [override])
        assert words in str(err.value) and "tnl-tiny-cpu.toml" in str(err.value)
    with pytest.raises(RecipeError, match="'no-such-model' is not a registered model type"):
        build_model(LMModelConfig(model_type="no-such-model"), ByteTokenizer(), 0)


def test_bad_recipe_and_data_exit_codes(tmp_path):
    res = run_vsuite("pretrain", "pretrain/tnl-tiny-cpu", "train.lr=-1", "--out", str(tmp_path / "x"))
    assert_one_line_error(res, 3)
    assert "lr: Input should be greater than 0" in res.stderr
    res = run_vsuite("pretrain", "pretrain/tnl-tiny-cpu", "data.path=nowhere/*.txt", "--out", str(tmp_path / "y"))
    assert_one_line_error(res, 5)
    assert "no text files at nowhere/*.txt" in res.stderr
