"""`vsuite pretrain RECIPE`: train a causal language model from scratch (or from given weights).

Joins the text pipeline (vsuite.data.text, vsuite.data.tokenizers), a model registered with
transformers' Auto classes (vsuite.models) and the shared trainer (vsuite.train).

Recipe tables:
  [model]  vsuite.models.lm_config.LMModelConfig: model_type + [model.config] (fields of that model's config
           class), or `init` = a folder / Hub id to continue from. vocab_size and bos/eos/pad ids default to
           the tokenizer's.
  [data]   vsuite.data.text.TextDataConfig (corpus, tokenizer, seq_len, per-rank batch_size).
  [train]  vsuite.train.TrainConfig.
  [eval]   vsuite.metrics.lm.PretrainEvalConfig: path of held-out text; validation loss / perplexity
           (vsuite.metrics.lm) every train.eval_every steps and at the end.

Procedure: start the process group (torchrun / SLURM / none), tokenize the corpus (every rank, in
memory), pack it into windows of seq_len + 1 sharded over the ranks, build the model under train.seed,
then `vsuite.train.fit` with a loss on pre-shifted labels. Each checkpoint also holds the tokenizer.
The final checkpoint's path goes to stdout (rank 0); everything else to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..console import log
from ..errors import RecipeError
from ..models.config_fields import config_class
from ..models.lm_config import LMModelConfig


def build_model(cfg: LMModelConfig, tokenizer, seed: int):
    """A float32 causal LM: from `init`, or newly initialised from [model.config] under `seed`."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..train import seed_everything

    if cfg.init and Path(cfg.init).expanduser().is_file():
        # a single file is an official fairseq-evo TNN checkpoint (read without executing pickled code)
        from ..models.tnn.official import load_fairseq_checkpoint

        model = load_fairseq_checkpoint(Path(cfg.init).expanduser()).float()
    elif cfg.init:
        from ..hub import resolve_model_dir

        model = AutoModelForCausalLM.from_pretrained(resolve_model_dir(cfg.init), dtype=torch.float32)
    else:
        if config_class(cfg.model_type) is None:
            raise RecipeError(f"model.model_type={cfg.model_type!r} is not a registered model type "
                              "(vsuite.models has: transnormer; transformers' own types work too)")
        kwargs = dict(cfg.config)
        kwargs.setdefault("vocab_size", tokenizer.vocab_size)
        for key, value in (("bos_token_id", tokenizer.bos_id), ("eos_token_id", tokenizer.eos_id),
                           ("pad_token_id", tokenizer.pad_id)):
            if value is not None:
                kwargs.setdefault(key, value)
        try:
            config = AutoConfig.for_model(cfg.model_type, **kwargs)
        except (ValueError, TypeError) as err:
            raise RecipeError(f"[model] config: {err}") from None
        seed_everything(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    vocab = model.get_input_embeddings().weight.shape[0]
    if vocab < tokenizer.vocab_size:
        raise RecipeError(f"the model's vocabulary ({vocab}) is smaller than tokenizer {tokenizer.name}'s "
                          f"({tokenizer.vocab_size}); raise model.config.vocab_size or change data.tokenizer")
    return model


def make_eval_fn(recipe, tokenizer, env):
    """Held-out mean loss and perplexity over full windows of data.seq_len (the windows of
    vsuite.metrics.lm's protocol, the short remainder left out), sharded over the ranks."""
    import torch
    import torch.distributed as dist

    from ..data import data_roots
    from ..data.text import load_tokens
    from ..metrics.lm import nll_sum, perplexity, window_spans

    data = recipe.data
    tokens = load_tokens(data.model_copy(update={"path": recipe.eval.path, "max_tokens": 0}), tokenizer,
                         data_roots())
    spans = [s for s in window_spans(len(tokens), data.seq_len) if s[1] - s[0] == data.seq_len + 1]
    spans = spans[:recipe.eval.max_batches * data.batch_size * env.world_size]
    mine = spans[env.rank::env.world_size][: len(spans) // env.world_size]
    if not mine:
        raise RecipeError(f"eval.path {recipe.eval.path} has fewer than {env.world_size} window(s) of "
                          f"{data.seq_len} tokens; give more held-out text or lower data.seq_len")

    def evaluate(model, step: int) -> dict:
        totals = torch.zeros(2, dtype=torch.float64, device=env.device)  # [NLL sum, predicted tokens]
        with torch.no_grad():
            for i in range(0, len(mine), data.batch_size):
                rows = torch.stack([tokens[a:b] for a, b in mine[i:i + data.batch_size]]).to(env.device)  # [B, N+1]
                logits = model(input_ids=rows[:, :-1], use_cache=False).logits
                totals[0] += nll_sum(logits, rows[:, 1:])
                totals[1] += rows[:, 1:].numel()
        if env.distributed:
            dist.all_reduce(totals)
        return {"loss": float(totals[0] / totals[1]), "ppl": perplexity(float(totals[0]), int(totals[1]))}

    return evaluate


def run(recipe, *, resume: str = "auto"):
    """Train as the recipe says; returns the trainer's TrainResult."""
    from ..data import data_roots
    from ..data.text import PackedWindows, load_tokens
    from ..data.tokenizers import load_tokenizer
    from ..train import distributed as D
    from ..train import fit
    from ..train.config import run_folder
    from ..train.losses import shifted_causal_lm_loss

    train, data = recipe.train, recipe.data
    out_dir = run_folder(train, recipe.source)
    env = D.init(train.device)
    try:
        tokenizer = load_tokenizer(data.tokenizer)
        tokens = load_tokens(data, tokenizer, data_roots())
        batches = PackedWindows(tokens, data.seq_len, data.batch_size, rank=env.rank, world_size=env.world_size,
                                shuffle=data.shuffle, seed=data.seed)
        model = build_model(recipe.model, tokenizer, train.seed)
        eval_fn = make_eval_fn(recipe, tokenizer, env) if recipe.eval.path else None
        if env.is_main:
            _describe(recipe, model, tokenizer, tokens, batches, env, out_dir)
        result = fit(train, model, batches, recipe, out_dir=out_dir, resume=resume, env=env, eval_fn=eval_fn,
                     loss_fn=shifted_causal_lm_loss, save_extra=tokenizer.save)
        if env.is_main:
            _summary(result, out_dir)
        return result
    finally:
        D.shutdown()


def _describe(recipe, model, tokenizer, tokens, batches, env, out_dir) -> None:
    train, data = recipe.train, recipe.data
    params = sum(p.numel() for p in model.parameters())
    global_tokens = data.batch_size * data.seq_len * train.grad_accum * env.world_size
    log(f"model {type(model).__name__}: {params / 1e6:.2f}M parameters | tokenizer {tokenizer.name} "
        f"(vocab {tokenizer.vocab_size})")
    log(f"data {len(tokens):,} tokens, {batches.num_windows:,} windows of {data.seq_len}, "
        f"{batches.batches_per_epoch:,} batches per epoch per rank | {global_tokens:,} tokens per update | "
        f"{env.world_size} process(es) on {env.device.type} | run folder {out_dir}")


def _summary(result, out_dir: Path) -> None:
    if result.losses:
        log(result.done_line(f"metrics in {out_dir / 'metrics.jsonl'}"))
    if result.rank_checksums and len(result.rank_checksums) > 1:
        same = len(set(result.rank_checksums)) == 1
        log(f"{len(result.rank_checksums)} ranks {'agree on' if same else 'DISAGREE on'} the final weights "
            f"(checksum {result.rank_checksums[0]:.10g})")
    if result.checkpoint is not None:
        sys.stdout.write(f"{result.checkpoint}\n")
        sys.stdout.flush()
