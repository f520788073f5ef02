"""The README's ```bash blocks, and ONE run of them per test session that several tests share.

`tests/test_readme.py` asserts that every block runs; the tiny end-to-end tests of the tasks whose README
block already trains a tiny model (segment, describe, classify) check what that same run produced instead
of training again (the `readme_workspace` fixture with `@pytest.mark.readme_block(needle)`), so CI pays for
each tiny training once.

The run: blocks not marked `<!-- readme-test: skip (reason) -->` on the line right before their fence run
with `bash -e -o pipefail`, section by section: the blocks of one `## ` section of the README run in document
order in that section's own temporary copy of the repository's files (`git ls-files`: tracked ones and new
ones git does not ignore), so what a block writes (runs/, data/ ...) lands there and a later block of the
section may use it, as for a reader trying that section. Sections are independent of each other, so two test
workers can run two of them at once (conftest.py groups each section's tests on one worker). Blocks run
lazily, up to the one asked for. `vsuite` and `python` are this interpreter's (shims first on PATH), the hub is
offline and TRITON_INTERPRET is unset, as on a reader's CPU machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]*\S[^)]*)\)\s*-->")
BLOCK_TIMEOUT_S = 600


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # the reason, when marked
    section: str = ""  # the title of the `## ` section it is in


def bash_blocks(text: str) -> list[Block]:
    """The ```bash fenced blocks of a Markdown text, with their skip reasons."""
    lines = text.splitlines()
    blocks, i, section = [], 0, ""
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
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
            blocks.append(Block(start + 1, "\n".join(body) + "\n", marker["reason"].strip() if marker else None,
                                section))
        i += 1
    return blocks


BLOCKS = bash_blocks(README.read_text())


def block_with(needle: str) -> Block:
    """The one runnable block whose code contains `needle`."""
    found = [b for b in BLOCKS if needle in b.code and not b.skip]
    assert len(found) == 1, f"{len(found)} runnable README blocks contain {needle!r}"
    return found[0]


def readme_block_env(shims: Path) -> dict[str, str]:
    """The environment of a block: this interpreter's `vsuite` and `python` first on PATH, offline.

    Its bin folder goes first (for `torchrun` and friends), and before it two shims in `shims`, so that even
    in an environment whose bin folder has no `vsuite` script (a venv made with --system-site-packages, an
    uninstalled checkout) the `vsuite` the README's commands run is this interpreter's.
    """
    for name, command in (("vsuite", f'"{sys.executable}" -m vsuite'), ("python", f'"{sys.executable}"')):
        (shims / name).write_text(f'#!/bin/sh\nexec {command} "$@"\n')
        (shims / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    path = os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(HF_HUB_OFFLINE="1", NO_COLOR="1", PATH=path)
    return env


def checkout_files() -> list[str]:
    """The tracked files plus new ones git does not ignore, relative to the checkout."""
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, text=True)
    if listing.returncode != 0:
        raise RuntimeError("not a git checkout")
    return list(filter(None, listing.stdout.split("\0")))


def copy_checkout(dest: Path) -> Path:
    """Copy `checkout_files()` to `dest` (a block's `python -c` imports the package from the working folder, as a
    reader's would, so a new uncommitted module must be there too)."""
    for rel in checkout_files():
        src = ROOT / rel
        if src.is_file():  # a tracked file deleted in the work tree is skipped
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)
    return dest


@dataclass
class BlockResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class ReadmeRun:
    """The README's blocks, each run once: `result(block)` runs the blocks of its section up to it, in the
    section's workspace (made on first use by `new_workspace()`)."""

    def __init__(self, new_workspace: Callable[[], Path], env: dict[str, str]):
        self.new_workspace, self.env = new_workspace, env
        self.results: dict[int, BlockResult] = {}
        self.workspaces: dict[str, Path] = {}

    def result(self, block: Block) -> BlockResult:
        for todo in BLOCKS:  # the runnable blocks of its section not run yet, in order, up to and including it
            if todo.section == block.section and not todo.skip and todo.line not in self.results:
                self.results[todo.line] = self._run(todo)
            if todo is block:
                return self.results[block.line]
        raise ValueError(f"README.md:{block.line} is not a block of the README")

    def after(self, block: Block) -> Path:
        """Run `block` (and the blocks before it in its section); assert it succeeded and return the section's
        workspace (where its files are)."""
        r = self.result(block)
        assert r.returncode == 0, f"README.md:{block.line} failed:\n{r.stderr[-3000:]}"
        return self.workspace(block)

    def workspace(self, block: Block) -> Path:
        if block.section not in self.workspaces:
            self.workspaces[block.section] = self.new_workspace()
        return self.workspaces[block.section]

    def _run(self, block: Block) -> BlockResult:
        workspace = self.workspace(block)
        script = workspace / f".readme-block-{block.line}.sh"
        script.write_text(block.code)
        start = time.monotonic()
        try:
            r = subprocess.run(["bash", "-e", "-o", "pipefail", str(script)], cwd=workspace, env=self.env,
                               capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
            return BlockResult(r.returncode, r.stdout, r.stderr, time.monotonic() - start)
        except subprocess.TimeoutExpired as err:
            return BlockResult(124, str(err.stdout or ""), f"timed out after {BLOCK_TIMEOUT_S}s",
                               time.monotonic() - start)
