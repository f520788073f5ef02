"""Read a training framework's pickled checkpoint (SlowFast `.pyth`, fairseq `.pt`) without running its code.

Such files are torch.save pickles. They are read ONLY with torch.load(weights_only=True): torch's restricted
unpickler builds tensors, containers and numbers and refuses every other global. Two kinds of global are
common in those files' metadata (never in the weights) and are admitted here, nothing else:

  SAFE_GLOBALS        real, inert types: argparse.Namespace (fairseq's legacy "args") and numpy's numeric
                      scalar/array/dtype reconstructors (a numpy float in the training metadata); they
                      only rebuild values from bytes.
  placeholder_modules the caller names the framework's own packages (e.g. "fairseq."); a global from one of
                      them (an enum of the training config, say) is NOT imported: it becomes an `Opaque`
                      stand-in that just stores its arguments. Nothing from the file is ever called.

A global outside both lists (os.system, builtins.eval, subprocess...) makes the load fail with a one-line
DataError that names it; the loaders then check that every weight is a tensor.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError, ModelNotFoundError


class Opaque:
    """Inert stand-in for a class of an uninstalled training framework found in checkpoint metadata."""

    args: tuple = ()
    kwargs: dict = {}
    state = None  # what BUILD passed (objects rebuilt with __new__ never see __init__)

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __setstate__(self, state):
        self.state = state

    def __repr__(self):
        return f"Opaque(args={self.args!r}, state={self.state!r})"


def _safe_globals() -> dict:
    import argparse

    table = {"argparse.Namespace": argparse.Namespace}
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with torch
        return table
    # numpy moved `core` to `_core` in 2.0; files name whichever wrote them. These rebuild numbers from bytes.
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[f"{mod}.scalar"] = multiarray.scalar
        table[f"{mod}._reconstruct"] = multiarray._reconstruct
    table["numpy.dtype"] = np.dtype
    table["numpy.ndarray"] = np.ndarray
    for name in dir(getattr(np, "dtypes", None) or object()):  # numpy >= 1.25 pickles dtypes by class
        if name.endswith("DType") and not name.startswith(("Object", "Void")):
            table[f"numpy.dtypes.{name}"] = getattr(np.dtypes, name)
    return table


def load_pickled_checkpoint(path: str | os.PathLike, *, what: str, placeholder_modules: tuple[str, ...] = ()):
    """torch.load(path, weights_only=True), admitting SAFE_GLOBALS and `placeholder_modules` stand-ins.

    `what` names the file kind in error messages ("an official LVT checkpoint"). Raises ModelNotFoundError
    for a missing file and DataError for anything unreadable or refused."""
    import pickle

    import torch

    file = Path(path)
    if not file.is_file():
        raise ModelNotFoundError(f"{file}: no such file (expected {what})")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # a global outside torch's own list: look at which ones below
    except Exception as err:  # not a torch.save file at all
        raise DataError(f"{file}: not readable as {what} ({type(err).__name__}: {_first_line(err)})") from None
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception as err:  # the legacy (pre-zip) format cannot be inspected
        raise DataError(f"{file}: not readable as {what} with weights_only=True ({_first_line(err)}); "
                        "re-save it with a recent torch.save where you trust it") from None
    table = _safe_globals()
    admitted, refused = [], []
    for name in names:
        if name in table:
            admitted.append((table[name], name))
        elif placeholder_modules and name.startswith(placeholder_modules):
            admitted.append((Opaque, name))
        else:
            refused.append(name)
    if any(name.startswith("numpy.") for name in names):  # unpickled dtypes are instances of these classes
        admitted += [(obj, name) for name, obj in table.items() if name.startswith("numpy.dtypes.")]
    if refused:
        raise DataError(f"{file}: refusing to load {what}: it needs {', '.join(sorted(refused)[:3])}, which "
                        "could run code when unpickled; only tensors, plain containers and known-safe types are read")
    try:
        with torch.serialization.safe_globals(admitted):
            return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{file}: not readable as {what} ({type(err).__name__}: {_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


__all__ = ["Opaque", "load_pickled_checkpoint"]


def load_converted_weights(model, state: dict, path, what: str):
    """Load an already converted state dict into `model` strictly, as a one-line DataError on any mismatch.

    `what` names the weights in the message ("official LVT weights"); returns the model in eval mode.
    """
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a shape that contradicts the inferred config
        raise DataError(f"{path}: {what} do not fit the inferred model ({_first_line_of_last(err)})") from None
    if result.missing_keys or result.unexpected_keys:
        problems = [f"missing {', '.join(result.missing_keys[:3])}"] if result.missing_keys else []
        problems += [f"unexpected {', '.join(result.unexpected_keys[:3])}"] if result.unexpected_keys else []
        raise DataError(f"{path}: {what} do not fit the inferred model ({'; '.join(problems)})")
    return model.eval()


def _first_line_of_last(err: BaseException) -> str:
    """The last non-empty line of a load_state_dict error (the size mismatch itself)."""
    return str(err).strip().splitlines()[-1].strip()
