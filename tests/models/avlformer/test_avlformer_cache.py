"""AVLFormer cached decoding (AvlDecodeCache) against the uncached path, which re-runs the whole decoder over
the audio-visual tokens and the text at every step: same token ids and, step by step, the same logits."""

from __future__ import annotations

import pytest
import torch

from avlformer_tiny import tiny_config
from vsuite.models.avlformer import AvlformerForDescription
from vsuite.models.avlformer.modeling_avlformer import AvlDecodeCache

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def _model(learn_mask: bool):
    """A tiny decoder with larger weights (initializer_range 0.3: the clips' descriptions differ and attention
    is neither uniform nor one-hot, so text-to-text attention visibly matters) and a raised SEP logit (chosen
    so that the 4 clips below finish at different steps, some before max_gen_length)."""
    torch.manual_seed(0)
    model = AvlformerForDescription(tiny_config(learn_mask_enabled=learn_mask, initializer_range=0.3)).eval()
    with torch.no_grad():
        model.trans_encoder.cls.predictions.bias[model.config.sep_token_id] = 2.5 if learn_mask else 4.0
    return model


def _visual(model, b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, model.config.num_visual_tokens, model.config.img_feature_dim, generator=g)


def _run(model, visual, use_cache, **kwargs):
    """(token ids, [(ids [R, L], logits [R, vocab]) of every decoding step])."""
    steps = []
    real = model._step_logits

    def spy(ids, context):
        assert isinstance(context, AvlDecodeCache) == use_cache  # the path asked for is the one taken
        logits = real(ids, context)
        steps.append((ids.clone(), logits))
        return logits

    model._step_logits = spy
    try:
        out = model.generate_ids(visual_features=visual, use_cache=use_cache, **kwargs)
    finally:
        del model._step_logits
    return out, steps


def _assert_same_steps(cached, uncached):
    assert len(cached) == len(uncached)
    for (ids_c, logits_c), (ids_u, logits_u) in zip(cached, uncached):
        assert torch.equal(ids_c, ids_u)
        # fp32: 1e-5 of the logits' scale (the large test weights amplify summation-order rounding)
        scale = logits_u.abs().max()
        assert torch.allclose(logits_c, logits_u, rtol=1e-5, atol=1e-5 * scale), (logits_c - logits_u).abs().max()


@pytest.mark.parametrize("learn_mask", [False, True])
@pytest.mark.parametrize("num_beams", [1, 2, 3])
def test_cached_decoding_matches_recomputation(learn_mask, num_beams):
    model = _model(learn_mask)
    visual = _visual(model)
    ids_c, steps_c = _run(model, visual, True, num_beams=num_beams)
    ids_u, steps_u = _run(model, visual, False, num_beams=num_beams)
    assert ids_c == ids_u
    _assert_same_steps(steps_c, steps_u)
    lengths = [len(s) for s in ids_c]
    assert len(set(lengths)) > 1  # the clips finish at different steps (batch of 4)
    assert min(lengths) < model.config.max_gen_length - 2


def test_learned_mask_changes_the_description():
    """The learned visual mask matters in this setup (so the learn_mask=True case above tests it)."""
    model = _model(True)
    visual = _visual(model)
    with_mask = model.generate_ids(visual_features=visual)
    with torch.no_grad():
        model.learn_vid_att.weight.fill_(30.0)  # sigmoid -> 1: the plain all-ones visual block
    plain = model.generate_ids(visual_features=visual)
    assert with_mask != plain


def test_beam_search_reorders_the_cache(monkeypatch):
    """Beams change rows with different histories here, and skipping the reordering changes the logits."""
    model = _model(True)
    visual = _visual(model)
    _, reference = _run(model, visual, False, num_beams=3)
    swaps = []
    real_reorder = AvlDecodeCache.reorder

    def recording(self, rows):
        # a row continues another row whose text differs from its own: the cache rows must move
        texts = [tuple(r) for r in self.layers[0].text_k.flatten(1).tolist()]
        swaps.append(any(texts[j] != texts[int(r)] for j, r in enumerate(rows.tolist())))
        real_reorder(self, rows)

    monkeypatch.setattr(AvlDecodeCache, "reorder", recording)
    _, cached = _run(model, visual, True, num_beams=3)
    _assert_same_steps(cached, reference)
    assert any(swaps)

    monkeypatch.setattr(AvlDecodeCache, "reorder", lambda self, rows: None)
    _, stale = _run(model, visual, True, num_beams=3)
    assert len(stale) != len(reference) or any(
        not torch.equal(s[0], r[0]) or not torch.allclose(s[1], r[1], atol=1e-3) for s, r in zip(stale, reference))


@pytest.mark.parametrize("num_beams", [1, 2])
@pytest.mark.parametrize("max_length", [1, 2, 3, 1000])
def test_max_length_edges(num_beams, max_length):
    model = _model(False)
    visual = _visual(model, b=2)
    ids_c, steps_c = _run(model, visual, True, num_beams=num_beams, max_length=max_length)
    ids_u, steps_u = _run(model, visual, False, num_beams=num_beams, max_length=max_length)
    assert ids_c == ids_u
    _assert_same_steps(steps_c, steps_u)
    if max_length == 1:
        assert ids_c == [[], []] and not steps_c  # only CLS: nothing is decoded
    if max_length == 2 and num_beams == 1:
        assert len(steps_c) == 1
    # 1000 is clipped to max_position_embeddings - 1 (the [MASK] slot needs a position)
    assert all(len(s) <= min(max_length, model.config.max_position_embeddings - 1) - 1 for s in ids_c)


def test_one_clip_and_beams_share_its_visual_keys():
    model = _model(False)
    visual = _visual(model, b=1)
    with torch.no_grad():
        cache = model._start_cache(visual, beams=3)
    c = model.config
    heads, hd = c.num_attention_heads, c.hidden_size // c.num_attention_heads
    assert len(cache.layers) == c.num_hidden_layers and cache.length == 0
    assert cache.layers[0].visual_k.shape == (1, heads, c.num_visual_tokens, hd)  # per clip, not per beam
    ids = torch.full((3, 1), c.cls_token_id)
    with torch.no_grad():
        model._step_logits(ids, cache)
    assert cache.length == 1 and cache.layers[-1].text_k.shape == (3, heads, 1, hd)  # CLS only, no [MASK]
    with pytest.raises(ValueError, match="within their clip"):
        AvlDecodeCache(1, 2).reorder(torch.tensor([2, 0, 1, 3]))


def test_training_forward_is_unchanged_by_the_cache_arguments():
    """forward() (training) still runs the full decoder: text positions' logits equal a per-position
    cached decode of the same text (a second, independent check of the cached attention)."""
    model = _model(True)
    c = model.config
    visual = _visual(model, b=2)
    text = torch.tensor([[c.cls_token_id, 7, 8, 9], [c.cls_token_id, 5, 6, 4]])
    for length in range(1, text.shape[1] + 1):
        ids = text[:, :length]
        with torch.no_grad():
            full = model(input_ids=torch.cat((ids, torch.full((2, 1), c.mask_token_id)), 1),
                         visual_features=visual, text_lengths=torch.full((2,), length + 1)).logits[:, -1]
        with torch.no_grad():
            cache = model._start_cache(visual, beams=1)
            for k in range(1, length):  # feed the words one at a time, as decoding does
                model._step_logits(ids[:, :k], cache)
            stepped = model._step_logits(ids, cache)
        assert torch.allclose(stepped, full, rtol=1e-5, atol=1e-5)
