"""`vsuite pretrain` with the shipped CPU recipe (shortened) and recipe errors."""

import json
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_vsuite

from vsuite.data.tokenizers import ByteTokenizer
from vsuite.errors import RecipeError
from vsuite.models.lm_config import LMModelConfig
from vsuite.recipes import load_recipe
from vsuite.tasks.pretrain import build_model
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
                            ('data.seq_len="long"', "[data] seq_len: Input should be a valid integer")]:
        with pytest.raises(RecipeError) as err:
            load_recipe("pretrain/tnl-tiny-cpu", "pretrain", [override])
        assert words in str(err.value) and f"override {override!r}" in str(err.value)  # names the override
    with pytest.raises(RecipeError, match="'no-such-model' is not a registered model type"):
        build_model(LMModelConfig(model_type="no-such-model"), ByteTokenizer(), 0)


def test_bad_recipe_and_data_exit_codes(tmp_path):
    res = run_vsuite("pretrain", "pretrain/tnl-tiny-cpu", "train.lr=-1", "--out", str(tmp_path / "x"))
    assert_one_line_error(res, 3)
    assert "lr: Input should be greater than 0" in res.stderr
    res = run_vsuite("pretrain", "pretrain/tnl-tiny-cpu", "data.path=nowhere/*.txt", "--out", str(tmp_path / "y"))
    assert_one_line_error(res, 5)
    assert "no text files at nowhere/*.txt" in res.stderr


def test_validation_is_the_windowed_nll_of_full_windows_by_hand(tmp_path):
    """make_eval_fn: mean NLL and perplexity over the full data.seq_len windows of the held-out text (the short
    remainder left out), at most eval.max_batches batches, computed here from the model's log-probabilities."""
    import math
    from types import SimpleNamespace

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from vsuite.data.text import TextDataConfig, load_tokens
    from vsuite.metrics.lm import PretrainEvalConfig
    from vsuite.tasks.pretrain import make_eval_fn
    from vsuite.train.distributed import DistEnv

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=259, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2)).eval()
    held_out = tmp_path / "val.txt"
    held_out.write_text("Held-out text for the validation check.")  # 39 bytes + eos = 40 tokens
    data = TextDataConfig(path=str(held_out), seq_len=8, batch_size=2)
    tokens = load_tokens(data, ByteTokenizer())
    assert len(tokens) == 40  # windows of 9 tokens start at 0, 8, 16, 24, 32: the last one (8 tokens) is short

    def by_hand(n_windows):
        total = 0.0
        for w in range(n_windows):
            window = tokens[8 * w:8 * w + 9]
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=window[None, :-1]).logits[0].double(), dim=-1)
            total -= sum(float(logp[t, window[t + 1]]) for t in range(8))
        return total / (8 * n_windows)

    for max_batches, n_windows in [(20, 4), (1, 2)]:
        recipe = SimpleNamespace(data=data, eval=PretrainEvalConfig(path=str(held_out), max_batches=max_batches))
        result = make_eval_fn(recipe, ByteTokenizer(), DistEnv())(model, step=0)
        assert result["loss"] == pytest.approx(by_hand(n_windows), rel=1e-5)
        assert result["ppl"] == pytest.approx(math.exp(result["loss"]), rel=1e-9)



def test_init_from_official_tnn_fairseq_file(tmp_path):
    """`[model] init = "checkpoint.pt"` (a fairseq-evo TNN file) starts pretraining from those weights."""
    import importlib.util

    import torch

    from vsuite.models.lm_config import LMModelConfig
    from vsuite.tasks.pretrain import build_model

    spec = importlib.util.spec_from_file_location(
        "tnn_official_helpers", Path(__file__).resolve().parents[1] / "models" / "test_tnn_official.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    ref = helpers.tiny()
    path = tmp_path / "checkpoint_best.pt"
    helpers.save_fairseq(path, helpers.fairseq_layout(ref))
    from types import SimpleNamespace

    tokenizer = SimpleNamespace(vocab_size=61, name="test")
    model = build_model(LMModelConfig(model_type="tnn", init=str(path)), tokenizer=tokenizer, seed=0)
    ids = torch.randint(2, 61, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=1e-5, atol=1e-5)
