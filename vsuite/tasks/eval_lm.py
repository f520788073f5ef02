"""`vsuite eval lm`: perplexity of a causal LM on a text file, at one or more evaluation lengths.

Context protocol (printed with every result): the file's tokens (documents joined by eos, no bos) are
cut into non-overlapping windows of N tokens; window i predicts tokens i*N+1 ... i*N+N from the tokens
before them inside the same window only (no context carried across windows), so every token but the
first is predicted exactly once with 0 to N-1 tokens of context, and the last window may be shorter.
Perplexity = exp(total NLL / predicted tokens). Doing this for several N gives the extrapolation table
(perplexity against evaluation length; lengths beyond the training length test extrapolation).

The model loads with transformers' AutoModelForCausalLM after `import vsuite.models` (never
trust_remote_code), from a folder, a run folder (its newest complete checkpoint) or a Hub id; the
tokenizer comes from the same folder (vsuite_tokenizer.json means the built-in byte tokenizer).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..console import Progress, log, out, warn
from ..errors import DeviceError, ModelNotFoundError, RecipeError

PROTOCOL = ("non-overlapping windows of N tokens; each token after the first is predicted once, from the earlier "
            "tokens of its own window only (0..N-1 tokens of context, none carried across windows); the last "
            "window may be shorter; documents joined by eos, no bos; ppl = exp(total NLL / predicted tokens)")


class EvalLMConfig(BaseModel):
    """The [eval] table of an eval-lm recipe (flags of `vsuite eval lm` override it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = ""  # model folder, run folder, or Hub id
    data: str = ""  # text file, folder, glob or JSONL (as data.path of pretrain)
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
        if not v or any(n < 1 for n in v):
            raise ValueError(f"give one or more positive lengths, got {v}")
        return v


def resolve_model_folder(ref: str) -> Path:
    """A model folder, the newest complete checkpoint of a run folder, or a Hub id's cached snapshot."""
    from ..hub import resolve_model_dir
    from ..train.checkpoint import checkpoints_dir, newest_complete

    path = Path(ref).expanduser()
    if path.is_dir() and not (path / "config.json").exists() and checkpoints_dir(path).is_dir():
        found = newest_complete(path)
        if found is None:
            raise ModelNotFoundError(f"{path} is a run folder without a complete checkpoint")
        return found
    return resolve_model_dir(ref)


def load_model(folder: Path, device, dtype):
    from transformers import AutoModelForCausalLM

    import vsuite.models  # noqa: F401  (registers vsuite's model types)

    from ..train.checkpoint import quiet

    try:
        with quiet():
            model, info = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, output_loading_info=True)
    except (OSError, ValueError, KeyError) as err:
        raise ModelNotFoundError(f"cannot load a causal LM from {folder}: {str(err).splitlines()[0][:200]}") from None
    if info.get("missing_keys"):
        warn(f"{folder} lacks {len(info['missing_keys'])} weight(s) of {type(model).__name__} (e.g. "
             f"{sorted(info['missing_keys'])[0]}): they are randomly initialised and the perplexity means little")
    return model.to(device).eval()


def _device_dtype(cfg: EvalLMConfig):
    import torch

    from ..train.distributed import resolve_device

    device = resolve_device(cfg.device, 0)
    if cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and device.type == "cuda"):
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError(f"{device} does not support bfloat16; pass --dtype float32")
        return device, torch.bfloat16
    return device, torch.float32


def window_nll(model, tokens, seq_len: int, batch_size: int, device, progress=None) -> tuple[float, int, int]:
    """(total NLL in nats, predicted tokens, windows) under the context protocol above."""
    import torch

    from ..data.text import eval_windows
    from ..train.losses import token_nll

    windows = eval_windows(tokens, seq_len)
    total, count = 0.0, 0
    with torch.no_grad():
        for length in sorted({len(w[0]) for w in windows}, reverse=True):  # batch windows of equal length
            same = [w for w in windows if len(w[0]) == length]
            for i in range(0, len(same), batch_size):
                chunk = same[i:i + batch_size]
                inputs = torch.stack([w[0] for w in chunk]).to(device)
                labels = torch.stack([w[1] for w in chunk]).to(device)
                logits = model(input_ids=inputs, use_cache=False).logits
                total += float(token_nll(logits, labels, reduction="sum"))
                count += labels.numel()
                if progress is not None:
                    progress.advance(f"N={seq_len}")
    return total, count, len(windows)


def run(cfg: EvalLMConfig, *, as_json: bool = False) -> dict:
    from ..data.text import read_documents, resolve_path, tokenize_documents
    from ..data.tokenizers import load_tokenizer, load_tokenizer_from
    from .pretrain import project_root

    if not cfg.model:
        raise RecipeError("no model: pass --model PATH|HUB_ID (or eval.model in the recipe)")
    if not cfg.data:
        raise RecipeError("no data: pass --data FILE (or eval.data in the recipe)")
    folder = resolve_model_folder(cfg.model)
    tokenizer = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else load_tokenizer_from(folder)
    device, dtype = _device_dtype(cfg)
    model = load_model(folder, device, dtype)
    path = resolve_path(cfg.data, [project_root()])
    docs = read_documents(path, format=cfg.format, text_field=cfg.text_field)
    tokens = tokenize_documents(docs, tokenizer)[:-1]  # documents joined by eos; no eos after the last
    if cfg.max_tokens:
        tokens = tokens[:cfg.max_tokens]
    if len(tokens) < 2:
        from ..errors import DataError

        raise DataError(f"{path} has {len(tokens)} token(s); perplexity needs at least 2")
    log(f"model {folder} ({type(model).__name__}, {dtype}, {device}) | {len(tokens):,} tokens of {path} "
        f"with tokenizer {tokenizer.name}")
    n_batches = sum(math.ceil((len(tokens) - 1) // n / cfg.batch_size) + (1 if (len(tokens) - 1) % n else 0)
                    for n in cfg.seq)
    rows = []
    with Progress("eval", n_batches, every=max(1, n_batches // 10)) as progress:
        for n in cfg.seq:
            start = time.monotonic()
            total, count, windows = window_nll(model, tokens, n, cfg.batch_size, device, progress)
            nll = total / count
            rows.append({"seq": n, "windows": windows, "predicted_tokens": count, "nll": nll,
                         "ppl": math.exp(min(nll, 700.0)), "seconds": round(time.monotonic() - start, 3)})
    result = {"model": str(folder), "model_type": getattr(model.config, "model_type", None), "data": str(path),
              "tokenizer": tokenizer.name, "tokens": len(tokens), "device": str(device),
              "dtype": str(dtype).replace("torch.", ""), "protocol": PROTOCOL, "results": rows}
    _print(result, as_json)
    return result


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        out(result)
        return
    from rich.table import Table

    table = Table("eval length N", "windows", "predicted tokens", "NLL (nats/token)", "perplexity", box=None,
                  title=f"perplexity of {result['model']} on {result['data']} ({result['tokens']:,} tokens)",
                  caption=f"context protocol: {result['protocol']}", title_justify="left", caption_justify="left")
    for r in result["results"]:
        table.add_row(str(r["seq"]), str(r["windows"]), f"{r['predicted_tokens']:,}", f"{r['nll']:.4f}",
                      f"{r['ppl']:.3f}")
    out(table)
