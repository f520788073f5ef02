"""`vsuite eval favdbench`: results files, hand-computed scores end to end, --model through describe_clips,
bad inputs as one-line errors with no partial output."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from helpers import assert_one_line_error, check_results_schema, check_samples_file, run_vsuite

from vsuite.errors import DataError, ModelNotFoundError, UsageError
from vsuite.tasks import eval_favdbench as task

JAVA = shutil.which("java") is not None
A, B = "-05wY_41ht1s_123000_133000", "abc_5000_10000"
REFS = {A: "A man plays the red guitar, loudly.", B: "A dog barks!"}
PREDS = [{"image_id": A, "caption": "A man plays the guitar."}, {"image_id": B, "caption": "a dog barks."}]


@pytest.fixture(scope="module")
def t5_folder(tmp_path_factory):
    """A 1-layer T5 encoder and a word-level tokenizer (built here; nothing is downloaded)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("t5")
    vocab = ["<pad>", "</s>", "<unk>", "man", "guitar", "dog", "cat", "bark", "red"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    torch.manual_seed(0)
    T5EncoderModel(T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, num_heads=2, d_ff=32, num_layers=1,
                            pad_token_id=0)).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    return str(folder)


def _data(tmp_path):
    root = tmp_path / "favd"
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "test.csv").write_text("ytid,start,end\n-05wY_41ht1s,123000,133000\nabc,5000,10000\n")
    (root / "annotations_en.json").write_text(json.dumps(REFS))
    return root


def _preds(tmp_path, rows=PREDS, name="pred.json"):
    path = tmp_path / name
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows))
    return path


def _opts(tmp_path, **kw):
    base = dict(data=str(_data(tmp_path)), predictions=str(_preds(tmp_path)), out=str(tmp_path / "out"),
                metrics="bleu,rouge,audio")
    base.update(kw)
    return task.FavdOptions(**base)


