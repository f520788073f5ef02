"""COCO caption metrics (pycocoevalcap, Java) against values computed by hand from their definitions."""

from __future__ import annotations

import math
import shutil

import pytest

pytest.importorskip("pycocoevalcap")
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="the COCO PTB tokenizer and METEOR need Java")

from vsuite.errors import ModelNotFoundError  # noqa: E402
from vsuite.metrics import caption_coco as CC  # noqa: E402

# After the PTB tokenizer (lower case, punctuation dropped):
#   item a: candidate "a man plays the guitar" (5), reference "a man plays the red guitar loudly" (7)
#   item b: candidate "a dog barks" (3), reference "a dog barks" (3)
PREDS = {"a": "A man plays the guitar.", "b": "a dog barks."}
REFS = {"a": ["A man plays the red guitar, loudly."], "b": ["A dog barks!"]}


def test_ptb_tokenizer_lowercases_and_drops_punctuation():
    out = CC.ptb_tokenize({"x": ["A man, in a T-shirt; plays.\nThen leaves!"], "y": ["", "Hello... world?"]})
    assert out == {"x": ["a man in a t-shirt plays then leaves"], "y": ["", "hello world"]}


def test_bleu_per_item_and_corpus_equal_hand_computed():
    corpus, items = CC.caption_scores(PREDS, REFS, ["bleu"])
    # item a: clipped n-gram matches 5/5, 3/4 ("a man", "man plays", "plays the"), 2/3, 1/2 ("a man plays the");
    # brevity penalty exp(1 - 7/5)
    bp = math.exp(1 - 7 / 5)
    p = [5 / 5, 3 / 4, 2 / 3, 1 / 2]
    for n in range(4):
        assert items["a"][f"Bleu_{n + 1}"] == pytest.approx(math.prod(p[:n + 1]) ** (1 / (n + 1)) * bp, rel=1e-6)
    # corpus BLEU sums the counts: 8/8, 5/6, 3/4, 1/2 (item b has no 4-gram), lengths 8 vs 10
    bp = math.exp(1 - 10 / 8)
    p = [8 / 8, 5 / 6, 3 / 4, 1 / 2]
    for n in range(4):
        assert corpus[f"Bleu_{n + 1}"] == pytest.approx(math.prod(p[:n + 1]) ** (1 / (n + 1)) * bp, rel=1e-6)
    # not the mean of the per-item values
    assert corpus["Bleu_4"] != pytest.approx((items["a"]["Bleu_4"] + items["b"]["Bleu_4"]) / 2, rel=1e-3)


def test_rouge_l_equals_hand_computed():
    corpus, items = CC.caption_scores(PREDS, REFS, ["rouge"])
    # item a: LCS 5, precision 5/5, recall 5/7, F with beta 1.2; item b: identical -> 1
    prec, rec, beta2 = 1.0, 5 / 7, 1.2 ** 2
    f_a = (1 + beta2) * prec * rec / (rec + beta2 * prec)
    assert items["a"]["ROUGE_L"] == pytest.approx(f_a)
    assert items["b"]["ROUGE_L"] == pytest.approx(1.0)
    assert corpus["ROUGE_L"] == pytest.approx((f_a + 1) / 2)


def test_cider_known_cases():
    # one image: every n-gram has document frequency 1 = the number of images, so idf = log(1) - log(1) = 0
    corpus, _ = CC.caption_scores({"a": "a man plays the guitar"}, {"a": ["a man plays the guitar"]}, ["cider"])
    assert corpus["CIDEr"] == 0.0
    # two images, candidates equal to their references, no n-gram shared between the images: cosine 1 for
    # n = 1..4, no length penalty, x10 -> exactly 10 each
    preds = {"a": "the cat sat down", "b": "dogs run very fast"}
    refs = {k: [v] for k, v in preds.items()}
    corpus, items = CC.caption_scores(preds, refs, ["cider"])
    assert items["a"]["CIDEr"] == pytest.approx(10.0) and corpus["CIDEr"] == pytest.approx(10.0)
    # a different candidate scores lower than the identical one
    worse, _ = CC.caption_scores({"a": "the cat sat down", "b": "dogs walk very slowly"}, refs, ["cider"])
    assert worse["CIDEr"] < corpus["CIDEr"]


def test_meteor_ranks_identical_above_different():
    # one METEOR run (the jar loads its paraphrase table, which takes seconds): two identical, two unrelated
    refs = {"a": ["a man plays the red guitar loudly"], "b": ["a dog barks at the cat"],
            "c": ["a man plays the red guitar loudly"], "d": ["a dog barks at the cat"]}
    preds = {"a": "a man plays the red guitar loudly", "b": "a dog barks at the cat", "c": "a woman sings",
             "d": "the car is parked"}
    corpus, items = CC.caption_scores(preds, refs, ["meteor"])
    assert min(items["a"]["METEOR"], items["b"]["METEOR"]) > 0.9
    assert max(items["c"]["METEOR"], items["d"]["METEOR"]) < 0.3
    assert min(v["METEOR"] for v in items.values()) < corpus["METEOR"] < max(v["METEOR"] for v in items.values())


def test_empty_and_punctuation_only_predictions_score_zero():
    corpus, items = CC.caption_scores({"a": "", "b": "...", "c": "a dog barks"},
                                      {"a": ["a man"], "b": ["x y"], "c": ["a dog barks"]}, ["bleu", "rouge", "cider"])
    assert all(v == 0.0 for k in ("a", "b") for v in items[k].values())
    assert items["c"]["ROUGE_L"] == pytest.approx(1.0)
    assert corpus["ROUGE_L"] == pytest.approx(1 / 3)


def test_missing_java_is_one_line_naming_the_package(monkeypatch):
    monkeypatch.setattr(CC.shutil, "which", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="need Java .* apt-get install default-jre-headless"):
        CC.caption_scores(PREDS, REFS, ["bleu"])
