"""TransNormerLLM: official numerics, official checkpoint layout, cache/decoding, Auto-class round trips.

The oracle below is written from the official modeling code's description (reference §2) with plain
torch ops, independently of vsuite's model and kernels: quadratic masked attention exp(-s (i-j)),
SRMSNorm in fp32, sqrt(d) embedding scale, TNL's ALiBi slope recursion and per-layer schedule,
cos/sin LRPE with theta 10000^(-2j/D).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

import vsuite.models  # noqa: F401  (registers model_type "transnormer")
from vsuite.models.transnormer import TransnormerCache, TransnormerConfig, TransnormerForCausalLM, TransnormerModel

# Tiny and awkward: H = 3 (not a power of two), head_dim 8 (16 on the LRPE layer), 3 layers, LRPE on layer 0.
TINY = dict(vocab_size=61, decoder_embed_dim=24, hidden_dim=24, decoder_layers=3, decoder_attention_heads=3,
            glu_dim=40, linear_use_lrpe_list=[1, 0, 0], linear_act_fun="swish")


def tiny_model(seed=0, dtype=torch.float32, **overrides) -> TransnormerForCausalLM:
    torch.manual_seed(seed)
    model = TransnormerForCausalLM(TransnormerConfig(**{**TINY, **overrides})).to(dtype).eval()
    theta = model.model.layers[0].token_mixer.lrpe.theta
    with torch.no_grad():  # theta away from its init, so that a mix-up of theta would show
        theta.mul_(1 + 0.1 * torch.rand_like(theta))
    return model


# ----------------------------------------------------------------------------- the oracle


def alibi(n: int) -> list[float]:
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(n).is_integer():
        return power_of_2(n)
    c = 2 ** math.floor(math.log2(n))
    return power_of_2(c) + alibi(2 * c)[0::2][: n - c]


def srms(x):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)


def oracle_logits(sd: dict, cfg: dict, ids: torch.Tensor) -> torch.Tensor:
    """The official forward (training path), quadratic form. sd uses the official key names."""
    d, H, L = cfg["decoder_embed_dim"], cfg["decoder_attention_heads"], cfg["decoder_layers"]
    act = F.silu if cfg["linear_act_fun"] in ("silu", "swish") else (lambda t: t)
    B, N = ids.shape
    x = math.sqrt(d) * sd["model.embed_tokens.weight"][ids]
    pos = torch.arange(N, dtype=x.dtype)
    lag = pos[:, None] - pos[None, :]
    for layer in range(L):
        p = f"model.layers.{layer}."
        q, k, v, u = (srms(x) @ sd[p + "token_mixer.qkvu_proj.weight"].T).chunk(4, dim=-1)
        q, k, v = (t.reshape(B, N, H, -1).permute(0, 2, 1, 3) for t in (q, k, v))
        q, k = act(q), act(k)
        if cfg["linear_use_lrpe_list"][layer]:
            ang = sd[p + "token_mixer.lrpe.theta"] * pos[:, None]  # [H, N, dh]
            q = torch.cat([q * torch.cos(ang), q * torch.sin(ang)], dim=-1)
            k = torch.cat([k * torch.cos(ang), k * torch.sin(ang)], dim=-1)
        s = torch.tensor(alibi(H), dtype=x.dtype) * (1 - layer / (L - 1) + 1e-5)
        decay = torch.exp(s[:, None, None] * -lag).masked_fill(lag < 0, 0.0)  # [H, N, N]
        o = ((q @ k.transpose(-1, -2)) * decay) @ v  # no softmax, no 1/sqrt(d)
        o = o.permute(0, 2, 1, 3).reshape(B, N, -1)
        x = x + (u * srms(o)) @ sd[p + "token_mixer.out_proj.weight"].T
        h = srms(x)
        glu = (h @ sd[p + "channel_mixer.l1.weight"].T) * (h @ sd[p + "channel_mixer.l2.weight"].T)
        x = x + glu @ sd[p + "channel_mixer.l3.weight"].T
    return srms(x) @ sd["lm_head.weight"].T


def official_checkpoint(cfg: dict, seed=0) -> dict:
    """A state dict with the official names and shapes, made here without vsuite's model."""
    g = torch.Generator().manual_seed(seed)
    d, hid, H, V, glu = (cfg[k] for k in ("decoder_embed_dim", "hidden_dim", "decoder_attention_heads",
                                         "vocab_size", "glu_dim"))
    r = lambda *shape: 0.2 * torch.randn(*shape, generator=g)  # noqa: E731
    sd = {"model.embed_tokens.weight": r(V, d)}
    for i in range(cfg["decoder_layers"]):
        p = f"model.layers.{i}."
        sd[p + "token_mixer.qkvu_proj.weight"] = r(4 * hid, d)
        sd[p + "token_mixer.out_proj.weight"] = r(d, hid)
        if cfg["linear_use_lrpe_list"][i]:
            D = hid
            sd[p + "token_mixer.lrpe.theta"] = (10000 ** (-2 / D * torch.arange(D))).reshape(H, 1, -1) * (
                1 + 0.1 * torch.rand(H, 1, D // H, generator=g))
        sd[p + "channel_mixer.l1.weight"] = r(glu, d)
        sd[p + "channel_mixer.l2.weight"] = r(glu, d)
        sd[p + "channel_mixer.l3.weight"] = r(d, glu)
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"]  # tied, as the official models are saved
    return sd


def official_config_json(cfg: dict) -> dict:
    """config.json as the official repos write it (remote-code auto_map, official field names)."""
    return {
        "_name_or_path": "OpenNLPLab/TransNormerLLM-tiny", "architectures": ["TransnormerForCausalLM"],
        "auto_map": {"AutoConfig": "configuration_transnormer.TransnormerConfig",
                     "AutoModelForCausalLM": "modeling_transnormer.TransnormerForCausalLM"},
        "model_type": "transnormer", "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2,
        "use_cache": True, "init_std": 0.02, "no_scale_embedding": False, "add_bos_token": False,
        "norm_type": "simplermsnorm", "bias": False, "torch_dtype": "float32", "transformers_version": "4.33.1",
        **cfg,
    }


def write_official_folder(folder, cfg, sd, layout: str):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(official_config_json(cfg)))
    if layout == "bin":
        torch.save(sd, folder / "pytorch_model.bin")
    elif layout == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.clone().contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"))
    elif layout == "sharded-bin":
        keys = sorted(sd)
        shards = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
                  "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2:]}
        weight_map = {}
        for name, part in shards.items():
            torch.save({k: sd[k].clone() for k in part}, folder / name)
            weight_map.update(dict.fromkeys(part, name))
        (folder / "pytorch_model.bin.index.json").write_text(
            json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


# ----------------------------------------------------------------------------- numerics


def test_matches_the_independent_oracle():
    model = tiny_model()
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    ids = torch.randint(0, TINY["vocab_size"], (2, 37))
    with torch.no_grad():
        got = model(ids).logits
    torch.testing.assert_close(got, oracle_logits(sd, TINY, ids), rtol=1e-5, atol=1e-5)


def test_no_activation_variant_matches_the_oracle():
    cfg = {**TINY, "linear_act_fun": "none"}
    model = tiny_model(**cfg)
    ids = torch.randint(0, TINY["vocab_size"], (1, 20))
    with torch.no_grad():
        want = oracle_logits(model.state_dict(), cfg, ids)
        torch.testing.assert_close(model(ids).logits, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("prefill", [0, 1, 70])
def test_parallel_forward_equals_recurrent_decoding(prefill):
    """Chunked forward over 150 tokens (crosses chunk boundaries) == prefill + one token at a time."""
    model = tiny_model(dtype=torch.float64)
    ids = torch.randint(0, TINY["vocab_size"], (2, 150))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        cache, steps = None, []
        if prefill:
            out = model(ids[:, :prefill], use_cache=True)
            cache, steps = out.cache, [out.logits]
        for t in range(prefill, ids.shape[1]):
            out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
            cache = out.cache
            steps.append(out.logits)
    assert cache.get_seq_length() == 150
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-9, atol=1e-9)


def test_padding_left_and_right_leave_real_tokens_unchanged():
    model = tiny_model()
    a = torch.randint(3, TINY["vocab_size"], (1, 12))
    pad = torch.full((1, 5), 7)  # not pad_token_id: its embedding is not zero, so only the mask can hide it
    zeros, ones = torch.zeros(1, 5), torch.ones(1, 12)
    with torch.no_grad():
        ref = model(a).logits
        left = model(torch.cat([pad, a], 1), attention_mask=torch.cat([zeros, ones], 1)).logits
        right = model(torch.cat([a, pad], 1), attention_mask=torch.cat([ones, zeros], 1)).logits
    torch.testing.assert_close(left[:, 5:], ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(right[:, :12], ref, rtol=1e-5, atol=1e-5)


def test_labels_give_the_shifted_cross_entropy_and_checkpointing_keeps_gradients():
    model = tiny_model().train()
    ids = torch.randint(0, TINY["vocab_size"], (2, 16))
    labels = ids.clone()
    labels[0, :4] = -100
    out = model(ids, labels=labels)
    want = F.cross_entropy(out.logits[:, :-1].reshape(-1, TINY["vocab_size"]), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, want)
    assert out.cache is None  # no cache in training unless asked for
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert grads["model.layers.0.token_mixer.lrpe.theta"].abs().sum() > 0  # theta is learned

    model.zero_grad()
    # transformers >= 5.24 name; older versions (down to the declared floor) only have the old one
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    calls = []
    model.model.layers[1].register_forward_pre_hook(lambda *args: calls.append(1))
    loss = model(ids, labels=labels).loss
    loss.backward()
    assert len(calls) == 2  # the layer ran again in the backward pass: it was checkpointed
    torch.testing.assert_close(loss, out.loss)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], rtol=1e-5, atol=1e-6, msg=n)


# ----------------------------------------------------------------------------- official checkpoints


@pytest.mark.parametrize("layout", ["bin", "safetensors", "sharded-bin"])
def test_official_checkpoint_loads_with_no_missing_or_unexpected_keys(tmp_path, layout):
    sd = official_checkpoint(TINY)
    write_official_folder(tmp_path / "ckpt", TINY, sd, layout)
    model, info = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", output_loading_info=True)
    assert isinstance(model, TransnormerForCausalLM)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied
    assert not hasattr(model.config, "auto_map")  # the remote code is never referenced again
    ids = torch.randint(0, TINY["vocab_size"], (2, 23))
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ids).logits, oracle_logits(sd, TINY, ids), rtol=1e-5, atol=1e-5)


