"""AVLFormer: token geometry, masks against explicit constructions, the encoders' maths against naive
references, losses by hand, decoding, save/load and learning."""

from __future__ import annotations

import math
import random

import pytest
import torch

from avlformer_tiny import tiny_config
from vsuite.models.avlformer import AvlformerConfig, AvlformerForDescription
from vsuite.models.avlformer import masks as M
from vsuite.models.avlformer.passt import LogMel, kaldi_mel_banks, patchout_indices
from vsuite.models.avlformer.video_swin import relative_position_index, shift_mask, window_partition, window_reverse

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def _model(**overrides):
    torch.manual_seed(0)
    return AvlformerForDescription(tiny_config(**overrides)).eval()


def _inputs(config, b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    px = torch.randn(b, config.num_frames, 3, config.image_size, config.image_size, generator=g)
    au = 0.1 * torch.randn(b, config.audio_samples, generator=g)
    return px, au


def test_official_token_geometry():
    c = AvlformerConfig()
    assert c.video_grid() == (16, 7, 7) and c.num_video_tokens == 784
    assert c.audio_frames() == 1001 and c.audio_grid() == (12, 99)
    assert c.num_audio_tokens == 473 and c.num_visual_tokens == 1257  # official max_img_seq_length
    assert c.swin_num_features == 1024 and c.lm_lambda == 0.1 and c.loss_sparse_w == 0.5


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="patchout"):
        tiny_config(passt_patchout_t=9)
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(hidden_size=33)


# ----------------------------------------------------------------------------- masks
def _explicit_seq2seq(length: int, t: int, v: int) -> torch.Tensor:
    n = t + v
    m = torch.zeros(n, n, dtype=torch.long)
    for i in range(n):
        for j in range(n):
            if i < length and j < length and j <= i:
                m[i, j] = 1  # caption -> caption, causal
            elif i < length and j >= t:
                m[i, j] = 1  # caption -> every visual token
            elif i >= t and j >= t:
                m[i, j] = 1  # visual -> visual
    return m


def test_seq2seq_mask_matches_explicit_construction():
    lengths = torch.tensor([3, 6, 1])
    got = M.seq2seq_attention_mask(lengths, 6, 4)
    for k, length in enumerate(lengths.tolist()):
        assert torch.equal(got[k], _explicit_seq2seq(length, 6, 4))


def test_learned_mask_and_sparsity_loss():
    w = torch.randn(9, 1)
    mask, off = M.learned_visual_mask(w, 3)
    sig = torch.sigmoid(w.view(3, 3))
    for i in range(3):
        for j in range(3):
            assert mask[i, j] == pytest.approx(1.0 if i == j else float(sig[i, j]))
            assert off[i, j] == pytest.approx(0.0 if i == j else float(sig[i, j]))
    off_sum = sum(sig[i, j] for i in range(3) for j in range(3) if i != j)
    assert M.sparsity_loss(off) == pytest.approx(float(off_sum / 9))
    hard, _ = M.learned_visual_mask(w, 3, soft2hard=True)
    assert set(hard.flatten().tolist()) <= {0.0, 1.0} and torch.equal(hard.diagonal(), torch.ones(3))
    full = M.apply_learned_mask(M.seq2seq_attention_mask(torch.tensor([2]), 4, 3), mask)
    assert torch.equal(full[0, -3:, -3:], mask)
    assert torch.equal(full[0, :4, :4], _explicit_seq2seq(2, 4, 3)[:4, :4].float())


