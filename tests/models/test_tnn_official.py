"""Official TNN checkpoints (OpenNLPLab/fairseq-evo `tnn_v2_*` LMs) and padding: fairseq names with and
without decay, config inference, the pickled file's safety, left padding and batched generation."""

import argparse
import enum
import os
import sys
import types

import pytest
import torch

from vsuite.errors import DataError, ModelNotFoundError
from vsuite.models.tnn import TnnConfig, TnnForCausalLM
from vsuite.models.tnn.official import convert_state_dict, load_fairseq_checkpoint

PAD = 1


def tiny(**kw):
    base = dict(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2, rpe_dim=8, rpe_layers=3, dropout=0.0,
                gamma=0.9)
    torch.manual_seed(0)
    return TnnForCausalLM(TnnConfig(**{**base, **kw})).eval()


def fairseq_layout(model) -> dict:
    """fairseq-evo's names for our weights, spelled out here (not by running the converter backwards)."""
    sd = {}
    for key, value in model.state_dict().items():
        name = key.replace("model.embed_tokens.", "decoder.embed_tokens.")
        name = name.replace("model.final_norm.", "decoder.layer_norm.")
        name = name.replace("lm_head.", "decoder.output_projection.")
        name = name.replace("model.layers.", "decoder.layers.")
        name = name.replace(".token_mixer.", ".self_attn.gtu.").replace(".channel_mixer.", ".glu.")
        if ".rpe.layers." in name:  # rpe.layers.{j} was Sequential(norm, act, Linear): the Linear is index 2
            head, tail = name.split(".rpe.layers.")
            j, param = tail.split(".")
            name = f"{head}.rpe.layers.{j}.2.{param}"
        name = name.replace(".rpe.out.", ".rpe.out.2.")
        sd[name] = value.clone()
    sd["decoder.version"] = torch.tensor([3.0])
    return sd


def cfg_model(**kw):
    """cfg["model"] of a fairseq-evo run of tnn_v2_decay_99_pre (the keys the loader reads, plus noise)."""
    base = dict(_name="tnn_v2_lm", arch="tnn_v2_decay_99_pre", decoder_attention_heads=2, decoder_layers=2,
                decoder_normalize_before=True, no_token_positional_embeddings=True, act_fun="silu", causal=True,
                expand_ratio=3, use_norm=False, norm_type="simplermsnorm", use_decay=True, gamma=0.9,
                rpe_embedding=8, rpe_layers=3, residual=False, glu_act="silu", glu_dim=32, dropout=0.1,
                share_decoder_input_output_embed=True, tokens_per_sample=512, adaptive_input=False)
    return {**base, **kw}


def save_fairseq(path, sd, model_cfg=None, legacy_args=None):
    """fairseq/trainer.py state_dict's layout."""
    torch.save({"args": legacy_args, "cfg": None if legacy_args else {"model": model_cfg or cfg_model(),
                                                                       "common": {"seed": 1}},
                "model": sd, "criterion": None,
                "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "optimizer_name": "FairseqAdam",
                                       "lr_scheduler_state": {"best": 3.2}, "num_updates": 50000}],
                "task_state": {}, "extra_state": {"epoch": 12, "previous_training_time": 1234.5},
                "last_optimizer_state": {"state": {}, "param_groups": [{"lr": 5e-4}]}}, path)
    return path


def logits(model, ids, mask=None):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


# ----------------------------------------------------------------------------- fairseq checkpoints
def test_decay_checkpoint_loads_with_inferred_config(tmp_path):
    model = tiny()
    official = fairseq_layout(model)
    assert "decoder.layers.1.self_attn.gtu.toep.rpe.layers.2.2.weight" in official
    assert "decoder.layers.0.self_attn.gtu.toep.gamma" in official
    loaded = load_fairseq_checkpoint(save_fairseq(tmp_path / "checkpoint_best.pt", official))
    cfg = loaded.config
    assert (cfg.vocab_size, cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.gtu_dim) == (61, 32, 2, 2, 96)
    assert (cfg.rpe_dim, cfg.rpe_layers, cfg.use_decay, cfg.glu_width) == (8, 3, True, 32)
    assert cfg.gamma == pytest.approx(0.9) and cfg.tie_word_embeddings and cfg.final_norm and cfg.dropout == 0.1
    assert loaded.lm_head.weight is loaded.model.embed_tokens.weight and not loaded.training
    ids = torch.randint(0, 61, (2, 19))
    torch.testing.assert_close(logits(loaded, ids), logits(model, ids), atol=1e-6, rtol=0)