def test_official_config_json_loads_as_is(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(official_config_json(TINY)))
    cfg = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(cfg, TransnormerConfig)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (24, 3, 3)
    assert cfg.linear_use_lrpe_list == [1, 0, 0] and cfg.linear_act_fun == "swish" and cfg.tie_word_embeddings
    assert isinstance(AutoModel.from_config(cfg), TransnormerModel)


def test_released_configs_build():
    folder = Path(vsuite.models.transnormer.__file__).parent / "configs"
    names = sorted(p.name for p in folder.glob("*.json"))
    assert names == ["transnormerllm-1b.json", "transnormerllm-385m.json", "transnormerllm-7b.json"]
    for name in names:
        cfg = TransnormerConfig.from_json_file(folder / name)
        with torch.device("meta"):
            model = TransnormerForCausalLM(cfg)
        n = sum(p.numel() for p in model.parameters())  # tied lm_head counted once
        assert cfg.linear_use_lrpe_list[0] == 1 and not any(cfg.linear_use_lrpe_list[1:])
        expected = {"transnormerllm-385m.json": 0.385e9, "transnormerllm-1b.json": 1.0e9,
                    "transnormerllm-7b.json": 6.8e9}[name]
        assert abs(n - expected) / expected < 0.06, (name, n)


# ----------------------------------------------------------------------------- save, load, generate


