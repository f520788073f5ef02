"""The shared trainer in-process: schedule, checkpoints, pruning, resume choices, divergence."""

import json
import math
import shutil

import pytest
import torch

from vsuite.data.text import PackedWindows
from vsuite.errors import DivergedError, ModelNotFoundError, UsageError
from vsuite.train import TrainConfig, fit, seed_everything
from vsuite.train import checkpoint as C
from vsuite.train.distributed import _first_host, read_env
from vsuite.train.losses import shifted_causal_lm_loss
from vsuite.train.metrics import read
from vsuite.train.schedule import lr_at


@pytest.fixture(autouse=True)
def _restore_determinism():
    yield
    torch.use_deterministic_algorithms(False)


def tiny_llama(seed=0, vocab=64):
    from transformers import LlamaConfig, LlamaForCausalLM

    seed_everything(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


def tiny_data(n=2000, seq=8, batch=4, seed=0):
    g = torch.Generator().manual_seed(42)
    return PackedWindows(torch.randint(0, 64, (n,), generator=g), seq, batch, seed=seed)


def config(**kw):
    base = dict(steps=6, lr=1e-2, warmup_steps=1, log_every=1, keep_last=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def train(tmp_path, resume="auto", **kw):
    return fit(config(**kw), tiny_llama(), tiny_data(), out_dir=tmp_path, resume=resume,
               loss_fn=shifted_causal_lm_loss)


def test_schedule_warmup_cosine_floor():
    kw = dict(lr=1.0, warmup_steps=4, total_steps=14, min_lr_ratio=0.1)
    assert [lr_at(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, **kw) == 1.0 and math.isclose(lr_at(9, **kw), 0.55) and math.isclose(lr_at(14, **kw), 0.1)
    assert lr_at(100, **kw) == pytest.approx(0.1)
    assert lr_at(15, **kw, schedule="inverse_sqrt") == pytest.approx(0.5)
    assert lr_at(9, **kw, schedule="constant") == 1.0


def test_linear_schedule_falls_straight_to_the_floor():
    kw = dict(lr=1.0, warmup_steps=2, total_steps=10, schedule="linear")
    got = [lr_at(s, **kw, min_lr_ratio=0.0) for s in range(11)]
    assert got == pytest.approx([0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0])
    assert lr_at(6, **kw, min_lr_ratio=0.2) == pytest.approx(0.2 + 0.8 * 0.5)


def test_config_errors():
    assert TrainConfig(steps=5, warmup_steps=10).warmup_steps == 5  # clamped with a warning (tests/test_recipes.py)
    with pytest.raises(ValueError, match="betas"):
        TrainConfig(betas=[0.9])
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")


def test_run_folder_checkpoint_layout_and_pruning(tmp_path):
    result = train(tmp_path, save_every=2, keep_last=2)
    assert result.step == 6 and result.losses[-1] < result.losses[0]
    steps = [s for s, _ in C.list_checkpoints(tmp_path)]
    assert steps == [4, 6]  # keep_last=2 pruned step 2
    folder = tmp_path / "checkpoints" / "step-00000006"
    record = C.check_checkpoint(folder)
    assert record["step"] == 6 and "model.safetensors" in record["files"]
    assert {"config.json", "trainer_state.json", "train_state/.metadata"} <= set(record["files"])
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["step"] == 6 and state["data"]["index"] == 6 and state["tokens"] == 6 * 4 * 8
    rows = read(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"step", "loss", "lr", "tokens_per_s", "grad_norm", "elapsed"} <= set(rows[0])
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(folder)  # the step folder is a Hugging Face folder
    assert loaded.config.hidden_size == 16


def test_resume_continues_the_same_curve(tmp_path):
    full = train(tmp_path / "a", steps=8)
    train(tmp_path / "b", steps=8, save_every=3, keep_last=0)
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000006")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000008")
    resumed = train(tmp_path / "b", steps=8)
    assert resumed.resumed_from.name == "step-00000003"
    assert [r["loss"] for r in read(tmp_path / "b" / "metrics.jsonl")] == full.losses  # bitwise


def test_auto_skips_incomplete_and_corrupt_checkpoints(tmp_path, capsys):
    train(tmp_path, save_every=2)
    root = tmp_path / "checkpoints"
    (root / "step-00000006" / "COMPLETE").unlink()  # half-written: no marker
    weights = root / "step-00000004" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated after completion
    capsys.readouterr()
    assert C.newest_complete(tmp_path).name == "step-00000002"
    err = capsys.readouterr().err
    assert "skipping checkpoint" in err and "no COMPLETE marker" in err and "model.safetensors" in err
    result = train(tmp_path, steps=7)
    assert result.resumed_from.name == "step-00000002"


def test_resume_none_path_and_missing(tmp_path):
    train(tmp_path / "run", steps=3)
    with pytest.raises(UsageError, match="already holds checkpoints"):
        train(tmp_path / "run", resume="none", steps=3)
    step3 = tmp_path / "run" / "checkpoints" / "step-00000003"
    result = train(tmp_path / "other", resume=str(step3), steps=4)
    assert result.resumed_from == step3 and result.step == 4
    with pytest.raises(ModelNotFoundError, match="no checkpoint there"):
        train(tmp_path / "x", resume=str(tmp_path / "nowhere"))
    (step3 / "COMPLETE").unlink()
    with pytest.raises(ModelNotFoundError, match="not a complete checkpoint"):
        train(tmp_path / "y", resume=str(step3))


def test_resume_into_another_model_shape_is_refused(tmp_path):
    train(tmp_path, steps=2)
    with pytest.raises(ModelNotFoundError, match="does not fit the model"):
        fit(config(steps=3), tiny_llama(vocab=80), tiny_data(), out_dir=tmp_path, loss_fn=shifted_causal_lm_loss)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def poisoned(model, batch):
        calls["n"] += 1
        loss = shifted_causal_lm_loss(model, batch)
        return loss * float("nan") if calls["n"] == 4 else loss

    with pytest.raises(DivergedError, match=r"diverged at step 4: loss is nan.*step-00000002"):
        fit(config(save_every=2), tiny_llama(), tiny_data(), out_dir=tmp_path, loss_fn=poisoned)
    assert [s for s, _ in C.list_checkpoints(tmp_path)] == [2]
    assert C.check_checkpoint(tmp_path / "checkpoints" / "step-00000002")
    assert [r["step"] for r in read(tmp_path / "metrics.jsonl")] == [1, 2, 3]


def test_env_torchrun_wins_then_slurm():
    assert read_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "SLURM_PROCID": "0"}) == (3, 1, 4, "torchrun")
    slurm = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"}
    assert read_env(slurm) == (5, 1, 8, "slurm")
    assert read_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == (0, 0, 1, "none")
    assert _first_host("gpu[017-020,031],cpu1") == "gpu017" and _first_host("node7") == "node7"


