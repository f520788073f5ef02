"""Recipes: TOML files -> the typed configs of the components that a task builds.

A recipe is just tables, one per component: `[model]`, `[data]`, `[train]`, `[eval]`,
`[bench]` ... Each table maps 1:1 onto a pydantic config that lives next to the code it
configures. Precedence: the config's defaults < the recipe file < `key.sub=value`
overrides on the command line. Unknown tables or keys and wrong types are errors that
name the file and the key. The task (which tables exist) comes from the command that runs
the recipe, or from the recipe's folder `recipes/<task>/` for `vsuite recipes validate`.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecipeError

# task -> {table: "module:ConfigClass"}; imported lazily so listing recipes stays fast.
TASK_TABLES: dict[str, dict[str, str]] = {
    "bench-kernels": {"bench": "vsuite.bench.config:BenchConfig"},
    "pretrain": {"model": "vsuite.tasks.pretrain:LMModelConfig", "data": "vsuite.data.text:TextDataConfig",
                 "train": "vsuite.train.config:TrainConfig", "eval": "vsuite.tasks.pretrain:PretrainEvalConfig"},
    "eval-lm": {"eval": "vsuite.tasks.eval_lm:EvalLMConfig"},
    "finetune-classify": {"task": "vsuite.tasks.finetune:FinetuneTaskConfig",
                          "model": "vsuite.tasks.finetune_classify:ClassifyModelConfig",
                          "data": "vsuite.data.video_classification:VideoClassificationDataConfig",
                          "train": "vsuite.train.config:TrainConfig",
                          "eval": "vsuite.tasks.finetune_classify:ClassifyEvalConfig"},
    "finetune-caption": {"task": "vsuite.tasks.finetune:FinetuneTaskConfig",
                         "model": "vsuite.tasks.finetune_caption:CaptionModelConfig",
                         "data": "vsuite.tasks.finetune_caption:CaptionDataConfig",
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


def task_tables(task: str) -> dict[str, Any]:
    if task not in TASK_TABLES:
        raise RecipeError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASK_TABLES))}")
    return {table: _config_class(spec) for table, spec in TASK_TABLES[task].items()}


def parse_value(text: str) -> Any:
    """A TOML literal (3e-4, true, [1, 2], "x"); anything else is taken as a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Set `table.key.sub=value` items into a nested dict (a copy)."""
    merged = _deepcopy(raw)
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or len(parts) < 2 or not all(parts):
            raise RecipeError(f"override {item!r} must look like table.key=value (e.g. train.lr=3e-4)")
        node = merged
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {item!r}: {part!r} is a value, not a table")
        node[parts[-1]] = parse_value(value.strip())
    return merged


def _deepcopy(d: dict) -> dict:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in d.items()}


@dataclass
class Recipe:
    """The resolved configs of one task, by table name (`recipe.train`, `recipe["model"]`)."""

    task: str
    tables: dict[str, Any]
    source: str = "<defaults>"
    overrides: list[str] = field(default_factory=list)

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
        return header + "\n" + tomli_w.dumps(self.to_dict())

    def write(self, path: Path) -> Path:
        """Write the resolved recipe atomically (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_toml())
        os.replace(tmp, path)
        return path


def _format_validation(where: str, table: str, err) -> str:
    msgs = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        msgs.append(f"[{table}] {key}: {msg}")
    return f"{where}: " + "; ".join(msgs)


def build_recipe(task: str, raw: dict, source: str = "<defaults>", overrides: list[str] | None = None) -> Recipe:
    """Validate a nested dict against the task's tables."""
    from pydantic import ValidationError

    overrides = list(overrides or [])
    raw = apply_overrides(raw, overrides)
    task = resolve_kind(task, raw, source)
    classes = task_tables(task)
    unknown = sorted(set(raw) - set(classes))
    if unknown:
        raise RecipeError(f"{source}: unknown table(s) {', '.join(f'[{u}]' for u in unknown)} for task {task!r}; "
                          f"allowed: {', '.join(f'[{t}]' for t in classes)}")
    tables = {}
    for table, cls in classes.items():
        value = raw.get(table, {})
        if not isinstance(value, dict):
            raise RecipeError(f"{source}: {table!r} must be a table [{table}], got a value")
        try:
            tables[table] = cls.model_validate(value)
        except ValidationError as err:
            raise RecipeError(_format_validation(source, table, err)) from None
    return Recipe(task, tables, source, overrides)


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


def load_recipe(ref: str | Path | None, task: str, overrides: list[str] | None = None) -> Recipe:
    """Read a recipe file (or only defaults when `ref` is None) and apply overrides."""
    if ref is None:
        return build_recipe(task, {}, "<defaults>", overrides)
    path = find_recipe(str(ref))
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise RecipeError(f"{path}: not valid TOML ({err})") from None
    except OSError as err:
        raise RecipeError(f"{path}: cannot read ({err.strerror})") from None
    return build_recipe(task, raw, str(path), overrides)


def task_of(path: Path) -> str:
    """A shipped recipe's task is the name of its folder."""
    task = Path(path).resolve().parent.name
    if task not in TASK_TABLES and task not in KIND_TASKS:
        raise RecipeError(f"{path}: cannot tell its task from folder {task!r}; pass --task "
                          f"({', '.join(sorted(TASK_TABLES))})")
    return task
