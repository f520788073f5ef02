"""The `vsuite` command line: parses arguments, loads the recipe, calls one task function.

Thin on purpose: every command imports its task module (and with it torch) only when it
runs, so `vsuite --help` and shell completion stay fast. Errors are VsuiteError
subclasses; `main` prints them as one line and exits with their documented code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, UsageError, VsuiteError

EPILOG = "Exit codes: " + "; ".join(f"{code} {text.split(':')[0]}" for code, text in EXIT_CODES.items())

app = typer.Typer(
    name="vsuite",
    help="Efficient sequence models and audio-visual video understanding.",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
recipes_app = typer.Typer(help="List, show and validate recipes.", no_args_is_help=True)
app.add_typer(recipes_app, name="recipes")

_state = {"debug": os.environ.get("VSUITE_DEBUG") == "1"}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vsuite {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    if debug:
        _state["debug"] = True


# ----------------------------------------------------------------------------- bench-kernels
def _parse_seqs(values: list[str]) -> list[int]:
    seqs = []
    for value in values:
        for part in value.split(","):
            try:
                seqs.append(int(part))
            except ValueError:
                raise UsageError(f"--seq takes integers (e.g. --seq 4096 or --seq 1024,4096), got {part!r}") from None
    bad = [n for n in seqs if n < 1]
    if bad:
        raise UsageError(f"--seq must be positive, got {bad[0]}")
    return seqs


@app.command("bench-kernels")
def bench_kernels(
    seq: Annotated[Optional[list[str]], typer.Option("--seq", help="Sequence length(s); repeat or comma-separate.")] = None,
    batch: Annotated[Optional[int], typer.Option(help="Batch size B.")] = None,
    heads: Annotated[Optional[int], typer.Option(help="Heads H.")] = None,
    dim: Annotated[Optional[int], typer.Option(help="Head dim D.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="auto | float32 | float16 | bfloat16.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="fwd | bwd | fwdbwd.")] = None,
    impl: Annotated[Optional[list[str]], typer.Option("--impl", help="Implementation(s) to run (repeat); default all.")] = None,
    baseline: Annotated[Optional[str], typer.Option(help="Implementation the speedup column compares with.")] = None,
    budget: Annotated[Optional[float], typer.Option(help="Seconds one timed call may take; slower calls are estimated.")] = None,
    repeats: Annotated[Optional[int], typer.Option(help="Timed calls per point (median reported).")] = None,
    check: Annotated[Optional[bool], typer.Option("--check/--no-check", help="Check each implementation against the reference first.")] = None,
    recipe: Annotated[Optional[str], typer.Option(help="A bench-kernels recipe (path or name); flags override it.")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the results as JSON to FILE ('-' for stdout).")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a log-log plot of time against sequence length (PNG).")] = None,
    list_impls: Annotated[bool, typer.Option("--list", help="List the registered implementations and exit.")] = False,
) -> None:
    """Time and check the sequence-mixing kernels (Lightning Attention, SDPA, Toeplitz)."""
    flags = {"seq": _parse_seqs(seq) if seq else None, "batch": batch, "heads": heads, "dim": dim, "dtype": dtype,
             "device": device, "mode": mode, "impl": impl, "baseline": baseline, "budget": budget,
             "repeats": repeats, "check": check}
    overrides = [f"bench.{k}={_toml(v)}" for k, v in flags.items() if v is not None]
    from .recipes import load_recipe
    from .tasks import bench_kernels as task

    if list_impls:
        task.list_implementations()
        return
    config = load_recipe(recipe, "bench-kernels", overrides)
    task.run(config.bench, json_path=json_out, plot_path=plot)


def _toml(value) -> str:
    """A python value as a TOML literal for the override mechanism."""
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


# ----------------------------------------------------------------------------- recipes
@recipes_app.command("ls")
def recipes_ls(as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False) -> None:
    """List the shipped recipes."""
    from .console import out
    from .recipes import list_recipes

    rows = [{"task": t, "name": n, "path": str(p)} for t, n, p in list_recipes()]
    if as_json:
        out(rows)
        return
    from rich.table import Table

    table = Table("task", "name", "path", box=None)
    for r in rows:
        table.add_row(r["task"], r["name"], r["path"])
    out(table)


@recipes_app.command("cat")
def recipes_cat(
    name: Annotated[str, typer.Argument(help="Recipe path or name (task/name).")],
    resolved: Annotated[bool, typer.Option(help="Print with every default filled in.")] = False,
    overrides: Annotated[Optional[list[str]], typer.Argument(help="table.key=value overrides (with --resolved).")] = None,
) -> None:
    """Print a recipe."""
    from .recipes import find_recipe, load_recipe, task_of

    path = find_recipe(name)
    if resolved or overrides:
        typer.echo(load_recipe(path, task_of(path), overrides or []).to_toml(), nl=False)
    else:
        typer.echo(path.read_text(), nl=False)


@recipes_app.command("validate")
def recipes_validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Recipe files; default: every shipped recipe.")] = None,
    task: Annotated[Optional[str], typer.Option(help="Task of the files (default: their folder name).")] = None,
) -> None:
    """Check recipes: every table and key known, every value of the right type."""
    from .console import log
    from .errors import RecipeError
    from .recipes import list_recipes, load_recipe, task_of

    files = list(paths) if paths else [p for _, _, p in list_recipes()]
    failures = []
    for path in files:
        try:
            load_recipe(path, task or task_of(path))
            log(f"ok    {path}")
        except RecipeError as err:
            failures.append(str(err))
            log(f"FAIL  {err}")
    if failures:
        raise RecipeError(f"{len(failures)} of {len(files)} recipe(s) invalid (see above)")
    log(f"{len(files)} recipe(s) valid")


# ----------------------------------------------------------------------------- entry point
def run(argv: list[str] | None = None) -> int:
    """Run the app and turn errors into one-line messages and exit codes."""
    from .console import error

    args = argv if argv is not None else sys.argv[1:]
    _state["debug"] = os.environ.get("VSUITE_DEBUG") == "1" or "--debug" in args
    debug = _state["debug"]
    try:
        app(args=argv, prog_name="vsuite", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except VsuiteError as err:
        if debug:
            raise
        error(str(err))
        return err.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as err:  # a bug: one line unless --debug
        if debug:
            raise
        error(f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)")
        return EXIT_INTERNAL
    return 0


def main() -> None:
    sys.exit(run())
