"""TNN language model: the Toeplitz operator against an explicit oracle, causality,
length extrapolation, Auto-class round trip, generation and learning."""

import torch

from vsuite.models.tnn import TnnConfig, TnnForCausalLM
from vsuite.models.tnn.modeling_tnn import Tno
from vsuite_kernels.testing import assert_close


def tiny_config(**kw):
    base = dict(vocab_size=61, hidden_size=32, num_layers=2, num_heads=2, rpe_dim=8, rpe_layers=2, dropout=0.0)
    return TnnConfig(**{**base, **kw})


def test_tno_matches_explicit_toeplitz_oracle():
    """o[i] = sum_{j<=i} gamma^(i-j) RPE(i-j) v[j], each lag's coefficient from its own RPE call."""
    torch.manual_seed(0)
    cfg = tiny_config(gamma=0.9)
    tno = Tno(cfg, heads=2, head_dim=5).double()
    v = torch.randn(2, 2, 9, 5, dtype=torch.float64)
    got = tno(v)
    expected = torch.zeros_like(v)
    for i in range(9):
        for j in range(i + 1):
            lag = i - j
            t = tno.rpe(torch.tensor([[float(lag)]], dtype=torch.float64)).view(2, 5)  # [H, d]
            expected[:, :, i] += (0.9**lag if lag else 1.0) * t * v[:, :, j]
    assert_close("tno", expected, got, 1e-10)


def test_bidirectional_tno_uses_negative_lags():
    torch.manual_seed(0)
    tno = Tno(tiny_config(causal=False, use_decay=False), heads=1, head_dim=3).double()
    v = torch.randn(1, 1, 6, 3, dtype=torch.float64)
    got = tno(v)
    expected = torch.zeros_like(v)
    for i in range(6):
        for j in range(6):
            t = tno.rpe(torch.tensor([[float(i - j)]], dtype=torch.float64)).view(1, 3)
            expected[:, :, i] += t * v[:, :, j]
    assert_close("tno-bidir", expected, got, 1e-10)


def test_causal_and_extrapolates_beyond_training_length():
    torch.manual_seed(0)
    model = TnnForCausalLM(tiny_config()).eval()
    ids = torch.randint(0, 61, (1, 1500))
    with torch.no_grad():
        long = model(input_ids=ids).logits
        short = model(input_ids=ids[:, :100]).logits
        changed = ids.clone()
        changed[0, 60:] = (changed[0, 60:] + 1) % 61
        edited = model(input_ids=changed).logits
    assert torch.isfinite(long).all()
    assert_close("prefix", short, long[:, :100], 1e-5)  # no positional embedding: a prefix is a prefix
    assert_close("causal", long[:, :60], edited[:, :60], 1e-5)
    assert (long[:, 60:] - edited[:, 60:]).abs().max() > 1e-3


def test_paper_config_size():
    with torch.device("meta"):
        model = TnnForCausalLM(TnnConfig())
    n = sum(p.numel() for p in model.parameters())
    assert 48.5e6 < n < 48.8e6  # the paper reports 48.68M for the WikiText-103 model
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_auto_class_round_trip(tmp_path):
    import vsuite.models  # noqa: F401  registers model_type "tnn"
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = TnnForCausalLM(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is TnnForCausalLM
    ids = torch.randint(0, 61, (2, 20))
    with torch.no_grad():
        assert_close("logits", model(input_ids=ids).logits, loaded(input_ids=ids).logits, 1e-7)


def test_generate_is_greedy_argmax():
    torch.manual_seed(0)
    model = TnnForCausalLM(tiny_config()).eval()
    prompt = torch.randint(0, 61, (1, 7))
    out = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=1)
    ids = prompt
    with torch.no_grad():
        for _ in range(5):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, ids)


def test_tiny_model_learns_a_repeating_sequence():
    torch.manual_seed(0)
    model = TnnForCausalLM(tiny_config())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    pattern = torch.arange(0, 12).repeat(6)[None]  # period 12: predictable from 12 tokens back
    losses = []
    for _ in range(60):
        loss = model(input_ids=pattern, labels=pattern).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0], losses[::10]