def test_save_pretrained_round_trip_and_greedy_generate(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path / "m")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    assert isinstance(loaded, TransnormerForCausalLM)
    prompt = torch.randint(3, TINY["vocab_size"], (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(prompt).logits, model(prompt).logits, rtol=0, atol=0)
        out = loaded.generate(prompt, max_new_tokens=5, do_sample=False, eos_token_id=None, pad_token_id=0)
        seq = prompt
        for _ in range(5):  # greedy by repeated full forwards, no cache
            nxt = loaded(seq, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(out, seq)


def test_cache_memory_is_constant_in_the_number_of_generated_tokens():
    model = tiny_model()
    prompt = torch.randint(3, TINY["vocab_size"], (2, 9))
    shapes = []
    with torch.no_grad():
        for n in (1, 5, 20):
            out = model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0,
                                 return_dict_in_generate=True)
            cache = getattr(out, "cache", None) or out.past_key_values  # the field's name before transformers 5.24
            assert isinstance(cache, TransnormerCache)
            assert cache.get_seq_length() == 9 + n - 1  # the last token is sampled, not yet fed
            states = [cache.get_recurrent_state(i) for i in range(TINY["decoder_layers"])]
            shapes.append([tuple(s.shape) for s in states])
            assert all(s.dtype == torch.float32 for s in states)
    assert shapes[0] == shapes[1] == shapes[2]
    assert shapes[0] == [(2, 3, 16, 8), (2, 3, 8, 8), (2, 3, 8, 8)]  # Dk = 2 * head_dim on the LRPE layer


def test_generate_with_left_padding_matches_unpadded():
    model = tiny_model()
    a = torch.randint(3, TINY["vocab_size"], (1, 6))
    b = torch.randint(3, TINY["vocab_size"], (1, 9))
    batch = torch.cat([torch.cat([torch.full((1, 3), 7), a], 1), b])  # left padding with a non-zero embedding
    mask = torch.ones_like(batch)
    mask[0, :3] = 0
    with torch.no_grad():
        both = model.generate(batch, attention_mask=mask, max_new_tokens=4, do_sample=False, pad_token_id=0,
                              eos_token_id=None)
        alone = model.generate(a, max_new_tokens=4, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(both[0, 3:], alone[0])
