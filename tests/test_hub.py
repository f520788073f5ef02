"""vsuite.hub: model references -> folders (offline aware), weight files in every layout, atomic saves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import save_file

from vsuite.errors import EXIT_DATA, EXIT_MODEL, DataError, ModelNotFoundError
from vsuite.hub import load_state_dict, resolve_model_dir, save_model, weight_files

TINY = dict(vocab_size=61, decoder_embed_dim=24, hidden_dim=24, decoder_layers=3, decoder_attention_heads=3,
            glu_dim=40, linear_use_lrpe_list=[1, 0, 0])


@pytest.fixture
def offline_cache(monkeypatch, tmp_path):
    """An empty Hugging Face cache, offline (both are read from huggingface_hub.constants at call time)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def tiny_model():
    from vsuite.models.transnormer import TransnormerConfig, TransnormerForCausalLM

    torch.manual_seed(0)
    return TransnormerForCausalLM(TransnormerConfig(**TINY))


# ----------------------------------------------------------------------------- resolve_model_dir


def test_local_folder_is_used_as_is(tmp_path):
    assert resolve_model_dir(tmp_path) == tmp_path
    assert resolve_model_dir(str(tmp_path)) == tmp_path


@pytest.mark.parametrize("ref", ["{tmp}/missing", "./missing-model", "~/missing-vsuite-model-xyz", "runs/a/best"])
def test_missing_local_path_is_a_model_not_found_error(tmp_path, offline_cache, ref):
    with pytest.raises(ModelNotFoundError, match="^no model folder at ") as err:
        resolve_model_dir(ref.format(tmp=tmp_path))
    assert err.value.exit_code == EXIT_MODEL


def test_a_file_is_not_a_model_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match="it is a file"):
        resolve_model_dir(tmp_path / "model.safetensors")


def test_hub_id_not_cached_while_offline_fails_fast_with_instructions(offline_cache):
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_dir("OpenNLPLab/TransNormerLLM-1B")
    assert time.perf_counter() - start < 5
    assert str(err.value) == (
        "OpenNLPLab/TransNormerLLM-1B is not in the local Hugging Face cache and the hub is unreachable (offline); "
        "on a machine with network run `hf download OpenNLPLab/TransNormerLLM-1B --local-dir DIR`, copy DIR here "
        "and pass `--model DIR` (or copy that machine's Hugging Face cache, ~/.cache/huggingface)")
    assert err.value.exit_code == EXIT_MODEL and "\n" not in str(err.value)


def test_offline_hint_names_the_flag_that_took_the_id(offline_cache):
    with pytest.raises(ModelNotFoundError, match=r"pass `--asr-model DIR`"):
        resolve_model_dir("openai/whisper-small", flag="--asr-model")


def test_offline_hint_names_a_cli_the_installed_hub_client_ships():
    """The hint says `hf download`: huggingface_hub >= 1.0 ships `hf` and no longer `huggingface-cli`."""
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("hf", "").startswith("huggingface_hub"), "the installed huggingface_hub has no `hf` command"


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_hub_id_resolves_from_the_offline_cache(offline_cache, weights):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = offline_cache / "models--vsuite--tiny-tnl"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (snapshot / "config.json").write_text("{}")
    (snapshot / weights).write_bytes(b"")
    assert resolve_model_dir("vsuite/tiny-tnl") == snapshot


# ----------------------------------------------------------------------------- load_state_dict


def test_every_weight_layout_loads_the_same_tensors(tmp_path):
    sd = {"a.weight": torch.randn(3, 4), "b.weight": torch.randn(5), "c.bias": torch.arange(6.0)}
    layouts = {
        "safetensors": lambda f: save_file(sd, str(f / "model.safetensors")),
        "bin": lambda f: torch.save(sd, f / "pytorch_model.bin"),
    }
    for ext, write in (("safetensors", lambda d, p: save_file(d, str(p))), ("bin", torch.save)):
        def sharded(f, ext=ext, write=write):
            prefix = "model" if ext == "safetensors" else "pytorch_model"
            names = {"a.weight": f"{prefix}-00001-of-00002.{ext}", "b.weight": f"{prefix}-00001-of-00002.{ext}",
                     "c.bias": f"{prefix}-00002-of-00002.{ext}"}
            for shard in set(names.values()):
                write({k: v for k, v in sd.items() if names[k] == shard}, f / shard)
            (f / f"{prefix}.{ext}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": names}))

        layouts[f"sharded-{ext}"] = sharded
    for name, write in layouts.items():
        folder = tmp_path / name
        folder.mkdir()
        write(folder)
        got = load_state_dict(folder)
        assert got.keys() == sd.keys(), name
        for k in sd:
            assert torch.equal(got[k], sd[k]), (name, k)


def test_bin_files_are_read_with_weights_only(tmp_path):
    calls = []
    Smuggled.calls = calls
    torch.save({"w": torch.ones(2), "payload": Smuggled()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(DataError, match="refusing to load .*weights_only=True") as err:
        load_state_dict(tmp_path)
    assert calls == []  # the pickled callable never ran
    assert err.value.exit_code == EXIT_DATA


class Smuggled:
    calls: list = []

    def __reduce__(self):
        return (Smuggled.calls.append, ("executed",))


def test_missing_and_broken_weights(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no weights in"):
        load_state_dict(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    with pytest.raises(ModelNotFoundError, match="missing: model-1.safetensors"):
        weight_files(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")  # truncated header
    with pytest.raises(DataError, match="cannot read"):
        load_state_dict(tmp_path)


# ----------------------------------------------------------------------------- save_model


def test_save_model_is_atomic_and_loadable(tmp_path):
    model = tiny_model()
    out = tmp_path / "ckpt"
    save_model(model, out, extra_files={"recipe.toml": "[model]\n"})
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    assert (out / "recipe.toml").read_text() == "[model]\n"
    want = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}  # tied: stored once
    got = load_state_dict(out)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert (out / "model.safetensors").stat().st_mode & 0o777 == (out.stat().st_mode & 0o666)

    save_model(model, out, max_shard_size=20_000)  # replaces the old folder; sharded this time
    assert not (out / "model.safetensors").exists() and (out / "model.safetensors.index.json").is_file()
    assert not (out / "recipe.toml").exists()
    assert load_state_dict(out).keys() == want.keys()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folders left


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path):
    out = tmp_path / "ckpt"
    save_model(tiny_model(), out)
    before = (out / "model.safetensors").read_bytes()

    class Broken:
        def save_pretrained(self, folder, **kwargs):
            (folder / "config.json").write_text("{}")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_model(Broken(), out)
    assert (out / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# ----------------------------------------------------------------------------- lazy Auto-class registration


def test_lazy_registration_keeps_vsuite_light_and_auto_classes_working(tmp_path):
    save_model(tiny_model(), tmp_path / "m")
    code = f"""
import sys
import vsuite, vsuite.hub
vsuite.hub.register_auto_classes_lazily()  # what vsuite/__init__.py calls
assert "torch" not in sys.modules, "import vsuite must not import torch"
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained({str(tmp_path / "m")!r})
print(type(model).__name__)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "TransnormerForCausalLM"
