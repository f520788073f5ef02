"""Recipes: TOML files -> the typed configs of the components that a task builds.

A recipe is just tables, one per component: `[model]`, `[data]`, `[train]`, `[eval]`,
`[bench]` ... Each table maps 1:1 onto a pydantic config that lives next to the code it
configures. Precedence: the config's defaults < the recipe file < `key.sub=value`
overrides on the command line < the command's own flags (`--heads 4`). Unknown tables or keys
and wrong types are errors that name where the bad value came from: the file (exit 3), the
`key=value` override (exit 3), or the flag (a UsageError, exit 2). Flags arrive as typed values
(`flags={"bench.heads": ("--heads", 4)}`), never as TOML text, so pydantic checks them once.
The task (which tables exist) comes from the command that runs the recipe, or from the
recipe's folder `recipes/<task>/` for `vsuite recipes validate`.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecipeError, UsageError

# "table.key" -> (flag as typed on the command line, its typed value), e.g. {"bench.heads": ("--heads", 4)}
Flags = dict[str, tuple[str, Any]]

# task -> {table: "module:ConfigClass"}; imported lazily so listing recipes stays fast.
TASK_TABLES: dict[str, dict[str, str]] = {
    "bench-kernels": {"bench": "vsuite.bench.config:BenchConfig"},
    "pretrain": {"model": "vsuite.models.lm_config:LMModelConfig", "data": "vsuite.data.text:TextDataConfig",
                 "train": "vsuite.train.config:TrainConfig", "eval": "vsuite.metrics.lm:PretrainEvalConfig"},
    "eval-lm": {"eval": "vsuite.metrics.lm:EvalLMConfig"},
    "finetune-classify": {"task": "vsuite.train.config:FinetuneTaskConfig",
                          "model": "vsuite.models.video_classifier:ClassifyModelConfig",
                          "data": "vsuite.data.video_classification:VideoClassificationDataConfig",
                          "train": "vsuite.train.config:TrainConfig",
                          "eval": "vsuite.metrics.topk:ClassifyEvalConfig"},
    "finetune-caption": {"task": "vsuite.train.config:FinetuneTaskConfig",
                         "model": "vsuite.models.vlm_config:CaptionModelConfig",
                         "data": "vsuite.data.vript:CaptionDataConfig",
                         "train": "vsuite.train.config:TrainConfig"},
    "finetune-describe": {"task": "vsuite.train.config:FinetuneTaskConfig",
                          "model": "vsuite.models.avlformer.describe_config:DescribeModelConfig",
                          "data": "vsuite.data.favdbench:FAVDBenchConfig",
                          "train": "vsuite.train.config:TrainConfig"},
    "finetune-segment": {"task": "vsuite.train.config:FinetuneTaskConfig",
                         "model": "vsuite.models.segmenter:SegmentModelConfig",
                         "data": "vsuite.data.avsbench:AVSBenchConfig",
                         "train": "vsuite.train.config:TrainConfig"},
}

# Commands whose recipes come in kinds: a recipe's `[task] kind = "K"` selects the tables of "<command>-K"
# (e.g. `vsuite finetune` with kind "classify" -> "finetune-classify"). Shipped under recipes/<command>/.
KIND_TASKS = ("finetune",)


def recipes_dir() -> Path:
    """The shipped recipes: $VSUITE_RECIPES, else recipes/ beside the package."""
    env = os.environ.get("VSUITE_RECIPES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "recipes"


def list_recipes() -> list[tuple[str, str, Path]]:
    """(task, name, path) of every shipped recipe, sorted."""
    root = recipes_dir()
    return sorted((p.parent.name, p.stem, p) for p in root.glob("*/*.toml"))


def find_recipe(ref: str) -> Path:
    """A path to a TOML file, or a shipped recipe as `task/name` (or a unique `name`)."""
    path = Path(ref)
    if path.suffix == ".toml" and path.exists():
        return path
    stem = ref.removesuffix(".toml")
    matches = [p for task, name, p in list_recipes() if f"{task}/{name}" == stem or name == stem]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RecipeError(f"recipe name {ref!r} is ambiguous: {', '.join(str(m) for m in matches)}; use task/name")
    raise RecipeError(f"no recipe {ref!r}: give a .toml path or a name from `vsuite recipes ls`")


def _config_class(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


def task_specs(task: str) -> dict[str, str]:
    """{table: "module:ConfigClass"} of a task (nothing imported yet)."""
    if task not in TASK_TABLES:
        raise RecipeError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASK_TABLES))}")
    return TASK_TABLES[task]


def task_tables(task: str) -> dict[str, Any]:
    return {table: _config_class(spec) for table, spec in task_specs(task).items()}


def parse_value(text: str) -> Any:
    """A TOML literal (3e-4, true, [1, 2], "x"); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _override_key(item: str) -> tuple[list[str], str]:
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) < 2 or not all(parts):
        raise RecipeError(f"override {item!r} must look like table.key=value (e.g. train.lr=3e-4)")
    return parts, value


