"""The hand-written package list in pyproject.toml covers every package folder."""

import subprocess
import sys
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


# Run in a fresh interpreter: a finder refuses `vsuite` and `vsuite.*`, then every module of the kernel
# package is imported and two ops run (a lazy import inside a function would only show when called).
BLOCKED_IMPORT = r"""
import importlib, importlib.abc, pkgutil, sys

class NoVsuite(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "vsuite" or name.startswith("vsuite."):
            raise ImportError(f"vsuite_kernels imported {name}")
        return None

sys.meta_path.insert(0, NoVsuite())
import torch
import vsuite_kernels
names = [m.name for m in pkgutil.walk_packages(vsuite_kernels.__path__, "vsuite_kernels.")]
for name in names:
    importlib.import_module(name)
from vsuite_kernels import lightning_attn, toeplitz_matvec
from vsuite_kernels.lightning.naive import lightning_attn_naive
from vsuite_kernels.toeplitz.naive import toeplitz_dense
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 2, 5, 4, generator=g) for _ in range(3))
slopes = torch.tensor([0.1, 0.5])
torch.testing.assert_close(lightning_attn(q, k, v, slopes), lightning_attn_naive(q, k, v, slopes))
x, coeffs = torch.randn(1, 2, 6, 3, generator=g), torch.randn(2, 6, 3, generator=g)  # [B, H, N, D], [H, N, D]
torch.testing.assert_close(toeplitz_matvec(x, coeffs), toeplitz_dense(x, coeffs))
assert not [m for m in sys.modules if m == "vsuite" or m.startswith("vsuite.")]
print("ok", len(names))
"""


def test_kernel_package_never_imports_vsuite():
    proc = subprocess.run([sys.executable, "-c", BLOCKED_IMPORT], capture_output=True, text=True, timeout=300,
                          cwd=ROOT / "kernels")  # not the repo root: `vsuite` must not even be importable by path
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok ") and int(proc.stdout.split()[1]) >= 10, proc.stdout


def test_blocked_import_catches_an_import_of_vsuite(tmp_path):
    """The check above can fail: a module of a package that imports vsuite is refused."""
    pkg = tmp_path / "vsuite_kernels_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import vsuite.errors as _v\n")  # the form a string match missed
    script = BLOCKED_IMPORT.split("import torch")[0] + "import vsuite_kernels_probe\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode != 0 and "vsuite_kernels imported vsuite" in proc.stderr, proc.stderr


def test_no_submodule_shadows_a_name_its_package_exports():
    """Importing `pkg.name` rebinds `pkg.name` to the module: a submodule named like a function its package exports
    (vsuite.media.sample_clips, once) breaks every later caller of that function in the process."""
    code = '''
import importlib, pkgutil, types, vsuite
bad = []
for info in pkgutil.walk_packages(vsuite.__path__, "vsuite."):
    if not info.ispkg:
        continue
    pkg = importlib.import_module(info.name)
    for sub in pkgutil.iter_modules(pkg.__path__):
        before = vars(pkg).get(sub.name)
        if before is not None and not isinstance(before, types.ModuleType):
            importlib.import_module(f"{info.name}.{sub.name}")
            if vars(pkg)[sub.name] is not before:
                bad.append(f"{info.name}.{sub.name}")
print(" ".join(bad))
'''
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "", f"submodules shadowing their package's exports: {r.stdout.strip()}"