def test_warmup_start_and_sgd_option():
    from vsuite.train.config import TrainConfig
    from vsuite.train.loop import _optimizer

    kw = dict(lr=1.0, warmup_steps=4, total_steps=10, min_lr_ratio=0.0)
    assert [lr_at(s, **kw, warmup_start=0.2) for s in range(4)] == pytest.approx([0.4, 0.6, 0.8, 1.0])
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = _optimizer(model, TrainConfig(optimizer="sgd", lr=0.035, momentum=0.9, weight_decay=1e-5, warmup_steps=0))
    assert isinstance(opt, torch.optim.SGD)
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-5, 0.0]  # 1-D params (bias, norm) undecayed
    assert opt.param_groups[0]["momentum"] == 0.9
    assert isinstance(_optimizer(model, TrainConfig(warmup_steps=0)), torch.optim.AdamW)


def test_lr_scale_trains_a_part_at_a_fraction_of_the_lr(tmp_path):
    """`lr_scale` {"embed_tokens": 0}: the embedding never moves (AdamW's decoupled decay is lr-scaled too),
    a part at 0.5 gets half the schedule's lr, every other parameter trains at the full lr."""
    from vsuite.train.loop import _optimizer

    model = tiny_llama()
    opt = _optimizer(model, config(lr_scale={"embed_tokens": 0.0, "mlp.": 0.5}))
    scales = sorted({g["lr_scale"] for g in opt.param_groups})
    assert scales == [0.0, 0.5, 1.0]
    assert [g["weight_decay"] > 0 for g in opt.param_groups] == sorted((g["weight_decay"] > 0 for g in opt.param_groups),
                                                                          reverse=True)  # decayed groups first
    before = {n: p.detach().clone() for n, p in tiny_llama().named_parameters()}
    trained = tiny_llama()
    fit(config(lr_scale={"embed_tokens": 0.0}), trained, tiny_data(), out_dir=tmp_path, resume="none",
        loss_fn=shifted_causal_lm_loss)
    after = dict(trained.named_parameters())
    assert torch.equal(after["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
    assert not torch.equal(after["model.layers.0.mlp.up_proj.weight"], before["model.layers.0.mlp.up_proj.weight"])


def test_lr_scale_key_matching_nothing_is_a_recipe_error(tmp_path):
    from vsuite.errors import RecipeError
    from vsuite.train.loop import _optimizer

    with pytest.raises(RecipeError, match="no trainable parameter name contains 'swin.'"):
        _optimizer(tiny_llama(), config(lr_scale={"swin.": 0.05}))
    out = tmp_path / "run"
    with pytest.raises(RecipeError):  # refused before the run folder exists
        fit(config(lr_scale={"swin.": 0.05}), tiny_llama(), tiny_data(), out_dir=out, resume="auto",
            loss_fn=shifted_causal_lm_loss)
    assert not out.exists()


def test_stop_file_saves_writes_the_marker_and_exits_75_or_0_under_torchrun(tmp_path, monkeypatch):
    from vsuite.errors import PreemptedError
    from vsuite.train import signals as S

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / S.STOP_FILE).write_text("SIGUSR1 job 4242 2026-01-01T00:00:00")  # what the job script writes
    with pytest.raises(PreemptedError, match=r"stopped by SIGUSR1 \(via .*STOP\) after step 1; saved .*step-00000001"):
        train(tmp_path)
    marker = json.loads((tmp_path / S.MARKER_FILE).read_text())
    assert (marker["step"], marker["exit_code"]) == (1, 75) and marker["reason"].startswith("SIGUSR1")
    assert not (tmp_path / S.STOP_FILE).exists()  # consumed: the requeued job must not stop again
    assert [s for s, _ in C.list_checkpoints(tmp_path)] == [1]

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # a torchrun worker: exit 0, the marker says why
    (tmp_path / S.STOP_FILE).write_text("")
    with pytest.raises(SystemExit) as stopped:
        train(tmp_path)  # resumes at step 1, stops after step 2
    assert stopped.value.code == 0
    marker = json.loads((tmp_path / S.MARKER_FILE).read_text())
    assert (marker["step"], marker["exit_code"]) == (2, 0) and "stop request" in marker["reason"]

    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    result = train(tmp_path)  # no request: runs to the end, and the old marker is gone (no second requeue)
    assert result.step == 6 and not (tmp_path / S.MARKER_FILE).exists()


def test_resume_command_repeats_the_command_line(monkeypatch, tmp_path):
    from vsuite.train.signals import resume_command

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setattr("sys.argv", ["/usr/bin/vsuite", "pretrain", "my recipe.toml", "--resume", "old/step-1",
                                     "train.steps=3"])
    assert resume_command(tmp_path) == f"vsuite pretrain 'my recipe.toml' train.steps=3 --out {tmp_path} --resume auto"
    monkeypatch.setattr("sys.argv", ["/x/vsuite/__main__.py", "pretrain", "r", "--out=runs/a", "--resume=none"])
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "7")
    assert resume_command(tmp_path) == "torchrun [same options] -m vsuite pretrain r --out=runs/a --resume auto"
    monkeypatch.setattr("sys.argv", ["pytest"])
    assert resume_command(tmp_path) == f"rerun with --out {tmp_path} --resume auto"
