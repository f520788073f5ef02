"""Test-wide settings, set before any test module imports triton or the hub client.

- HF_HUB_OFFLINE: nothing is downloaded in tests (and hub calls fail fast).
- TRITON_INTERPRET=1 without a GPU: Triton kernels run in the interpreter. It must be set before the
  first kernel is decorated in this process, whichever test collects first, or interpreted and
  compiled kernels get mixed ("Cannot call @triton.jit'd outside of the scope of a kernel").
"""

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