def test_no_decay_state_dict_loads_strictly(tmp_path):
    """tnn_v2_no_decay has no `gamma` at all: the state dict must load strictly."""
    model = tiny(use_decay=False)
    official = fairseq_layout(model)
    assert not any(k.endswith("gamma") for k in official)
    strict = TnnForCausalLM(TnnConfig(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2, rpe_dim=8,
                                      rpe_layers=3, use_decay=False)).eval()
    strict.load_state_dict(convert_state_dict(official), strict=True)
    args = argparse.Namespace(**cfg_model(arch="tnn_v2_no_decay", use_decay=False))  # legacy "args"
    loaded = load_fairseq_checkpoint(save_fairseq(tmp_path / "nd.pt", official, legacy_args=args))
    assert not loaded.config.use_decay and loaded.config.num_heads == 2  # heads from args: no gamma to read
    ids = torch.randint(0, 61, (2, 17))
    want = logits(model, ids)
    torch.testing.assert_close(logits(strict, ids), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(logits(loaded, ids), want, atol=1e-6, rtol=0)


def test_untied_projection_and_save_pretrained(tmp_path):
    from transformers import AutoModelForCausalLM

    model = tiny(tie_word_embeddings=False)
    with torch.no_grad():
        model.lm_head.weight.normal_()
    loaded = load_fairseq_checkpoint(save_fairseq(tmp_path / "u.pt", fairseq_layout(model)))
    assert not loaded.config.tie_word_embeddings
    loaded.save_pretrained(tmp_path / "hf")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    ids = torch.randint(0, 61, (1, 12))
    torch.testing.assert_close(logits(again, ids), logits(model, ids), atol=1e-6, rtol=0)


def test_fairseq_classes_in_metadata_are_stand_ins_and_code_is_refused(tmp_path, monkeypatch):
    # A fairseq enum inside the saved cfg, pickled by reference to a module that is absent when loading.
    pkg, mod = types.ModuleType("fairseq"), types.ModuleType("fairseq.dataclass_constants")
    Ddp = enum.Enum("DDP_BACKEND_CHOICES", {"c10d": "c10d"})
    Ddp.__module__ = "fairseq.dataclass_constants"
    mod.DDP_BACKEND_CHOICES = Ddp
    monkeypatch.setitem(sys.modules, "fairseq", pkg)
    monkeypatch.setitem(sys.modules, "fairseq.dataclass_constants", mod)
    model = tiny()
    path = save_fairseq(tmp_path / "enum.pt", fairseq_layout(model), cfg_model(ddp_backend=Ddp.c10d))
    monkeypatch.delitem(sys.modules, "fairseq.dataclass_constants")
    monkeypatch.delitem(sys.modules, "fairseq")
    ids = torch.randint(0, 61, (1, 9))
    torch.testing.assert_close(logits(load_fairseq_checkpoint(path), ids), logits(model, ids), atol=1e-6, rtol=0)

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"args": None, "cfg": {"model": Payload()}, "model": fairseq_layout(model)}, tmp_path / "evil.pt")
    with pytest.raises(DataError, match="refusing to load .*mkdir"):
        load_fairseq_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_unsupported_variants_and_bad_files_are_one_line_errors(tmp_path):
    model = tiny()
    official = fairseq_layout(model)
    with pytest.raises(DataError, match="decoder_normalize_before=False"):
        load_fairseq_checkpoint(save_fairseq(tmp_path / "post.pt", official,
                                             cfg_model(arch="tnn_v2_decay_99_post", decoder_normalize_before=False)))
    with pytest.raises(DataError, match="use_norm=True"):
        load_fairseq_checkpoint(save_fairseq(tmp_path / "n.pt", official, cfg_model(use_norm=True)))
    glu_v2 = {k: v for k, v in official.items() if ".glu.l3." not in k}
    with pytest.raises(DataError, match="missing model.layers.0.channel_mixer.l3"):
        load_fairseq_checkpoint(save_fairseq(tmp_path / "g.pt", glu_v2))
    with pytest.raises(DataError, match="unexpected keys decoder.embed_positions"):
        convert_state_dict({**official, "decoder.embed_positions.weight": torch.zeros(3, 32)})
    with pytest.raises(ModelNotFoundError):
        load_fairseq_checkpoint(tmp_path / "absent.pt")
    torch.save({"model_state": official}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="no 'model' state dict"):
        load_fairseq_checkpoint(tmp_path / "other.pt")


# ----------------------------------------------------------------------------- padding
def batch(seqs, side):
    n = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), n), PAD)
    mask = torch.zeros(len(seqs), n, dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(n - len(s), n) if side == "left" else slice(0, len(s))
        ids[i, sl], mask[i, sl] = torch.tensor(s), 1
    return ids, mask


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_batch_equals_unpadded_sequences(side, causal):
    model = tiny(causal=causal)
    g = torch.Generator().manual_seed(3)
    seqs = [torch.randint(3, 61, (n,), generator=g).tolist() for n in (5, 11, 8)]
    ids, mask = batch(seqs, side)
    out = logits(model, ids, mask)
    n = ids.shape[1]
    for i, s in enumerate(seqs):
        alone = logits(model, torch.tensor([s]))[0]
        real = slice(n - len(s), n) if side == "left" else slice(0, len(s))
        torch.testing.assert_close(out[i, real], alone, atol=1e-5, rtol=0)
    if side == "left":  # without the mask the pads do leak: the check above can fail
        assert not torch.allclose(logits(model, ids)[0, n - 5:], logits(model, torch.tensor([seqs[0]]))[0], atol=1e-3)


def test_batched_generate_with_left_padding_equals_one_by_one():
    """Same tokens, and the same next-token logits at every step (greedy tokens alone hide small leaks)."""
    model = tiny()
    g = torch.Generator().manual_seed(5)
    seqs = [torch.randint(3, 61, (n,), generator=g).tolist() for n in (4, 9, 6)]
    ids, mask = batch(seqs, "left")
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=PAD, output_logits=True, return_dict_in_generate=True)
    out = model.generate(input_ids=ids, attention_mask=mask, **kw)
    n = ids.shape[1]
    for i, s in enumerate(seqs):
        alone = model.generate(input_ids=torch.tensor([s]), **kw)
        new = alone.sequences[0, len(s):]
        assert len(new) > 0
        assert out.sequences[i, n:n + len(new)].tolist() == new.tolist(), i
        for step in range(len(new)):
            torch.testing.assert_close(out.logits[step][i], alone.logits[step][0], atol=1e-5, rtol=0)
