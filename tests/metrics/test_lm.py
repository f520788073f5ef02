"""vsuite.metrics.lm: the windowed-NLL protocol against hand-computed windows and log-probabilities."""

import math

import pytest
import torch

from vsuite.metrics.lm import nll_sum, perplexity, window_spans, windowed_nll


def test_window_spans_with_a_remainder():
    # 11 tokens, N=4: windows predict tokens 1-4, 5-8, 9-10 (the remainder: 2 predictions)
    assert window_spans(11, 4) == [(0, 5), (4, 9), (8, 11)]
    assert window_spans(9, 4) == [(0, 5), (4, 9)]  # (T-1) divisible by N: no remainder window
    assert window_spans(2, 8) == [(0, 2)]
    assert window_spans(1, 4) == [] and window_spans(0, 4) == []
    for t, n in [(11, 4), (100, 7), (5, 1)]:
        spans = window_spans(t, n)
        assert len(spans) == math.ceil((t - 1) / n)
        predicted = [i for a, b in spans for i in range(a + 1, b)]
        assert predicted == list(range(1, t))  # every token after the first, once


def test_nll_sum_and_perplexity_by_hand():
    # two positions over 2 classes: logits [0, 0] -> p = 1/2; logits [ln 3, 0] -> p(class 0) = 3/4
    logits = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0]]])
    assert nll_sum(logits, torch.tensor([[1, 0]])) == pytest.approx(math.log(2) + math.log(4 / 3))
    assert perplexity(2 * math.log(2), 2) == pytest.approx(2.0)
    assert perplexity(1e6, 1) == math.exp(700.0)  # capped, not an overflow
    with pytest.raises(ValueError):
        perplexity(0.0, 0)


def bigram_logits(table):
    """A 'model' whose logits at each position depend only on the current token: logits = log table[token]."""
    return lambda ids: torch.log(table[ids])


def test_windowed_nll_by_hand_no_context_across_windows():
    table = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])  # p(next | current)
    tokens = torch.tensor([0, 1, 1, 2, 0, 2, 2])  # 7 tokens, N=4: windows [0..4] and [4..6] (remainder 2)
    calls = []
    total, count, windows = windowed_nll(bigram_logits(table), tokens, 4, batch_size=8,
                                         on_batch=lambda: calls.append(1))
    pairs = [(0, 1), (1, 1), (1, 2), (2, 0), (0, 2), (2, 2)]  # (current, next) of every predicted token
    expected = -sum(math.log(float(table[a, b])) for a, b in pairs)
    assert (count, windows, len(calls)) == (6, 2, 2)
    assert total == pytest.approx(expected, rel=1e-6)


def test_windowed_nll_sees_only_its_own_window():
    # a model that reads the whole input row: position t's logits favour the FIRST token of its window,
    # so the score changes exactly when windows start elsewhere
    def first_token_model(ids):
        logits = torch.full((*ids.shape, 4), -5.0)
        logits.scatter_(-1, ids[:, :1, None].expand(-1, ids.shape[1], 1), 5.0)
        return logits

    tokens = torch.tensor([3, 3, 3, 1, 1, 1, 1])
    hit, miss = math.log(math.exp(5) + 3 * math.exp(-5)) - 5, math.log(math.exp(5) + 3 * math.exp(-5)) + 5
    # N=3: window 1 predicts [3, 3, 1] after first token 3 (one miss), window 2 [1, 1, 1] after first token 1
    total, count, _ = windowed_nll(first_token_model, tokens, 3, batch_size=1)
    assert count == 6 and total == pytest.approx(5 * hit + 1 * miss, rel=1e-5)
    # N=6: one window predicts [3, 3, 1, 1, 1, 1] after first token 3 (four misses)
    total, count, _ = windowed_nll(first_token_model, tokens, 6, batch_size=1)
    assert count == 6 and total == pytest.approx(2 * hit + 4 * miss, rel=1e-5)
