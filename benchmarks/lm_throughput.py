"""TNL against Llama on the CPU: training tokens/s by sequence length, and decoding memory.

    python benchmarks/lm_throughput.py [--seq 1024 4096 16384] [--tokens-per-step 16384] [--json out.json]

Both models have the width and depth of recipes/pretrain/tnl-tiny-cpu.toml (d 128, 4 layers,
4 heads, feed-forward 352, byte vocabulary 259). Each training step is forward + backward +
AdamW on `tokens-per-step` tokens (batch = tokens / seq), so every length does the same work
per step for a linear-time model: TNL's tokens/s should stay flat while Llama's (softmax
attention through SDPA, quadratic) falls. Decoding: the bytes held in the generation cache
after n generated tokens (TNL: one fp32 state per layer; Llama: keys and values of every token).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def tnl_model():
    from vsuite.models.transnormer import TransnormerConfig, TransnormerForCausalLM

    cfg = TransnormerConfig(vocab_size=259, decoder_embed_dim=128, decoder_layers=4, decoder_attention_heads=4,
                            hidden_dim=128, glu_dim=352, linear_act_fun="swish", linear_use_lrpe_list=[1, 0, 0, 0],
                            bos_token_id=256, eos_token_id=257, pad_token_id=258)
    return TransnormerForCausalLM(cfg)


def llama_model():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=259, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=352, max_position_embeddings=65536,
                      tie_word_embeddings=True, bos_token_id=256, eos_token_id=257, pad_token_id=258)
    cfg._attn_implementation = "sdpa"
    return LlamaForCausalLM(cfg)


def train_tokens_per_s(model, seq: int, tokens: int, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 256, (max(1, tokens // seq), seq))
    times = []
    for i in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return ids.numel() / sorted(times)[len(times) // 2]


def cache_bytes(obj, seen=None) -> int:
    """Bytes of every distinct tensor reachable from a cache object (lists, dicts, attributes)."""
    seen = set() if seen is None else seen
    if torch.is_tensor(obj):
        if obj.data_ptr() in seen:
            return 0
        seen.add(obj.data_ptr())
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(cache_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(cache_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(cache_bytes(v, seen) for v in vars(obj).values())
    return 0


@torch.no_grad()
def decode_cache_bytes(model, new_tokens: int) -> int:
    out = model.generate(torch.tensor([[256]]), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                         do_sample=False, return_dict_in_generate=True, use_cache=True, pad_token_id=258)
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    return cache_bytes(cache)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, nargs="+", default=[1024, 4096, 16384])
    ap.add_argument("--tokens-per-step", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--decode", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {"tnl": tnl_model(), "llama": llama_model()}
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    rows = []
    for seq in args.seq:
        row = {"seq": seq}
        for name, model in models.items():
            row[f"{name}_tok_s"] = train_tokens_per_s(model.train(), seq, args.tokens_per_step, args.steps)
        rows.append(row)
        print(f"seq {seq:6d}: TNL {row['tnl_tok_s']:8.0f} tok/s   Llama {row['llama_tok_s']:8.0f} tok/s   "
              f"ratio {row['tnl_tok_s'] / row['llama_tok_s']:.2f}", flush=True)
    decode = []
    for n in args.decode:
        d = {"new_tokens": n, **{f"{k}_cache_bytes": decode_cache_bytes(m.eval(), n) for k, m in models.items()}}
        decode.append(d)
        print(f"decode {n:5d} tokens: TNL cache {d['tnl_cache_bytes']:>9d} B   Llama cache {d['llama_cache_bytes']:>9d} B",
              flush=True)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}, "params": params, "train": rows, "decode": decode,
              "tokens_per_step": args.tokens_per_step}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
