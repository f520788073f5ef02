"""Model ids and local paths -> a folder of files; checkpoint weights in and out.

  resolve_model_dir(ref)   local folder as is, or a Hub id through the Hugging Face cache (offline aware)
  load_state_dict(folder)  model.safetensors, sharded safetensors, pytorch_model.bin or sharded .bin
  save_model(model, dir)   config.json + safetensors (sharded above max_shard_size), written atomically
  quiet_loading()          no "Loading weights" bars (and, if asked, no warnings) from transformers on stderr
  register_auto_classes_lazily()  lets `import vsuite` register the models with transformers' Auto
                           classes without importing torch (called from vsuite/__init__.py)

Importing this module is cheap (standard library only): torch, safetensors and huggingface_hub are
imported inside the functions. `.bin` files are read with torch.load(weights_only=True) only: a
pickle that holds anything but tensors and plain containers is refused, never executed.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import json
import os
import shutil
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

from vsuite.errors import DataError, ModelNotFoundError

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"

# What a model folder needs: config, weight indexes, tokenizer files. Weights are fetched separately
# (safetensors first, .bin only when the repo has no safetensors) so a repo with both costs one copy.
_META_PATTERNS = ["*.json", "tokenizer*", "*.model", "*.tiktoken", "vocab.txt", "merges.txt"]


def quiet_loading(errors_only: bool = False) -> None:
    """No "Loading weights" progress bar from transformers on stderr (the commands print their own lines);
    errors_only: its warnings too (third-party checkpoints whose unused keys it would list)."""
    from transformers.utils import logging as hf_logging

    if errors_only:
        hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


# ----------------------------------------------------------------------------- ids and paths


def _looks_local(ref: str) -> bool:
    """A path, not a Hub id: absolute, ~ or . prefixed, a backslash, or more than one '/' ('org/name' is an id)."""
    return (
        ref.startswith((".", "~", "/", os.sep))
        or (os.altsep is not None and os.altsep != "/" and os.altsep in ref)
        or (os.sep != "/" and os.sep in ref)
        or ref.count("/") > 1
        or ref.endswith("/")
    )


def _offline_message(ref: str, flag: str = "--model") -> str:
    """One line: what is missing, and both ways out (the `hf` CLI, which replaced `huggingface-cli`, or a folder)."""
    return (f"{ref} is not in the local Hugging Face cache and the hub is unreachable (offline); on a machine with "
            f"network run `hf download {ref} --local-dir DIR`, copy DIR here and pass `{flag} DIR` "
            f"(or copy that machine's Hugging Face cache, ~/.cache/huggingface)")


def resolve_model_dir(ref: str | os.PathLike, *, revision: str | None = None, flag: str = "--model") -> Path:
    """A model reference -> a local folder holding config.json and the weights.

    An existing folder is used as it is. A path that does not exist raises ModelNotFoundError. Anything
    else is a Hub id ("name" or "org/name"), fetched through the shared cache (HF_HOME/HF_HUB_CACHE);
    with HF_HUB_OFFLINE=1 or no network only the cache is used. `flag` is the option that took `ref`
    (e.g. "--asr-model"): the offline error tells the user to pass a local folder with it.
    """
    text = os.fspath(ref)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ModelNotFoundError(f"no model folder at {path} (it is a file; pass the folder that holds config.json)")
    if isinstance(ref, os.PathLike) or _looks_local(text):
        raise ModelNotFoundError(f"no model folder at {path}")

    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        raise ModelNotFoundError(f"no model folder at {path}, and {text!r} is not a Hugging Face Hub id either"
                                 ) from None
    folder = Path(_snapshot(text, revision, _META_PATTERNS + ["*.safetensors"], flag))
    if not any(folder.glob("*.safetensors")):
        folder = Path(_snapshot(text, revision, _META_PATTERNS + ["*.bin"], flag))
    return folder


def _snapshot(repo_id: str, revision: str | None, patterns: list[str], flag: str = "--model") -> str:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:  # HF_HUB_OFFLINE is read when huggingface_hub is imported; offline, only the cache is looked at
        return snapshot_download(repo_id, revision=revision, allow_patterns=patterns,
                                 local_files_only=bool(constants.HF_HUB_OFFLINE))
    except GatedRepoError:
        raise ModelNotFoundError(f"{repo_id} is gated on the Hugging Face Hub: accept its terms on the model page "
                                 "and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise ModelNotFoundError(f"{repo_id} is not a model on the Hugging Face Hub (or it is private: log in with "
                                 "hf auth login)") from None
    except RevisionNotFoundError:
        raise ModelNotFoundError(f"{repo_id} has no revision {revision!r} on the Hugging Face Hub") from None
    except IncompleteSnapshotError:
        raise ModelNotFoundError(f"the cached copy of {repo_id} is incomplete and the hub is unreachable (offline); "
                                 f"finish the download on a machine with network (hf download {repo_id}) or pass "
                                 f"`{flag} DIR` with a local model folder") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ModelNotFoundError(_offline_message(repo_id, flag)) from None
    except HfHubHTTPError as err:
        raise ModelNotFoundError(f"the Hugging Face Hub refused {repo_id}: {str(err).splitlines()[0]}") from None
    except OSError:  # connection errors that huggingface_hub did not turn into LocalEntryNotFoundError
        raise ModelNotFoundError(_offline_message(repo_id, flag)) from None


# ----------------------------------------------------------------------------- weights in


def weight_files(folder: str | os.PathLike) -> list[Path]:
    """The weight files of a checkpoint folder, safetensors preferred; shards in index order."""
    return _layout(Path(folder))[0]


def _layout(folder: Path) -> tuple[list[Path], Path | None]:
    """(weight files, shard index or None)."""
    for single, index in ((SAFETENSORS, SAFETENSORS_INDEX), (BIN, BIN_INDEX)):
        if (folder / single).is_file():
            return [folder / single], None
        if (folder / index).is_file():
            shards = list(dict.fromkeys(_read_index(folder / index).values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise ModelNotFoundError(f"{folder / index} lists shards that are missing: {', '.join(missing)}")
            return [folder / s for s in shards], folder / index
    raise ModelNotFoundError(f"no weights in {folder} (expected {SAFETENSORS}, {SAFETENSORS_INDEX}, {BIN} "
                             f"or {BIN_INDEX})")


def _read_index(path: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"cannot read the shard index {path}: {err}") from None
    if not isinstance(weight_map, dict):
        raise DataError(f"the shard index {path} has no weight_map object")
    return weight_map


def load_state_dict(folder: str | os.PathLike) -> dict:
    """All tensors of a checkpoint folder on the CPU, {name: tensor}, whatever its file layout."""
    files, index = _layout(Path(folder))
    state = {}
    for file in files:
        state.update(_load_file(file))
    if index is not None and (absent := set(_read_index(index)) - set(state)):
        raise DataError(f"{index} lists tensors that no shard holds, e.g. {sorted(absent)[0]}")
    return state


def _load_file(file: Path) -> dict:
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(file), device="cpu")
        except Exception as err:  # SafetensorError, OSError: a truncated or foreign file
            raise DataError(f"cannot read {file}: {err}") from None
    import pickle

    import torch

    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"refusing to load {file}: it holds pickled Python objects besides tensors, and .bin files "
                        "are only read with weights_only=True; convert it to safetensors where you trust it") from None
    except Exception as err:  # truncated zip, not a torch file
        raise DataError(f"cannot read {file}: {err}".splitlines()[0]) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{file} is not a flat state dict of tensors")
    return dict(state)


# ----------------------------------------------------------------------------- weights out


def save_model(model, folder: str | os.PathLike, *, max_shard_size: str | int = "5GB",
               extra_files: Mapping[str, str | bytes] | None = None) -> Path:
    """Write `model.save_pretrained` output (config.json + safetensors) and `extra_files` atomically.

    Everything goes to a fresh folder beside `folder`, which is then renamed into place; an existing
    `folder` is replaced only after the new one is complete, so a crash never leaves a half-written
    checkpoint under the final name (nor destroys the one being loaded from).
    """
    folder = Path(folder).expanduser()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.urandom(4).hex()}"
    tmp.mkdir()  # honours the umask, unlike mkdtemp's 0o700
    try:
        model.save_pretrained(tmp, max_shard_size=max_shard_size)
        for name, content in (extra_files or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
        file_mode = tmp.stat().st_mode & 0o666  # some writers create 0o600 files: give them the umask's mode
        for file in tmp.rglob("*"):
            if file.is_file():
                file.chmod(file_mode)
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{os.urandom(4).hex()}"
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


# ----------------------------------------------------------------------------- Auto-class registration

_AUTO_MODELING = "transformers.models.auto.modeling_auto"


def _register_models() -> None:
    try:
        importlib.import_module("vsuite.models")  # registers every family with AutoConfig / AutoModel*
    except Exception as err:  # never break the user's transformers import
        warnings.warn(f"vsuite's models were not registered with transformers' Auto classes ({err}); "
                      "`import vsuite.models` to register them", stacklevel=3)


class _RegisterAfterAutoImport(importlib.abc.MetaPathFinder):
    """One-shot import hook: once transformers' Auto model classes are imported, import vsuite.models."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _AUTO_MODELING:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        sys.meta_path.remove(self)
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_models()

        spec.loader.exec_module = exec_then_register
        return spec


def register_auto_classes_lazily() -> None:
    """Make `AutoModelForCausalLM.from_pretrained(folder)` know vsuite's model types, without importing torch now.

    transformers' Auto classes import torch, so registering at `import vsuite` would make the CLI heavy.
    Instead: if transformers' Auto model classes are already imported, register now; otherwise register
    right after they are (an import hook on transformers.models.auto.modeling_auto). AutoConfig alone
    (without any AutoModel*) does not trigger it: `import vsuite.models` for that.
    """
    if _AUTO_MODELING in sys.modules:
        _register_models()
    elif not any(isinstance(f, _RegisterAfterAutoImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterAutoImport())


__all__ = ["load_state_dict", "register_auto_classes_lazily", "resolve_model_dir", "save_model", "weight_files"]
