"""Vript-RR open-ended judging: the official judge prompt byte for byte, reading the rating, the denominator
(unparseable = wrong, never dropped), and a real transformers judge (a tiny GPT-2 built from a config)."""

import hashlib
import json

import pytest

from vsuite.metrics.vript_judge import (JUDGE_SYSTEM, OpenItem, judge_messages, judge_user_text, parse_rating,
                                        score_rr_open)

# sha256 of the official texts (vript-hard/verification_pipeline/verify_vript-rr_open_answer.py at 3dd89c7):
# the system prompt, and the user f-string rendered with hint="HINT", question="QUESTION?", response="RESPONSE.",
# answer="ANSWER." (computed from the official file by evaluating its own f-string)
OFFICIAL_SYSTEM_SHA = "102dbc623d8edf5a909cca864dec21304776c942d11d331e481d46534bde7887"
OFFICIAL_USER_SHA = "6298d4e085fe2ad0d6105c98e067ec1509941a71910f6a5f8be467b750a168b7"


def test_judge_prompt_is_the_official_text():
    assert hashlib.sha256(JUDGE_SYSTEM.encode()).hexdigest() == OFFICIAL_SYSTEM_SHA
    assert len(JUDGE_SYSTEM) == 389 and JUDGE_SYSTEM.endswith('{"rating": True} or {"rating": False}.')
    user = judge_user_text("HINT", "QUESTION?", "RESPONSE.", "ANSWER.")
    assert hashlib.sha256(user.encode()).hexdigest() == OFFICIAL_USER_SHA
    # readable form of the same bytes: the hint first, labelled "Question:", then a line of 16 spaces
    assert user == ("Question: HINT\nQUESTION?\n                \nAI assistant response:\nRESPONSE.\n\n"
                    "Ground truth answer:\nANSWER.")
    assert judge_messages("h", "q", "r", "a") == [{"role": "system", "content": JUDGE_SYSTEM},
                                                  {"role": "user", "content": judge_user_text("h", "q", "r", "a")}]


@pytest.mark.parametrize("reply, expected", [
    ('The response names a cup, the answer is a trophy.\n{"rating": False}', False),
    ('Both say trophy. {"rating": True}', True),
    ('{"rating": true}', True),  # JSON spelling (the official eval() fails on it)
    ("{'rating': 'False'}", False),
    ("**Rating:** Correct", True),
    ("rating = incorrect", False),
    ('I must answer {"rating": True} or {"rating": False}. The response is wrong. {"rating": False}', False),
    ('I must answer {"rating": True} or {"rating": False}.', None),  # only the instructions' echo
    ('{"rating": True}\nOn reflection the colour differs: {"rating": False}', False),  # the last verdict
    ("The response is correct.", None),
    ("rating: maybe", None),
    ("", None),
    (None, None),
])
def test_parse_rating(reply, expected):
    assert parse_rating(reply) is expected


class FakeJudge:
    """Replies from a table keyed by the response under judgement; records every conversation and batch."""

    name = "fake-judge"

    def __init__(self, replies):
        self.replies, self.seen, self.batches = replies, [], []

    def rate(self, conversations):
        self.batches.append(len(conversations))
        self.seen.extend(conversations)
        return [self.replies[c[1]["content"].split("AI assistant response:\n")[1].split("\n\n")[0]]
                for c in conversations]


def _items():
    return [OpenItem("c1", "What is it?", "A pig on skis.", "The answer is a trophy.", "A trophy."),
            OpenItem("c2", "q2", "h2", "a2", "A cup."),
            OpenItem("c3", "q3", "h3", "a3", "Gibberish."),
            OpenItem("c4", "q4", "h4", "a4", ""),  # blank: never sent to the judge
            OpenItem("c5", "q5", "h5", "a5", None, missing=True)]


REPLIES = {"A trophy.": 'Same object. {"rating": True}', "A cup.": '{"rating": False}',
           "Gibberish.": "I cannot tell."}


