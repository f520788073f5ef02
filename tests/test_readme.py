"""The README's commands run: every ```bash block is executed, so the README cannot drift from the tool.

A block is skipped only when the line right before its fence is
`<!-- readme-test: skip (reason) -->` (a GPU, torchrun on many GPUs, a hub download, real datasets,
or the setup/test commands themselves). The others run in document order, each with
`bash -e -o pipefail`, in ONE temporary copy of the repository's files (`git ls-files`: tracked ones
and new ones that git does not ignore), so
what a block writes (runs/, data/bars/, bench.json ...) lands there and a later block may use it, as it
would for a reader going down the page. `vsuite` and `python` are this interpreter's (shims and
its bin folder go first on PATH, whatever is installed elsewhere), the hub is offline
(HF_HUB_OFFLINE=1) and TRITON_INTERPRET is unset, as on a reader's CPU machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]*\S[^)]*)\)\s*-->")
BLOCK_TIMEOUT_S = 600


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # the reason, when marked


def bash_blocks(text: str) -> list[Block]:
    """The ```bash fenced blocks of a Markdown text, with their skip reasons."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i
            i += 1
            body = []
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise ValueError(f"README.md:{start + 1}: ```bash block is never closed")
            marker = SKIP.fullmatch(lines[start - 1].strip()) if start > 0 else None
            blocks.append(Block(start + 1, "\n".join(body) + "\n", marker["reason"].strip() if marker else None))
        i += 1
    return blocks


BLOCKS = bash_blocks(README.read_text())


def test_parser_finds_blocks_and_skip_markers():
    text = ("intro\n\n```bash\necho one\n```\n\n<!-- readme-test: skip (needs a GPU) -->\n```bash\nnvidia-smi\n```\n"
            "```python\nprint(1)\n```\n    vsuite indented example\n```bash\necho two \\\n  three\n```\n")
    blocks = bash_blocks(text)
    assert [(b.line, b.skip) for b in blocks] == [(3, None), (8, "needs a GPU"), (15, None)]
    assert blocks[0].code == "echo one\n" and blocks[2].code == "echo two \\\n  three\n"
    with pytest.raises(ValueError, match="never closed"):
        bash_blocks("```bash\necho\n")


def test_every_skip_marker_has_a_reason_and_a_block():
    """A marker that is not right before a ```bash fence skips nothing: a sign the README moved under it."""
    lines = README.read_text().splitlines()
    for n, line in enumerate(lines):
        if line.strip().startswith("<!--") and "readme-test" in line:
            assert SKIP.fullmatch(line.strip()), f"README.md:{n + 1}: write <!-- readme-test: skip (reason) -->"
            assert n + 1 < len(lines) and lines[n + 1].strip() == "```bash", f"README.md:{n + 1}: no ```bash after it"
    assert any(b.skip is None for b in BLOCKS), "no README block runs"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A copy of the tracked files: the README's commands write into it, never into the checkout."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    # tracked files plus new ones git does not ignore: the blocks' `python -m vsuite` / `python -c` import the
    # package from the working folder (as a reader's would, in the repository root), so a module that is
    # new and not yet committed must be there too; ignored build outputs and runs/ are left out
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True)
    if listing.returncode != 0:
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("readme")
    for rel in filter(None, listing.stdout.split("\0")):
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the work tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


@pytest.fixture(scope="module")
def block_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a block: this interpreter's `vsuite` and `python` first on PATH, offline.

    Its bin folder goes first (for `torchrun` and friends), and before it two shims, so that even in
    an environment whose bin folder has no `vsuite` script (a venv made with --system-site-packages,
    an uninstalled checkout) the `vsuite` the README's commands run is this interpreter's.
    """
    shims = tmp_path_factory.mktemp("readme-bin")
    for name, command in (("vsuite", f'"{sys.executable}" -m vsuite'), ("python", f'"{sys.executable}"')):
        (shims / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (shims / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    path = os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(HF_HUB_OFFLINE="1", NO_COLOR="1", PATH=path)
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_runs(block, workspace, block_env):
    if block.skip:
        pytest.skip(block.skip)
    script = workspace / f".readme-block-{block.line}.sh"
    script.write_text(block.code)
    start = time.monotonic()
    r = subprocess.run(["bash", "-e", "-o", "pipefail", str(script)], cwd=workspace, env=block_env,
                       capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
    took = time.monotonic() - start
    assert r.returncode == 0, (f"README.md:{block.line} exited {r.returncode} after {took:.0f}s\n--- block\n"
                               f"{block.code}--- stderr (end)\n{r.stderr[-3000:]}")


def test_blocks_run_this_interpreters_vsuite(block_env, tmp_path):
    import vsuite

    code = 'python -c "import sys, vsuite; print(sys.executable); print(vsuite.__file__)"; command -v vsuite'
    r = subprocess.run(["bash", "-c", code], env=block_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    exe, module, found = r.stdout.split("\n")[:3]
    assert r.returncode == 0 and exe == sys.executable
    assert Path(module).resolve() == Path(vsuite.__file__).resolve()
    assert f'"{sys.executable}" -m vsuite' in Path(found).read_text()
