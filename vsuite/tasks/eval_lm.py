"""`vsuite eval lm`: perplexity of a causal LM on a text file, at one or more evaluation lengths.

Context protocol (vsuite.metrics.lm, printed with every result): the file's tokens (documents joined by
eos, no bos) are cut into non-overlapping windows of N tokens; window i predicts tokens i*N+1 ... i*N+N
from the tokens before them inside the same window only (no context carried across windows), so every
token but the first is predicted exactly once with 0 to N-1 tokens of context, and the last window may be
shorter. Perplexity = exp(total NLL / predicted tokens). Doing this for several N gives the extrapolation table
(perplexity against evaluation length; lengths beyond the training length test extrapolation).

The model loads with transformers' AutoModelForCausalLM after `import vsuite.models` (never
trust_remote_code), from a folder, a run folder (its newest complete checkpoint) or a Hub id; the
tokenizer comes from the same folder (vsuite_tokenizer.json means the built-in byte tokenizer).
"""

from __future__ import annotations

import math
import shlex
import time
from pathlib import Path

from ..console import Progress, log, out, warn
from ..errors import ModelNotFoundError, RecipeError
from ..metrics.lm import PROTOCOL, EvalLMConfig


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
    """--device and --dtype through vsuite.devices (auto: bf16 on a GPU that has it, else fp16; fp32 on the CPU)."""
    from ..devices import resolve_device, resolve_dtype

    device = resolve_device(cfg.device)
    return device, resolve_dtype(cfg.dtype, device)


def window_nll(model, tokens, seq_len: int, batch_size: int, device, progress=None) -> tuple[float, int, int]:
    """(total NLL in nats, predicted tokens, windows) under vsuite.metrics.lm's protocol."""
    from ..metrics.lm import windowed_nll

    def logits(input_ids):
        return model(input_ids=input_ids.to(device), use_cache=False).logits

    advance = (lambda: progress.advance(f"N={seq_len}")) if progress is not None else None
    return windowed_nll(logits, tokens, seq_len, batch_size, on_batch=advance)


def run(cfg: EvalLMConfig, *, as_json: bool = False) -> dict:
    """Score, write OUT/results.json + samples.jsonl, print the table (stderr); returns results.json's document."""
    from ..data import data_roots
    from ..data.text import read_documents, resolve_path, tokenize_documents
    from ..data.tokenizers import load_tokenizer, load_tokenizer_from
    from ..metrics.lm import perplexity

    if not cfg.model:
        raise RecipeError("no model: pass --model PATH|HUB_ID (or eval.model in the recipe)")
    if not cfg.data:
        raise RecipeError("no data: pass --data FILE (or eval.data in the recipe)")
    from ..train.checkpoint import model_or_run_folder

    folder = model_or_run_folder(cfg.model)
    tokenizer = load_tokenizer(cfg.tokenizer) if cfg.tokenizer else load_tokenizer_from(folder)
    device, dtype = _device_dtype(cfg)
    model = load_model(folder, device, dtype)
    path = resolve_path(cfg.data, data_roots())
    docs = read_documents(path, format=cfg.format, text_field=cfg.text_field)
    tokens = tokenize_documents(docs, tokenizer)[:-1]  # documents joined by eos; no eos after the last
    began = time.monotonic()
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
            rows.append({"seq": n, "windows": windows, "predicted_tokens": count, "nll": total / count,
                         "ppl": perplexity(total, count), "seconds": round(time.monotonic() - start, 3)})
    result = {"model": str(folder), "model_type": getattr(model.config, "model_type", None), "data": str(path),
              "tokenizer": tokenizer.name, "tokens": len(tokens), "device": str(device),
              "dtype": str(dtype).replace("torch.", ""), "protocol": PROTOCOL, "results": rows}
    return write_report(cfg, result, folder, time.monotonic() - began, as_json=as_json)


def write_report(cfg: EvalLMConfig, result: dict, folder: Path, elapsed: float, *, as_json: bool) -> dict:
    """OUT/results.json + OUT/samples.jsonl (vsuite.metrics.results; one sample per evaluation length), the
    table on stderr, results.json on stdout with --json."""
    from ..metrics.results import default_out, write_results

    out_dir = Path(cfg.out) if cfg.out else default_out("lm", folder, cfg.data)
    rows = result["results"]
    scores = {}
    for r in rows:
        scores[f"ppl@{r['seq']}"] = r["ppl"]
        scores[f"nll@{r['seq']}"] = r["nll"]
    samples = [{"id": f"seq={r['seq']}", "target": f"{r['predicted_tokens']} predicted tokens", "response": None,
                "score": {"ppl": r["ppl"], "nll": r["nll"]}, "windows": r["windows"], "seconds": r["seconds"]}
               for r in rows]
    command = shlex.join(["vsuite", "eval", "lm", "--model", str(folder), "--data", result["data"],
                          "--seq", ",".join(str(r["seq"]) for r in rows), "--batch-size", str(cfg.batch_size),
                          "--max-tokens", str(cfg.max_tokens), "--device", result["device"],
                          "--dtype", result["dtype"], "--out", str(out_dir.resolve())])
    model = {"name": str(folder), "source": "model", "model_type": result["model_type"],
             "tokenizer": result["tokenizer"], "device": result["device"], "dtype": result["dtype"]}
    protocol = {"context": PROTOCOL, "data": result["data"], "tokens": result["tokens"]}
    doc = write_results(out_dir, scores, samples, command, model, protocol, benchmark="lm",
                        config=cfg.model_dump(mode="json"), elapsed_s=elapsed, details=result)
    _print(result)
    log(f"wrote {out_dir / 'results.json'} and {out_dir / 'samples.jsonl'}")
    if as_json:
        out(doc)
    return doc


def _print(result: dict) -> None:
    from rich.table import Table

    from ..console import stderr

    table = Table("eval length N", "windows", "predicted tokens", "NLL (nats/token)", "perplexity", box=None,
                  title=f"perplexity of {result['model']} on {result['data']} ({result['tokens']:,} tokens)",
                  caption=f"context protocol: {result['protocol']}", title_justify="left", caption_justify="left")
    for r in result["results"]:
        table.add_row(str(r["seq"]), str(r["windows"]), f"{r['predicted_tokens']:,}", f"{r['nll']:.4f}",
                      f"{r['ppl']:.3f}")
    stderr.print(table)
