"""Test-wide settings, set before any test module imports triton or the hub client.

- HF_HUB_OFFLINE: nothing is downloaded in tests (and hub calls fail fast).
- TRITON_INTERPRET=1 without a GPU: Triton kernels run in the interpreter. It must be set before the
  first kernel is decorated in this process, whichever test collects first, or interpreted and
  compiled kernels get mixed ("Cannot call @triton.jit'd outside of the scope of a kernel").
"""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory):
    """The README's blocks, run once per session in a copy of the checkout (see readme_blocks.py)."""
    import shutil

    from readme_blocks import ReadmeRun, copy_checkout, readme_block_env

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        workspace = copy_checkout(tmp_path_factory.mktemp("readme"))
    except RuntimeError as err:
        pytest.skip(str(err))
    return ReadmeRun(workspace, readme_block_env(tmp_path_factory.mktemp("readme-bin")))


@pytest.fixture
def one_thread():
    """One intra-op thread for tiny models: their ops are too small to share, and on a busy 2-core machine
    contending threads made them up to ~10x slower (results are the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