@pytest.mark.skipif(not JAVA, reason="the COCO metrics need Java")
def test_cli_writes_results_with_hand_computed_scores(tmp_path, t5_folder):
    root, pred = _data(tmp_path), _preds(tmp_path)
    out = tmp_path / "out"
    res = run_vsuite("eval", "favdbench", "--data", str(root), "--predictions", str(pred), "--out", str(out),
                     "--metrics", "bleu,rouge,cider,entity,audio", "--t5-model", t5_folder, "--device", "cpu", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    check_results_schema(doc)
    assert doc == json.loads((out / "results.json").read_text())
    assert doc["benchmark"] == "favdbench" and doc["n_samples"] == 2
    scores = doc["scores"]
    # corpus BLEU from summed counts (see tests/metrics/test_caption_coco.py): 8/8, 5/6, 3/4, 1/2, lengths 8 vs 10
    p = [1.0, 5 / 6, 3 / 4, 1 / 2]
    assert scores["Bleu_4"] == pytest.approx(math.prod(p) ** 0.25 * math.exp(1 - 10 / 8), rel=1e-6)
    assert scores["ROUGE_L"] == pytest.approx((2.44 * (5 / 7) / (5 / 7 + 1.44) + 1) / 2)
    assert "METEOR" not in scores and scores["AudioScore"] is None
    assert 0 < scores["EntityScore"] <= 1 and scores["EntityScore_skipped"] == 0
    assert "AudioScore skipped" in doc["details"]["audioscore"]["skipped"]
    assert "AudioScore skipped" in res.stderr
    samples = check_samples_file(out / "samples.jsonl", 2)
    assert [s["id"] for s in samples] == [A, B]
    assert samples[1]["target"] == REFS[B] and samples[1]["response"] == "a dog barks."
    assert samples[1]["score"]["ROUGE_L"] == pytest.approx(1.0)
    # spaCy tags "barks" after "a dog" as a noun or a verb: either way "dog" is shared
    assert "dog" in samples[1]["entity"]["pred_nouns"] and samples[1]["entity"]["ref_nouns"]
    assert doc["command"].startswith("vsuite eval favdbench --data ")
    assert "--t5-model" in doc["command"] and doc["model"]["source"] == "predictions"


@pytest.mark.skipif(not JAVA, reason="the COCO metrics need Java")
def test_chinese_split_is_scored_from_annotations_cn(tmp_path):
    root = _data(tmp_path)
    zh = {A: "一个男人在弹吉他。吉他声音响亮。", B: "一只狗在叫。"}
    (root / "annotations_cn.json").write_text(json.dumps(zh, ensure_ascii=False))
    pred = _preds(tmp_path, json.dumps({A: zh[A], B: "一只猫。"}, ensure_ascii=False), name="zh.json")
    doc = task.run(_opts(tmp_path, predictions=str(pred), lang="zh", metrics="rouge"))
    samples = check_samples_file(tmp_path / "out" / "samples.jsonl", 2)
    assert samples[0]["target"] == zh[A] and samples[0]["score"]["ROUGE_L"] == pytest.approx(1.0)
    # PTB keeps a Chinese sentence as one token ("。" is not in the COCO punctuation list): B shares only "。"
    assert samples[1]["score"]["ROUGE_L"] == pytest.approx(0.5)
    assert doc["config"]["lang"] == "zh"


def test_audio_only_needs_no_java_and_no_models(tmp_path):
    doc = task.run(_opts(tmp_path, metrics="audio"))
    check_results_schema(doc)
    assert doc["scores"] == {"AudioScore": None}
    assert doc["details"]["audioscore"]["skipped"].startswith("AudioScore skipped")


@pytest.mark.skipif(not JAVA, reason="the COCO metrics need Java")
def test_model_route_describes_every_clip_then_scores(tmp_path, monkeypatch):
    seen = {}

    def describe_clips(model, clips, *, lang, device):  # no `beams` parameter: it must not be passed
        seen.update(model=model, ids=[c.id for c in clips], lang=lang, device=device)
        return ({c.id: REFS[c.id] for c in clips}, {"name": "fake-avlformer", "frames": 32, "decoder": "pyav"})

    monkeypatch.setattr("vsuite.models.describer.describe_clips", describe_clips)
    root = _data(tmp_path)
    for cid in (A, B):
        (root / "videos" / "test").mkdir(parents=True, exist_ok=True)
        (root / "videos" / "test" / f"{cid}.mp4").write_bytes(b"")
    opts = task.FavdOptions(data=str(root), model="runs/fake", out=str(tmp_path / "out"), metrics="bleu,rouge",
                            beams=3, device="cpu")
    doc = task.run(opts)
    check_results_schema(doc)
    assert seen == {"model": "runs/fake", "ids": [A, B], "lang": "en", "device": "cpu"}
    written = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert written == [{"image_id": A, "caption": REFS[A]}, {"image_id": B, "caption": REFS[B]}]
    assert doc["scores"]["ROUGE_L"] == pytest.approx(1.0) and doc["scores"]["Bleu_1"] == pytest.approx(1.0)
    assert doc["model"]["name"] == "fake-avlformer" and doc["protocol"]["frames"] == 32
    assert "--beams 3" in doc["command"]


def test_model_route_without_videos_fails_before_describing(tmp_path, monkeypatch):
    monkeypatch.setattr("vsuite.models.describer.describe_clips", lambda *a, **k: pytest.fail("must not describe"))
    opts = task.FavdOptions(data=str(_data(tmp_path)), model="m", out=str(tmp_path / "out"), metrics="audio")
    with pytest.raises(DataError, match=f"no video for clip {A}"):
        task.run(opts)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rows, message", [
    ([PREDS[0]], f"pred.json: 1 clip\\(s\\) of the split have no prediction, first {B}"),
    (PREDS + [{"image_id": "zzz_0_5000", "caption": "x"}], "1 prediction\\(s\\) are not clips of the split, first zzz"),
    ([PREDS[0], {"image_id": B, "caption": ["a", "b"]}], f"pred.json: item 1 \\({B}\\): the caption must be text"),
    ('[{"image_id": "x",\n "caption": }]', "pred.json:2: broken JSON"),
])
def test_bad_prediction_files_are_data_errors_without_output(tmp_path, rows, message):
    opts = _opts(tmp_path)
    _preds(tmp_path, rows)
    with pytest.raises(DataError, match=message):
        task.run(opts)
    assert not (tmp_path / "out").exists()


def test_missing_java_or_t5_fail_before_any_output(tmp_path, monkeypatch):
    from vsuite.metrics import caption_coco

    monkeypatch.setattr(caption_coco.shutil, "which", lambda name: None)
    with pytest.raises(ModelNotFoundError, match="need Java"):
        task.run(_opts(tmp_path))
    monkeypatch.undo()
    with pytest.raises(ModelNotFoundError, match="no model folder"):
        task.run(_opts(tmp_path, metrics="entity", t5_model=str(tmp_path / "no-t5"), device="cpu"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kw, message", [
    (dict(model="m"), "not both"),
    (dict(predictions=None), "one of them is needed"),
    (dict(metrics="bleu,spice"), "--metrics takes all or a comma list"),
    (dict(split="dev"), "--split must be one of"),
    (dict(lang="fr"), "--lang must be one of"),
    (dict(limit=3), "--limit applies with --model only"),
    (dict(metrics="entity", tagger="stanza"), "--tagger must be nltk, spacy"),
])
def test_bad_flags_are_usage_errors(tmp_path, kw, message):
    with pytest.raises(UsageError, match=message):
        task.check_options(_opts(tmp_path, **kw))


def test_cli_one_line_errors(tmp_path):
    root = _data(tmp_path)
    bad = _preds(tmp_path, '{"' + A + '": "x",\n "' + B + '": 5}')
    res = run_vsuite("eval", "favdbench", "--data", str(root), "--predictions", str(bad), "--metrics", "audio")
    assert_one_line_error(res, 5)
    assert f"pred.json: id '{B}': the caption must be text" in res.stderr
    res = run_vsuite("eval", "favdbench", "--data", str(root), "--predictions", str(bad), "--model", "m")
    assert_one_line_error(res, 2)
