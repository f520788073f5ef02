"""Vript-RR open-ended scoring: a judge language model rates each answer against the ground truth.

The official scorer (vript-hard/verification_pipeline/verify_vript-rr_open_answer.py) asks GPT-4-turbo
(gpt-4-turbo-2024-04-09; temperature 0.9, top_p 0.9, frequency penalty 0.2, presence penalty 0.1, at most 2048
tokens) with `JUDGE_SYSTEM` and `judge_user_text(...)`, both reproduced byte for byte (including the official
line of 16 spaces after the question), and reads `{"rating": True}` / `{"rating": False}` from the reply.
Here any local chat model loaded by transformers is the judge (`TransformersJudge`), greedy by default so a
run is reproducible; the numbers depend on the judge and are not the paper's GPT-4 ones.

Counting (accuracy = correct / counted, x100):
- a reply with no readable rating is "unparseable" and counted WRONG in both modes (the official script retries
  up to 10 times with sampling and then drops the item; a greedy judge would repeat itself). Reported in
  `status` and on stderr, never left out of the denominator;
- a blank answer is not sent to the judge (as the official script); corrected: counted wrong, official: skipped;
- an annotated item without a prediction row: corrected counts it wrong, official scores rows only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

from .vript_hard import accuracy_pct, is_blank

# the official system prompt, verbatim
JUDGE_SYSTEM = ("Please act as an impartial judge and check if the response provided by an AI assistant to the "
                "question match the ground truth answer. Begin your evaluation by providing a short explanation. Be "
                "as objective as possible. After providing your explanation, you must judge if the AI assistant's "
                "response is correct or incorrect following this json format: {\"rating\": True} or "
                "{\"rating\": False}.")
OFFICIAL_JUDGE = "gpt-4-turbo-2024-04-09"
OFFICIAL_DECODING = {"temperature": 0.9, "top_p": 0.9, "frequency_penalty": 0.2, "presence_penalty": 0.1,
                     "max_tokens": 2048}


def judge_user_text(hint: str, question: str, response: str, answer: str) -> str:
    """The official user message. Note the hint comes first, labelled "Question:", and the line of 16 spaces
    (the indentation of the official f-string's continuation line)."""
    return (f"Question: {hint}\n{question}\n" + " " * 16 + "\nAI assistant response:\n"
            f"{response}\n\nGround truth answer:\n{answer}")


def judge_messages(hint: str, question: str, response: str, answer: str) -> list[dict]:
    """[system, user] chat messages (plain string contents: every text chat template takes those)."""
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": judge_user_text(hint, question, response, answer)}]


# ----------------------------------------------------------------------------- reading the rating
# the instructions' own example, often echoed by small judges before their verdict: not a verdict
_ECHO = re.compile(r"\{\s*[\"']?rating[\"']?\s*:\s*[\"']?true[\"']?\s*\}\s*or\s*"
                   r"\{\s*[\"']?rating[\"']?\s*:\s*[\"']?false[\"']?\s*\}", re.IGNORECASE)
# "rating": True | 'rating': "false" | **Rating:** Correct | rating = yes  (key, then a verdict word)
_RATING = re.compile(r"\brating\b[\"'*\s]*[:=][\s\"'*]*(true|false|correct|incorrect|yes|no)\b", re.IGNORECASE)
_VALUE = {"true": True, "correct": True, "yes": True, "false": False, "incorrect": False, "no": False}


def parse_rating(text: str | None) -> bool | None:
    """The judge's verdict: the LAST `rating` key with a true/false value (JSON or Python spelling, quoted or
    not, markdown bold, correct/incorrect, yes/no), ignoring an echo of the instructions' example
    `{"rating": True} or {"rating": False}`. None when there is none (the official parse, the first `{...}` on a
    line through eval(), fails on JSON's lowercase `true` and on echoes; it is never eval'ed here)."""
    if not text:
        return None
    found = _RATING.findall(_ECHO.sub(" ", text))
    return _VALUE[found[-1].lower()] if found else None


# ----------------------------------------------------------------------------- scoring
class Judge(Protocol):
    name: str

    def rate(self, conversations: list[list[dict]]) -> list[str]:
        """The judge's reply to each conversation ([system, user] messages)."""


@dataclass
class OpenItem:
    """One Vript-RR item for the judge: the annotation's question, hint and open answer, and the prediction."""

    id: str
    question: str
    hint: str
    answer: str  # the annotation's open_answer
    prediction: str | None
    missing: bool = False  # no prediction row for this annotated item


def score_rr_open(items: Sequence[OpenItem], judge: Judge, official_compat: bool = False, batch_size: int = 8,
                  on_item=None) -> tuple[dict, list[dict]]:
    """Open-ended accuracy (x100) over the counted items, and one sample record per item (in order).
    `on_item()` is called after each item (progress)."""
    records: list[dict] = []
    to_judge: list[int] = []
    for it in items:
        rec = {"id": it.id, "target": it.answer, "response": it.prediction, "score": {"correct": 0},
               "counted": not official_compat, "status": "ok", "rating": None, "judge_output": None}
        if it.missing:
            rec["status"] = "missing"
        elif is_blank(it.prediction, official_compat):
            rec["status"] = "blank"
        else:
            rec["counted"] = True
            to_judge.append(len(records))
        records.append(rec)
        if on_item is not None and rec["status"] != "ok":
            on_item()
    for start in range(0, len(to_judge), batch_size):
        chunk = to_judge[start:start + batch_size]
        convs = [judge_messages(items[i].hint, items[i].question, str(items[i].prediction), items[i].answer)
                 for i in chunk]
        replies = judge.rate(convs)
        if len(replies) != len(chunk):
            raise RuntimeError(f"judge {judge.name} returned {len(replies)} replies for {len(chunk)} questions")
        for i, reply in zip(chunk, replies):
            rating = parse_rating(reply)
            rec = records[i]
            rec["judge_output"], rec["rating"] = reply, rating
            rec["status"] = "ok" if rating is not None else "unparseable"
            rec["score"] = {"correct": int(rating is True)}
            if on_item is not None:
                on_item()
    flags = [bool(r["score"]["correct"]) for r in records if r["counted"]]
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    scores = {"accuracy": accuracy_pct(flags), "correct": int(sum(flags)), "n": len(flags), "items": len(items),
              "status": statuses, "judge": judge.name}
    return scores, records


# ----------------------------------------------------------------------------- a transformers judge
class TransformersJudge:
    """A local causal LM (ideally an instruction-tuned chat model) as the judge.

    The conversation goes through the tokenizer's chat template with the generation prompt; a template that
    refuses a system turn gets the system text as the first paragraph of the user turn; a model without any
    chat template gets `system + "\\n\\n" + user + "\\n\\n"` (a base LM: `plain_prompt` is True, and its
    ratings are rarely usable). Greedy decoding, left-padded batches.
    """

    def __init__(self, model, tokenizer, *, name: str, max_new_tokens: int = 512):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_new_tokens = max_new_tokens
        self.plain_prompt = not getattr(tokenizer, "chat_template", None)
        self.system_merged = False

    def prompt(self, messages: list[dict]) -> str:
        if self.plain_prompt:
            return "\n\n".join(m["content"] for m in messages) + "\n\n"
        tok = self.tokenizer
        if not self.system_merged:
            try:
                return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            except Exception as err:  # jinja's TemplateError: e.g. "System role not supported"
                if "system" not in str(err).lower() or messages[0]["role"] != "system":
                    raise
                self.system_merged = True
        merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
        return tok.apply_chat_template(merged, add_generation_prompt=True, tokenize=False)

    def rate(self, conversations: list[list[dict]]) -> list[str]:
        import torch

        tok = self.tokenizer
        tok.padding_side = "left"
        texts = [self.prompt(c) for c in conversations]
        # the chat template already holds the BOS token where the model wants one
        inputs = tok(texts, return_tensors="pt", padding=True, add_special_tokens=self.plain_prompt)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        settings = {"do_sample": False, "max_new_tokens": self.max_new_tokens, "pad_token_id": tok.pad_token_id}
        with torch.inference_mode():
            out = self.model.generate(**inputs, **settings)
        new = out[:, inputs["input_ids"].shape[1]:]  # [B, T] generated tokens
        return [t.strip() for t in tok.batch_decode(new, skip_special_tokens=True)]

    def describe(self) -> dict:
        return {"judge": self.name, "backend": "transformers", "decoding": "greedy",
                "max_new_tokens": self.max_new_tokens, "chat_template": not self.plain_prompt,
                "device": str(self.model.device), "dtype": str(self.model.dtype).replace("torch.", "")}


def load_judge(folder, *, name: str, device, dtype, max_new_tokens: int = 512) -> TransformersJudge:
    """AutoTokenizer + AutoModelForCausalLM from a local model folder (the task resolves Hub ids to folders);
    never trust_remote_code. ModelNotFoundError (exit 4) when it does not load as a causal LM."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..errors import ModelNotFoundError
    from ..hub import quiet_loading

    quiet_loading(errors_only=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    except ImportError as err:
        raise ModelNotFoundError(f"--judge {name}: a package its tokenizer needs is missing ({err}); pip install it"
                                 ) from None
    except (OSError, ValueError, KeyError) as err:
        raise ModelNotFoundError(f"--judge {name} does not load as a causal language model: "
                                 f"{str(err).splitlines()[0][:200]}") from None
    if tokenizer.pad_token_id is None:  # batched generation pads; the end-of-sequence token is the usual stand-in
        if tokenizer.eos_token is None:
            raise ModelNotFoundError(f"--judge {name}: its tokenizer has neither a pad nor an end-of-sequence token")
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return TransformersJudge(model, tokenizer, name=name, max_new_tokens=max_new_tokens)
