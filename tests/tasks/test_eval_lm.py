"""`vsuite eval lm`: perplexity by the stated protocol, checked by hand on a tiny model."""

import json
import math

import pytest
import torch
from helpers import assert_one_line_error, check_results_schema, check_samples_file, run_vsuite

from vsuite.data.tokenizers import ByteTokenizer
from vsuite.metrics.lm import EvalLMConfig
from vsuite.tasks import eval_lm

TEXT = "In the beginning God created the heaven and the earth.\nAnd the earth was without form, and void.\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=259, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    folder = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(cfg).save_pretrained(folder)
    ByteTokenizer().save(folder)
    return folder


def by_hand(model, ids: list[int], n: int) -> float:
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, n):
        window = torch.tensor(ids[start:start + n + 1])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=window[None, :-1]).logits[0].double(), dim=-1)
        for t in range(len(window) - 1):
            total -= float(logp[t, window[t + 1]])
            count += 1
    assert count == len(ids) - 1  # every token but the first predicted once
    return math.exp(total / count)


def test_perplexity_equals_exp_mean_nll_by_hand(model_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    cfg = EvalLMConfig(model=str(model_dir), data=str(data), seq=[8, 16, 40], batch_size=3, out=str(tmp_path / "out"))
    doc = eval_lm.run(cfg, as_json=True)
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(doc))
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == json.loads(json.dumps(doc))
    check_results_schema(doc)
    samples = check_samples_file(tmp_path / "out" / "samples.jsonl", 3)
    result = doc["details"]
    assert [s["id"] for s in samples] == ["seq=8", "seq=16", "seq=40"]
    assert doc["scores"]["ppl@16"] == result["results"][1]["ppl"] == samples[1]["score"]["ppl"]
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = list(TEXT.encode())
    assert result["tokens"] == len(ids) and result["tokenizer"] == "byte"
    assert [r["seq"] for r in result["results"]] == [8, 16, 40]
    for row in result["results"]:
        assert row["predicted_tokens"] == len(ids) - 1
        assert row["windows"] == math.ceil((len(ids) - 1) / row["seq"])
        assert row["ppl"] == pytest.approx(by_hand(model, ids, row["seq"]), rel=1e-5)
        assert row["ppl"] == pytest.approx(math.exp(row["nll"]))
    assert "non-overlapping windows of N tokens" in result["protocol"]


def test_cli_table_one_row_per_seq(model_dir, tmp_path):
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    res = run_vsuite("eval", "lm", "--model", str(model_dir), "--data", str(data), "--seq", "8,16", "--seq", "32",
                     "--out", str(tmp_path / "out"))
    assert res.code == 0, res.stderr
    assert res.stdout == ""  # the table is on stderr; stdout carries only --json
    rows = [line.split() for line in res.stderr.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["8", "16", "32"]
    assert "context protocol: non-overlapping windows" in " ".join(res.stderr.split())
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(doc["scores"]) == ["nll@16", "nll@32", "nll@8", "ppl@16", "ppl@32", "ppl@8"]
    assert "--seq 8,16,32" in doc["command"]
    missing = run_vsuite("eval", "lm", "--model", str(tmp_path / "nope"), "--data", str(data))
    assert_one_line_error(missing, 4)
    assert_one_line_error(run_vsuite("eval", "lm", "--model", str(model_dir), "--data", str(data), "--seq", "0"), 2)