def test_tensorize_caption_masks_and_targets():
    ids = [10, 11, 12, 13, 14, 15, 16]
    out = M.tensorize_caption(ids, max_seq_length=12, cls_id=1, sep_id=2, pad_id=0, mask_id=3, vocab_size=40,
                              mask_prob=0.25, max_masked_tokens=5, rng=random.Random(0))
    tokens = [1] + ids + [2]
    assert int(out["text_lengths"]) == 9
    n = min(max(round(0.25 * 9), 1), 5)
    pos = out["masked_pos"].nonzero().flatten().tolist()
    assert len(pos) == n and all(1 <= p < 9 for p in pos)
    assert out["masked_ids"][:n].tolist() == [tokens[p] for p in pos] and (out["masked_ids"][n:] == -1).all()
    kept = [p for p in range(12) if p not in pos]
    assert [out["input_ids"][p].item() for p in kept] == [(tokens + [0] * 3)[p] for p in kept]
    assert out["output_token_ids"].tolist() == tokens[1:] + [0] * 4  # the original next tokens
    official = M.tensorize_caption(ids, max_seq_length=12, cls_id=1, sep_id=2, pad_id=0, mask_id=3, vocab_size=40,
                                   mask_prob=0.25, max_masked_tokens=5, rng=random.Random(0), official_lm_targets=True)
    assert official["output_token_ids"].tolist() == official["input_ids"][1:].tolist() + [0]
    test = M.tensorize_caption(ids, max_seq_length=12, cls_id=1, sep_id=2, pad_id=0, mask_id=3, vocab_size=40,
                               train=False)
    assert test["masked_pos"].sum() == 0 and test["input_ids"][:9].tolist() == tokens


# ----------------------------------------------------------------------------- Video Swin parts
def test_window_partition_round_trip_and_order():
    x = torch.arange(2 * 4 * 4 * 6 * 3, dtype=torch.float32).view(2, 4, 4, 6, 3)
    w = window_partition(x, (2, 2, 3))
    assert w.shape == (2 * 2 * 2 * 2, 12, 3)
    assert torch.equal(w[1], x[0, 0:2, 0:2, 3:6].reshape(12, 3))  # second window: next along width
    assert torch.equal(window_reverse(w, (2, 2, 3), 2, 4, 4, 6), x)


def test_relative_position_index_matches_formula():
    window = (2, 3, 2)
    idx = relative_position_index(window)
    coords = [(d, h, w) for d in range(2) for h in range(3) for w in range(2)]
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            dd, dh, dw = a[0] - b[0] + 1, a[1] - b[1] + 2, a[2] - b[2] + 1
            assert idx[i, j] == dd * (5 * 3) + dh * 3 + dw


def test_shift_mask_separates_rolled_regions():
    window, shift = (2, 2, 2), (1, 1, 1)
    mask = shift_mask(4, 4, 4, window, shift, "cpu")
    region = torch.zeros(4, 4, 4, dtype=torch.long)
    for d in range(4):
        for h in range(4):
            for w in range(4):  # the official region id: which of the 3 slices along each axis
                r = [0 if c < s - wi else (1 if c < s - sh else 2)
                     for c, s, wi, sh in zip((d, h, w), (4, 4, 4), window, shift)]
                region[d, h, w] = r[0] * 9 + r[1] * 3 + r[2]
    ids = window_partition(region[None, ..., None].float(), window).squeeze(-1)
    expected = torch.where(ids[:, None, :] == ids[:, :, None], 0.0, -100.0)
    assert torch.equal(mask, expected)


# ----------------------------------------------------------------------------- audio front end
def test_mel_banks_equal_torchaudio_kaldi():
    from torchaudio.compliance.kaldi import get_mel_banks

    ours = kaldi_mel_banks(32, 512, 16000, 0.0, 7000.0)
    ref, _ = get_mel_banks(32, 512, 16000.0, 0.0, 7000.0, 100.0, -500.0, 1.0)
    assert ours.shape == (32, 257)
    assert torch.allclose(ours[:, :256], ref.float(), atol=1e-5) and (ours[:, 256] == 0).all()