def _set_path(merged: dict, parts: list[str], value: Any, what: str) -> None:
    node = merged
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise RecipeError(f"{what}: {part!r} is a value, not a table")
    node[parts[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set `table.key.sub=value` items into a nested dict (a copy)."""
    merged = _deepcopy(raw)
    for item in overrides:
        parts, value = _override_key(item)
        _set_path(merged, parts, parse_value(value.strip()), f"override {item!r}")
    return merged


def _show(value: Any) -> str:
    """A flag's value as the user typed it (lists comma-joined, as --seq takes them)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


class _Origins:
    """Where each value came from (file, `key=value` override, flag), to name it in an error."""

    def __init__(self, source: str, overrides: list[str], flags: Flags, file_tables=()):
        self.source, self.file_tables = source, set(file_tables)
        self.overrides = [(tuple(_override_key(item)[0]), item) for item in overrides]
        self.flags = [(tuple(key.split(".")), flag, value) for key, (flag, value) in flags.items()]

    def of(self, path: tuple[str, ...]) -> tuple[str, str]:
        """("flag" | "override" | "file", label) of the value at `path` (table, key, ...)."""
        for fpath, flag, value in self.flags:  # flags are applied last: they win
            if path[: len(fpath)] == fpath:
                return "flag", f"{flag} {_show(value)}"
        for opath, item in reversed(self.overrides):  # the last override of a key is the one in effect
            if path[: len(opath)] == opath:
                return "override", f"override {item!r}"
        # an error on a table or a whole config (e.g. a cross-field check) that overrides or flags fed
        inside = [f"override {item!r}" for opath, item in self.overrides if opath[: len(path)] == path]
        inside += [f"{flag} {_show(value)}" for fpath, flag, value in self.flags if fpath[: len(path)] == path]
        if inside and (len(path) == 1 and path[0] not in self.file_tables or self.source == "<defaults>"):
            # a table only the command line filled: no file to blame
            return ("flag" if all(i.startswith("-") for i in inside) else "override"), ", ".join(inside)
        if inside:
            return "file", f"{self.source} with {', '.join(inside)}"
        return "file", self.source

    def validation_error(self, table: str, err) -> Exception:
        """A pydantic ValidationError -> UsageError naming the flag(s), else RecipeError naming file/override."""
        groups: dict[tuple[str, str], list[str]] = {}
        for e in err.errors():
            loc = tuple(str(p) for p in e["loc"])
            kind, label = self.of((table, *loc))
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"].removeprefix("Value error, ")
            text = msg if kind == "flag" else f"[{table}]{' ' + '.'.join(loc) if loc else ''}: {msg}"
            groups.setdefault((kind, label), []).append(text)
        flag_msgs = [f"{label}: {'; '.join(m)}" for (kind, label), m in groups.items() if kind == "flag"]
        if flag_msgs:  # the flag's own value is wrong: a usage error, fixed on the command line
            return UsageError("; ".join(flag_msgs))
        return RecipeError("; ".join(f"{label}: {'; '.join(m)}" for (_, label), m in groups.items()))


def _deepcopy(d: dict) -> dict:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


@dataclass
class Recipe:
    """The resolved configs of one task, by table name (`recipe.train`, `recipe["model"]`)."""

    task: str
    tables: dict[str, Any]
    source: str = "<defaults>"
    overrides: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # e.g. ["--heads 4"], as given on the command line

    def __getattr__(self, name: str):
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)

    def __getitem__(self, name: str):
        return self.tables[name]

    def to_dict(self) -> dict:
        return {name: cfg.model_dump(mode="json", exclude_none=True) for name, cfg in self.tables.items()}

    def to_toml(self) -> str:
        import tomli_w

        header = f"# vsuite {self.task} recipe resolved from {self.source}"
        if self.overrides:
            header += f" with overrides {' '.join(self.overrides)}"
        if self.flags:
            header += f" and flags {' '.join(self.flags)}"
        return header + "\n" + tomli_w.dumps(self.to_dict())

    def write(self, path: Path) -> Path:
        """Write the resolved recipe atomically (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_toml())
        os.replace(tmp, path)
        return path


def _table_hint(task: str) -> str:
    """What tables a recipe of `task` has, for errors about a file without them."""
    if task in KIND_TASKS:
        kinds = sorted(t[len(task) + 1:] for t in TASK_TABLES if t.startswith(task + "-"))
        return f"a {task} recipe starts with a [task] table (kind = {' or '.join(repr(k) for k in kinds)})"
    return f"a {task} recipe has the table(s) {', '.join(f'[{t}]' for t in TASK_TABLES.get(task, {}))}"


def build_recipe(task: str, raw: dict, source: str = "<defaults>", overrides: list[str] | None = None,
                 flags: Flags | None = None) -> Recipe:
    """Validate a nested dict (+ overrides, + typed flag values) against the task's tables."""
    from pydantic import ValidationError

    overrides = list(overrides or [])
    flags = dict(flags or {})
    origins = _Origins(source, overrides, flags, raw)
    loose = [k for k, v in raw.items() if not isinstance(v, dict)]
    if loose:
        raise RecipeError(f"{source}: {loose[0]!r} is outside any table; {_table_hint(task)} and "
                          f"{loose[0]!r} belongs in one of them")
    raw = apply_overrides(raw, overrides)
    for key, (flag, value) in flags.items():
        _set_path(raw, key.split("."), value, flag)
    task = resolve_kind(task, raw, source)
    classes = task_specs(task)
    unknown = sorted(set(raw) - set(classes))
    if unknown:
        _, where = origins.of((unknown[0],))
        raise RecipeError(f"{where}: unknown table(s) {', '.join(f'[{u}]' for u in unknown)} for task {task!r}; "
                          f"allowed: {', '.join(f'[{t}]' for t in classes)}")
    tables = {}
    # [model] last, each class imported only when its table is checked: the model-table configs live in
    # vsuite.models (torch + transformers, seconds), so a typo in another table is reported at once
    for table, spec in sorted(classes.items(), key=lambda item: item[0] == "model"):
        value = raw.get(table, {})
        if not isinstance(value, dict):
            _, where = origins.of((table,))
            raise RecipeError(f"{where}: {table!r} must be a table [{table}], got a value")
        try:
            tables[table] = _config_class(spec).model_validate(value)
        except ValidationError as err:
            raise origins.validation_error(table, err) from None
    tables = {table: tables[table] for table in classes}
    return Recipe(task, tables, source, overrides, [f"{flag} {_show(v)}" for flag, v in flags.values()])


def resolve_kind(task: str, raw: dict, source: str = "<defaults>") -> str:
    """`finetune` + `[task] kind = "classify"` -> "finetune-classify"; other tasks unchanged."""
    if task not in KIND_TASKS:
        return task
    kinds = sorted(t[len(task) + 1:] for t in TASK_TABLES if t.startswith(task + "-"))
    table = raw.get("task")
    kind = table.get("kind") if isinstance(table, dict) else None
    if kind is None:
        raise RecipeError(f"{source}: a {task} recipe needs a [task] table with kind = one of "
                          f"{', '.join(repr(k) for k in kinds)}")
    if kind not in kinds:
        raise RecipeError(f"{source}: [task] kind {kind!r} is not one of {', '.join(repr(k) for k in kinds)}")
    return f"{task}-{kind}"


def load_recipe(ref: str | Path | None, task: str, overrides: list[str] | None = None,
                flags: Flags | None = None) -> Recipe:
    """Read a recipe file (or only defaults when `ref` is None), then apply overrides and typed flag values."""
    if ref is None:
        return build_recipe(task, {}, "<defaults>", overrides, flags)
    path = find_recipe(str(ref))
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{path}: not valid TOML ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    if not raw:  # an empty (or comments-only) file is a mistake, not "all defaults"
        raise RecipeError(f"{path}: no tables; {_table_hint(task)}")
    return build_recipe(task, raw, str(path), overrides, flags)


def task_of(path: Path) -> str:
    """A shipped recipe's task is the name of its folder."""
    task = Path(path).resolve().parent.name
    if task not in TASK_TABLES and task not in KIND_TASKS:
        raise RecipeError(f"{path}: cannot tell its task from folder {task!r}; pass --task "
                          f"({', '.join(sorted(TASK_TABLES))})")
    return task
