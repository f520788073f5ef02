"""Language-model scoring: the windowed NLL / perplexity protocol of `vsuite eval lm`, shared with the
held-out check of `vsuite pretrain`.

Protocol: the token stream t_0 .. t_{T-1} is cut into non-overlapping windows of N tokens; window i
predicts tokens i*N+1 .. i*N+N from the tokens before them inside the same window only (no context
carried across windows), so every token but the first is predicted exactly once, with 0 .. N-1 tokens
of context, and the last window may be shorter (it holds the remainder). Perplexity = exp(total NLL /
predicted tokens), NLL in nats.

Also the [eval] tables that configure it: EvalLMConfig (`vsuite eval lm`) and PretrainEvalConfig
(held-out loss during pretraining).
"""

from __future__ import annotations

import math
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PROTOCOL = ("non-overlapping windows of N tokens; each token after the first is predicted once, from the earlier "
            "tokens of its own window only (0..N-1 tokens of context, none carried across windows); the last "
            "window may be shorter; documents joined by eos, no bos; ppl = exp(total NLL / predicted tokens)")


class EvalLMConfig(BaseModel):
    """The [eval] table of an eval-lm recipe (flags of `vsuite eval lm` override it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = ""  # model folder, run folder, or Hub id
    data: str = ""  # text file, folder, glob or JSONL (as data.path of pretrain)
    out: str = ""  # folder for results.json + samples.jsonl; empty: runs/eval/lm-<model>-<data>
    format: Literal["auto", "text", "jsonl", "datasets"] = "auto"
    text_field: str = "text"
    tokenizer: str = ""  # empty: the model folder's tokenizer
    seq: list[int] = Field(default_factory=lambda: [512], description="evaluation lengths N")
    batch_size: int = Field(8, ge=1, description="windows per forward pass")
    max_tokens: int = Field(0, ge=0, description="evaluate only the first N tokens of the data; 0 = all")
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto: bf16 on CUDA, fp32 on the CPU

    @field_validator("seq")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(n < 2 for n in v):  # a window of N tokens scores N-1 predictions
            raise ValueError(f"give one or more lengths of at least 2, got {v}")
        return v


class PretrainEvalConfig(BaseModel):
    """The [eval] table of a pretrain recipe: held-out loss during training."""

    model_config = ConfigDict(extra="forbid", strict=True)

    path: str = ""  # held-out text (same formats as data.path); empty: no evaluation
    max_batches: int = Field(20, ge=1, description="at most this many batches of data.batch_size windows per rank")


def window_spans(num_tokens: int, seq_len: int) -> list[tuple[int, int]]:
    """[start, stop) of each window's tokens: inputs tokens[start:stop-1], targets tokens[start+1:stop].

    T tokens give ceil((T-1)/N) windows; all hold N predictions except the last, which holds the remainder.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    return [(start, min(start + seq_len + 1, num_tokens)) for start in range(0, max(0, num_tokens - 1), seq_len)]


def nll_sum(logits, targets) -> float:
    """Sum over positions of -log softmax(logits)[target], in nats. logits [..., V], targets [...].

    Cross-entropy in float32 (not float64: logits of a long batch with a large vocabulary are big)."""
    import torch.nn.functional as F

    flat = logits.reshape(-1, logits.shape[-1]).float()
    return float(F.cross_entropy(flat, targets.reshape(-1).to(logits.device).long(), reduction="sum"))


def perplexity(total_nll: float, count: int) -> float:
    """exp(mean NLL); capped at exp(700) so a diverged model gives a huge finite number, not an overflow."""
    if count < 1:
        raise ValueError("perplexity needs at least one predicted token")
    return math.exp(min(total_nll / count, 700.0))


def windowed_nll(logits_fn: Callable, tokens, seq_len: int, batch_size: int = 8,
                 on_batch: Callable[[], None] | None = None) -> tuple[float, int, int]:
    """(total NLL in nats, predicted tokens, windows) of a token stream [T] under the protocol above.

    `logits_fn(input_ids [B, L]) -> logits [B, L, V]` is the model; windows of equal length are batched
    together (the full ones, then the shorter last one), `on_batch` is called after each forward pass.
    """
    import torch

    spans = window_spans(len(tokens), seq_len)
    total, count = 0.0, 0
    with torch.no_grad():
        for length in sorted({stop - start for start, stop in spans}, reverse=True):
            same = [s for s in spans if s[1] - s[0] == length]
            for i in range(0, len(same), batch_size):
                rows = torch.stack([tokens[start:stop] for start, stop in same[i:i + batch_size]])  # [B, L+1]
                total += nll_sum(logits_fn(rows[:, :-1]), rows[:, 1:])
                count += rows[:, 1:].numel()
                if on_batch is not None:
                    on_batch()
    return total, count, len(spans)
