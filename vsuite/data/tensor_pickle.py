"""Read a torch tensor that was written with plain `pickle.dump(tensor)` (AVSBench's audio_log_mel/*.pkl)
without running anything from the file.

Such a pickle names exactly three globals: torch._utils._rebuild_tensor_v2 (tensor from storage, offset, size,
stride), torch.storage._load_from_bytes (the storage, as the bytes of a legacy torch.save) and
collections.OrderedDict (the empty backward-hooks dict). A restricted Unpickler maps those three names to
local, inert equivalents: the storage bytes are read with torch.load(weights_only=True), and the tensor is
rebuilt with Tensor.set_; every other global (os.system, builtins.eval, ...) is refused with a one-line
DataError. Files written with torch.save (zip format) go straight to torch.load(weights_only=True).
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path

from ..errors import DataError


def _storage_from_bytes(data: bytes):
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    import torch

    out = torch.empty((0,), dtype=storage.dtype)
    out.set_(storage, offset, size, stride)
    return out  # detached: requires_grad and hooks are dropped on purpose


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,  # torch < 1.0 spelling; same leading arguments
    ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


class _TensorUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}") from None


def load_pickled_tensor(path: str | Path, *, what: str = "a pickled tensor"):
    """The torch.Tensor stored in `path` (plain pickle of a tensor, or a torch.save file holding one).

    Raises DataError naming the path for a missing, unreadable or unsafe file or a non-tensor payload."""
    import zipfile

    import torch

    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: no such file (expected {what})")
    try:
        if zipfile.is_zipfile(file):
            value = torch.load(file, map_location="cpu", weights_only=True)
        else:
            with open(file, "rb") as handle:
                value = _TensorUnpickler(handle).load()
    except Exception as err:  # refused global, truncated or foreign file: one line, no traceback
        text = " ".join(str(err).split())[:160]
        raise DataError(f"{file}: not readable as {what} ({type(err).__name__}: {text})") from None
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{file}: expected {what}, found a {type(value).__name__}")
    return value


__all__ = ["load_pickled_tensor"]