def test_denominator_corrected_and_compat():
    judge = FakeJudge(REPLIES)
    scores, samples = score_rr_open(_items(), judge, batch_size=2)
    # corrected: 1 right of 5 (unparseable, blank and missing all wrong)
    assert (scores["accuracy"], scores["correct"], scores["n"], scores["items"]) == (20.0, 1, 5, 5)
    assert scores["status"] == {"ok": 2, "unparseable": 1, "blank": 1, "missing": 1}
    assert [s["status"] for s in samples] == ["ok", "ok", "unparseable", "blank", "missing"]
    assert [s["score"]["correct"] for s in samples] == [1, 0, 0, 0, 0]
    assert [s["rating"] for s in samples] == [True, False, None, None, None]
    assert samples[2]["judge_output"] == "I cannot tell." and samples[2]["counted"] is True
    assert [s["target"] for s in samples][:2] == ["The answer is a trophy.", "a2"]
    assert judge.batches == [2, 1]  # only the 3 answers, in batches of 2
    assert judge.seen[0] == judge_messages("A pig on skis.", "What is it?", "A trophy.", "The answer is a trophy.")

    scores, samples = score_rr_open(_items(), FakeJudge(REPLIES), official_compat=True)
    # official: blank and missing rows skipped; the unparseable one stays in the denominator
    assert (scores["accuracy"], scores["n"]) == (pytest.approx(100 / 3), 3)
    assert [s["counted"] for s in samples] == [True, True, True, False, False]


def test_judge_reply_count_checked():
    class Short(FakeJudge):
        def rate(self, conversations):
            return []

    with pytest.raises(RuntimeError, match="0 replies for 3"):
        score_rr_open(_items(), Short(REPLIES))


# ----------------------------------------------------------------------------- a real transformers judge
from tiny_judge import NO_SYSTEM_TEMPLATE, build_judge  # noqa: E402


def test_transformers_judge_renders_the_chat_and_reads_its_verdict(tmp_path):
    from vsuite.metrics.vript_judge import load_judge

    judge = load_judge(build_judge(tmp_path / "judge-true"), name="tiny", device="cpu", dtype=None,
                       max_new_tokens=3)
    msgs = judge_messages("h", "q", "r", "a")
    assert judge.prompt(msgs) == f"<|system|>{JUDGE_SYSTEM}<|end|>\n<|user|>{msgs[1]['content']}<|end|>\n<|assistant|>"
    items = _items()
    scores, samples = score_rr_open(items, judge, batch_size=2)  # left-padded batches of different lengths
    assert [s["judge_output"] for s in samples[:3]] == ['{"rating": True}' * 3] * 3
    assert (scores["accuracy"], scores["n"]) == (60.0, 5) and judge.describe()["chat_template"] is True

    judge = load_judge(build_judge(tmp_path / "judge-false", "False"), name="tiny", device="cpu", dtype=None,
                       max_new_tokens=2)
    assert score_rr_open(items, judge)[0]["correct"] == 0


def test_templates_without_system_role_or_without_any(tmp_path):
    from vsuite.metrics.vript_judge import load_judge

    msgs = judge_messages("h", "q", "r", "a")
    judge = load_judge(build_judge(tmp_path / "nosys", template=NO_SYSTEM_TEMPLATE), name="t", device="cpu",
                       dtype=None)
    assert judge.prompt(msgs) == f"<|user|>{JUDGE_SYSTEM}\n\n{msgs[1]['content']}<|end|>\n<|assistant|>"
    judge = load_judge(build_judge(tmp_path / "plain", template=None), name="t", device="cpu", dtype=None)
    assert judge.plain_prompt and judge.prompt(msgs) == f"{JUDGE_SYSTEM}\n\n{msgs[1]['content']}\n\n"


def test_not_a_causal_lm_is_model_not_found(tmp_path):
    from vsuite.errors import ModelNotFoundError
    from vsuite.metrics.vript_judge import load_judge

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ModelNotFoundError, match="--judge x"):
        load_judge(tmp_path, name="x", device="cpu", dtype=None)
