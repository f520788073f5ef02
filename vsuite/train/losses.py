"""Loss functions a task can hand to the trainer (`fit(..., loss_fn=...)`).

`shifted_causal_lm_loss(model, batch)`: batch["labels"] is already aligned with batch["input_ids"]
(labels[t] is the token after input_ids[t], as vsuite.data.text packs them), so the model is asked only
for logits and no further shift happens. Mean cross-entropy in fp32 over labels != -100.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_nll(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits [B, N, V] against aligned labels [B, N] (fp32; -100 ignored)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten().to(logits.device), ignore_index=-100,
                           reduction=reduction)


def shifted_causal_lm_loss(model, batch: dict) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], use_cache=False)
    return token_nll(out.logits, batch["labels"])
