"""Attention masks and text masking of AVLFormer (official: src/datasets/caption_tensorizer.py with
attn_mask_type "learn_vid_att", mode "default", and VideoTransformer.forward's learned mask).

The decoder's sequence is [text (T positions: CLS, caption, SEP, padding) | visual (V audio-visual tokens)].
Mask entries are 1 = may attend, 0 = may not (the decoder adds (1 - m) * -10000 to the scores, as BERT):
  - text row i < L (L = CLS + caption + SEP): text columns j <= i (causal), every visual column;
  - padding text rows: nothing (they see no one; their outputs are ignored);
  - visual rows: every visual column, no text column;
  - with the learned sparse mask, the visual block becomes diag + (1 - diag) * sigmoid(W) (soft values;
    `soft2hard` rounds at 0.5), and the sparsity loss is mean(|(1 - diag) * sigmoid(W)|) over V x V.
"""

from __future__ import annotations

import random

import torch


def seq2seq_attention_mask(text_lengths: torch.Tensor, max_text_len: int, num_visual: int) -> torch.Tensor:
    """[B, T+V, T+V] long mask for text lengths [B] (CLS..SEP) in T text positions and V visual tokens."""
    b = text_lengths.shape[0]
    t, n = max_text_len, max_text_len + num_visual
    device = text_lengths.device
    pos = torch.arange(t, device=device)
    real = pos[None, :] < text_lengths[:, None]  # [B, T] real text positions
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=device))
    mask = torch.zeros(b, n, n, dtype=torch.long, device=device)
    mask[:, :t, :t] = (causal[None] & real[:, :, None] & real[:, None, :]).long()
    mask[:, :t, t:] = real[:, :, None].long()
    mask[:, t:, t:] = 1
    return mask


def generation_attention_mask(batch: int, text_len: int, num_visual: int, device=None) -> torch.Tensor:
    """The mask of one decoding step: `text_len` positions (CLS, the tokens so far and the [MASK] slot), all
    real, so a full triangle; as the official eval tensorizer's mask with the unused text rows removed."""
    return seq2seq_attention_mask(torch.full((batch,), text_len, dtype=torch.long, device=device), text_len,
                                  num_visual)


def learned_visual_mask(weight: torch.Tensor, num_visual: int, soft2hard: bool = False):
    """(mask [V, V], off_diagonal [V, V]) from the learn_vid_att embedding weight [V*V, 1]."""
    att = torch.sigmoid(weight.reshape(num_visual, num_visual))
    diag = torch.eye(num_visual, device=weight.device, dtype=att.dtype)
    off = (1.0 - diag) * att
    mask = diag + off
    if soft2hard:
        mask = (mask >= 0.5).to(att.dtype).detach()
    return mask, off


def sparsity_loss(off_diagonal: torch.Tensor) -> torch.Tensor:
    return off_diagonal.abs().mean()


def apply_learned_mask(attention_mask: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """Float copy of [B, N, N] with its last V x V block replaced by the learned [V, V] mask."""
    v = learned.shape[0]
    out = attention_mask.to(learned.dtype).clone()
    out[:, -v:, -v:] = learned
    return out


def tensorize_caption(ids: list[int], *, max_seq_length: int, cls_id: int, sep_id: int, pad_id: int, mask_id: int,
                      vocab_size: int, train: bool = True, mask_prob: float = 0.25, max_masked_tokens: int = 75,
                      special_ids: set[int] | None = None, rng: random.Random | None = None,
                      official_lm_targets: bool = False) -> dict:
    """One training example's text tensors, as the official CaptionTensorizer.tensorize_example_e2e.

    ids: the caption's token ids without special tokens. Returns input_ids [T] (after MLM masking),
    text_length (CLS..SEP), masked_pos [T] (1 at masked positions), masked_ids [max_masked_tokens] (-1 padded)
    and output_token_ids [T] (the LM targets: the next token at each position).

    MLM: n = min(max(round(mask_prob * L), 1), max_masked_tokens) positions among 1..L-1 (SEP included, CLS
    not); each becomes [MASK] with p 0.8, else a random token with p 0.5, else stays. Random tokens are drawn
    from the non-special ids (the official draws from the whole vocabulary).
    LM targets: the official code builds them from the token list after masking (the list is masked in place),
    so masked positions' targets are [MASK] or the random token; vsuite uses the original tokens unless
    `official_lm_targets`.
    """
    rng = rng or random
    tokens = [cls_id] + list(ids)[: max_seq_length - 2] + [sep_id]
    length = len(tokens)
    original = list(tokens)
    masked_pos = torch.zeros(max_seq_length, dtype=torch.long)
    masked_ids = torch.full((max_masked_tokens,), -1, dtype=torch.long)
    if train:
        num = int(min(max(round(mask_prob * length), 1), max_masked_tokens))
        candidates = list(range(1, length))
        rng.shuffle(candidates)
        chosen = sorted(candidates[:num])
        specials = special_ids if special_ids is not None else {pad_id, cls_id, sep_id, mask_id}
        for p in chosen:
            if rng.random() <= 0.8:
                tokens[p] = mask_id
            elif rng.random() <= 0.5:
                while True:
                    r = rng.randrange(vocab_size)
                    if r not in specials:
                        break
                tokens[p] = r
        masked_pos[chosen] = 1
        masked_ids[: len(chosen)] = torch.tensor([original[p] for p in chosen], dtype=torch.long)
    source = tokens if official_lm_targets else original
    pad = max_seq_length - length
    input_ids = torch.tensor(tokens + [pad_id] * pad, dtype=torch.long)
    output_token_ids = torch.tensor(source[1:] + [pad_id] * (pad + 1), dtype=torch.long)
    return {"input_ids": input_ids, "text_lengths": torch.tensor(length), "masked_pos": masked_pos,
            "masked_ids": masked_ids, "output_token_ids": output_token_ids}


__all__ = ["apply_learned_mask", "generation_attention_mask", "learned_visual_mask", "seq2seq_attention_mask",
           "sparsity_loss", "tensorize_caption"]
