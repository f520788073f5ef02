"""The hand-written package list in pyproject.toml covers every package folder."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _found(folder: str, name: str) -> set[str]:
    base = ROOT / folder
    return {".".join([name, *p.parent.relative_to(base).parts]) for p in base.rglob("__init__.py")
            if "__pycache__" not in p.parts}


def test_every_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = _found("vsuite", "vsuite") | _found("kernels", "vsuite_kernels")
    assert found - listed == set(), f"add to pyproject.toml packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


def test_kernel_package_never_imports_vsuite():
    offenders = [str(p) for p in (ROOT / "kernels").rglob("*.py")
                 if "import vsuite\n" in p.read_text() or "from vsuite " in p.read_text()
                 or "from vsuite." in p.read_text()]
    assert not offenders, offenders