def test_log_mel_equals_naive_computation():
    wave = 0.3 * torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    mel = LogMel(n_mels=16, sample_rate=16000, win_length=400, hop_length=160, n_fft=512, fmax=7000.0).eval()
    got = mel(wave)
    x = torch.cat([wave[:, :1] * 0, wave], dim=1)  # naive pre-emphasis: y[n] = x[n+1] - 0.97 x[n]
    pre = wave[:, 1:] - 0.97 * wave[:, :-1]
    spec = torch.stft(pre, 512, hop_length=160, win_length=400, center=True,
                      window=torch.hann_window(400, periodic=False), return_complex=True).abs() ** 2
    ref = (torch.log(kaldi_mel_banks(16, 512, 16000, 0.0, 7000.0) @ spec + 1e-5) + 4.5) / 5
    assert x.shape[1] == 4001 and got.shape == ref.shape == (2, 16, 4000 // 160)
    assert torch.allclose(got, ref, atol=1e-4)


def test_patchout_indices():
    assert patchout_indices(10, 4, "uniform", "cpu").tolist() == [0, 1, 3, 5, 6, 8]
    r = patchout_indices(10, 4, "random", "cpu").tolist()
    assert len(r) == 6 and r == sorted(set(r))


# ----------------------------------------------------------------------------- the model
def test_shapes_and_rms_norm():
    model = _model()
    c = model.config
    px, au = _inputs(c)
    visual = model.encode(px, au)
    assert visual.shape == (2, c.num_visual_tokens, c.img_feature_dim) == (2, 77, 24)
    audio = visual[:, c.num_video_tokens:]
    rms = audio.pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4)  # parameter-free RMS norm on audio tokens
    ids = torch.randint(4, c.vocab_size, (2, c.max_seq_length))
    assert model(input_ids=ids, pixel_values=px, audio_values=au).logits.shape == (2, c.max_seq_length, c.vocab_size)


def test_text_is_causal_and_sees_audio():
    model = _model()
    c = model.config
    px, au = _inputs(c, b=1)
    visual = model.encode(px, au)
    ids = torch.tensor([[1, 5, 6, 7, 8, 2]])
    base = model(input_ids=ids, visual_features=visual).logits
    later = ids.clone()
    later[0, 4] = 9
    changed = model(input_ids=later, visual_features=visual).logits
    assert torch.allclose(base[0, :4], changed[0, :4], atol=1e-5)  # positions before 4 never see it
    assert not torch.allclose(base[0, 4], changed[0, 4], atol=1e-4)
    other = model.encode(px, torch.roll(au, 777, dims=1) * 3)
    moved = model(input_ids=ids, visual_features=other).logits[0, 0]
    assert (moved - base[0, 0]).abs().max() > 1e-6  # the first text position attends to the audio tokens


