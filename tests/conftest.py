"""Test-wide settings, set before any test module imports triton or the hub client.

- HF_HUB_OFFLINE: nothing is downloaded in tests (and hub calls fail fast).
- TRITON_INTERPRET=1 without a GPU: Triton kernels run in the interpreter. It must be set before the
  first kernel is decorated in this process, whichever test collects first, or interpreted and
  compiled kernels get mixed ("Cannot call @triton.jit'd outside of the scope of a kernel").
- Under pytest-xdist (`-n 2 --dist loadgroup`, the README's test command): one thread per worker, and the tests
  of each README section in one xdist group, so each section (each tiny training) runs once.
"""

import os
import re

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n 2` (the README's test command) each worker gets one core: one intra-op thread here and
    # in the CLI subprocesses the tests start, since two workers x two OpenMP threads on two cores contend.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _readme_group(item) -> str | None:
    """The xdist group of a test that reads the README run: its block's `## ` section."""
    if "readme_run" not in getattr(item, "fixturenames", ()):
        return None
    block = getattr(item, "callspec", None) and item.callspec.params.get("block")
    block = block or _marked_block(item)
    return "readme-" + re.sub(r"[^a-z0-9]+", "-", block.section.lower())[:32].strip("-")  # it ends node ids


def _marked_block(item):
    """The README block named by the test's `@pytest.mark.readme_block(needle)`."""
    from readme_blocks import block_with

    marker = item.get_closest_marker("readme_block")
    if marker is None:
        raise pytest.UsageError(f"{item.nodeid} reads the README run: mark it @pytest.mark.readme_block(needle)")
    return block_with(marker.args[0])


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config, items):
    """The tests of one README section form one xdist group (one worker runs that section once for all of them),
    and they go first: the tiny trainings are the longest pieces of work, so they start while the other worker
    takes the many short tests."""
    groups = {item: _readme_group(item) for item in items}
    for item, group in groups.items():
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items[:] = [i for i in items if groups[i] is not None] + [i for i in items if groups[i] is None]


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory):
    """The README's blocks, run once per session, each section in its own copy of the checkout (see
    readme_blocks.py)."""
    import shutil

    from readme_blocks import ReadmeRun, checkout_files, copy_checkout, readme_block_env

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        checkout_files()
    except RuntimeError as err:
        pytest.skip(str(err))
    return ReadmeRun(lambda: copy_checkout(tmp_path_factory.mktemp("readme")),
                     readme_block_env(tmp_path_factory.mktemp("readme-bin")))


@pytest.fixture
def readme_workspace(request, readme_run):
    """The workspace of the README section whose block contains the test's `readme_block` needle, after that
    block ran (and succeeded)."""
    return readme_run.after(_marked_block(request.node))


@pytest.fixture
def one_thread():
    """One intra-op thread for tiny models: their ops are too small to share, and on a busy 2-core machine
    contending threads made them up to ~10x slower (results are the same)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
