"""The README's commands run: every ```bash block is executed, so the README cannot drift from the tool.

How the blocks are found and run (once per session, shared with the tiny end-to-end tests): tests/readme_blocks.py.
A block is skipped only when the line right before its fence is `<!-- readme-test: skip (reason) -->` (a GPU,
torchrun on many GPUs, a hub download, real datasets, or the setup/test commands themselves).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from readme_blocks import BLOCKS, README, SKIP, bash_blocks, readme_block_env


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


def test_each_section_runs_in_its_own_folder_in_order(tmp_path, monkeypatch):
    """Blocks share files within a `## ` section (a later one uses what an earlier one wrote), never across
    sections, and each block runs once however often it is asked for."""
    import readme_blocks

    text = ("## One\n```bash\necho one > made.txt\n```\n## Two\n```bash\ntest ! -e made.txt; echo two\n```\n"
            "## One\n```bash\ncat made.txt\n```\n")  # the same title again: the same section
    blocks = bash_blocks(text)
    assert [b.section for b in blocks] == ["One", "Two", "One"]
    monkeypatch.setattr(readme_blocks, "BLOCKS", blocks)

    def new_workspace():
        folder = tmp_path / f"ws{len(list(tmp_path.glob('ws*')))}"
        folder.mkdir()
        return folder

    (tmp_path / "bin").mkdir()
    run = readme_blocks.ReadmeRun(new_workspace, readme_block_env(tmp_path / "bin"))
    assert run.result(blocks[1]).stdout == "two\n" and run.result(blocks[1]).returncode == 0
    third = run.result(blocks[2])
    assert third.returncode == 0 and third.stdout == "one\n", third.stderr
    assert run.workspace(blocks[0]) == run.workspace(blocks[2]) != run.workspace(blocks[1])
    assert sorted(run.results) == [b.line for b in blocks]


def test_ci_runs_the_readmes_setup_and_test_commands():
    """`.ci/run` must install exactly as the README says and run the README's test command: every line of the
    Setup and Tests blocks is a line of it (HF_HUB_OFFLINE=1 is exported there once)."""
    ci = {line.strip() for line in (README.parent / ".ci" / "run").read_text().splitlines()}
    for section in ("Setup", "Tests"):
        (block,) = [b for b in BLOCKS if b.section == section]
        for line in filter(None, (raw.strip() for raw in block.code.splitlines())):
            assert line.removeprefix("HF_HUB_OFFLINE=1 ") in ci, f".ci/run lacks the README's {section} line {line!r}"
    assert "export HF_HUB_OFFLINE=1" in ci


@pytest.fixture(scope="module")
def block_env(tmp_path_factory) -> dict[str, str]:
    return readme_block_env(tmp_path_factory.mktemp("readme-bin"))


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_block_runs(block, readme_run):
    if block.skip:
        pytest.skip(block.skip)
    r = readme_run.result(block)
    assert r.returncode == 0, (f"README.md:{block.line} exited {r.returncode} after {r.seconds:.0f}s\n--- block\n"
                               f"{block.code}--- stderr (end)\n{r.stderr[-3000:]}")


def test_blocks_run_this_interpreters_vsuite(block_env, tmp_path):
    import vsuite

    code = 'python -c "import sys, vsuite; print(sys.executable); print(vsuite.__file__)"; command -v vsuite'
    r = subprocess.run(["bash", "-c", code], env=block_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    exe, module, found = r.stdout.split("\n")[:3]
    assert r.returncode == 0 and exe == sys.executable
    assert Path(module).resolve() == Path(vsuite.__file__).resolve()
    assert f'"{sys.executable}" -m vsuite' in Path(found).read_text()