def test_loss_is_lambda_mix_plus_sparsity():
    model = _model(lm_lambda=0.3, loss_sparse_w=0.5)
    c = model.config
    px, au = _inputs(c)
    t = c.max_seq_length
    ids = torch.randint(4, c.vocab_size, (2, t))
    ids[:, 0] = c.cls_token_id
    ids[:, 8:] = 0
    out_ids = torch.cat([ids[:, 1:], torch.zeros(2, 1, dtype=torch.long)], 1)
    masked_pos = torch.zeros(2, t, dtype=torch.long)
    masked_pos[0, 2] = masked_pos[1, 3] = masked_pos[1, 5] = 1
    masked_ids = torch.tensor([[7, -1, -1], [8, 9, -1]])
    out = model(input_ids=ids, pixel_values=px, audio_values=au, masked_pos=masked_pos, masked_ids=masked_ids,
                output_token_ids=out_ids)
    logp = out.logits.log_softmax(-1)
    lm_terms = [-logp[b, i, out_ids[b, i]] for b in range(2) for i in range(t) if out_ids[b, i] != 0]
    lm = sum(lm_terms) / len(lm_terms)
    mlm = -(logp[0, 2, 7] + logp[1, 3, 8] + logp[1, 5, 9]) / 3
    _, off = M.learned_visual_mask(model.learn_vid_att.weight, c.num_visual_tokens)
    expected = 0.3 * lm + 0.7 * mlm + 0.5 * off.abs().mean()
    assert out.lm_loss.item() == pytest.approx(lm.item(), rel=1e-5)
    assert out.mlm_loss.item() == pytest.approx(mlm.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_greedy_and_beam_follow_the_mask_slot():
    """A fake next-token distribution where greedy and beam search disagree (beam finds the better sequence)."""
    model = _model()
    c = model.config
    # vocab: 0 pad, 1 cls, 2 sep, 3 mask, 4 = "a", 5 = "b"
    table = {(1,): {4: 0.6, 5: 0.4}, (1, 4): {2: 0.3, 4: 0.35, 5: 0.35}, (1, 5): {2: 0.95, 4: 0.05},
             (1, 4, 4): {2: 1.0}, (1, 4, 5): {2: 1.0}, (1, 5, 4): {2: 1.0}}
    seen = []

    def step(ids, visual):
        rows = []
        for row in ids.tolist():
            seen.append(len(row))
            probs = torch.full((c.vocab_size,), 1e-9)
            for tok, p in table.get(tuple(row), {2: 1.0}).items():
                probs[tok] = p
            rows.append(probs.log())
        return torch.stack(rows)

    model._step_logits = step
    visual = torch.zeros(1, c.num_visual_tokens, c.img_feature_dim)
    assert model.generate_ids(visual_features=visual) == [[4, 4]]  # greedy: 0.6 then 0.35 then sep
    # beam: hypotheses scored sum(log p) / len(with CLS): [1,5] -> log(.4*.95)/2 beats [1,4,4] -> log(.6*.35)/3
    assert model.generate_ids(visual_features=visual, num_beams=2) == [[5]]
    assert seen[0] == 1  # the first step sees only CLS (the [MASK] slot is added inside _step_logits)


def test_real_step_logits_read_the_mask_position():
    model = _model()
    c = model.config
    visual = model.encode(*_inputs(c, b=1))
    ids = torch.tensor([[c.cls_token_id, 7, 8]])
    full = model(input_ids=torch.tensor([[c.cls_token_id, 7, 8, c.mask_token_id]]), visual_features=visual).logits
    assert torch.allclose(model._step_logits(ids, visual), full[:, -1], atol=1e-5)


def test_save_load_round_trip(tmp_path):
    from transformers import AutoConfig, AutoModel

    import vsuite.models  # noqa: F401  (registers the Auto classes)

    model = _model()
    px, au = _inputs(model.config)
    ids = torch.randint(4, model.config.vocab_size, (2, 10))
    with torch.no_grad():
        ref = model(input_ids=ids, pixel_values=px, audio_values=au).logits
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "avlformer"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is AvlformerForDescription
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids, pixel_values=px, audio_values=au).logits, ref, atol=1e-5)
    assert loaded.generate_ids(px, au, max_length=6) == model.generate_ids(px, au, max_length=6)


def test_loss_falls_on_a_fixed_batch():
    model = _model()
    model.train()
    c = model.config
    px, au = _inputs(c)
    rng = random.Random(0)
    texts = [M.tensorize_caption([5, 6, 7, 8, 9], max_seq_length=c.max_seq_length, cls_id=1, sep_id=2, pad_id=0,
                                 mask_id=3, vocab_size=c.vocab_size, max_masked_tokens=c.max_masked_tokens, rng=rng)
             for _ in range(2)]
    batch = {k: torch.stack([t[k] for t in texts]) for k in texts[0]}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        out = model(pixel_values=px, audio_values=au, **batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0] and all(math.isfinite(x) for x in losses)


def test_activation_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        model = _model()
        model.train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        px, au = _inputs(model.config)
        torch.manual_seed(5)  # the same random patchout in both runs
        ids = torch.randint(4, model.config.vocab_size, (2, 12))
        model(input_ids=ids, pixel_values=px, audio_values=au).logits.pow(2).mean().backward()
        grads.append(model.trans_encoder.bert.encoder.layer[0].attention.self.query.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0
