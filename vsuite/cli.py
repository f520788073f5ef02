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


# ----------------------------------------------------------------------------- pretrain
@app.command("pretrain")
def pretrain(
    recipe: Annotated[str, typer.Argument(help="A pretrain recipe: path or name (e.g. pretrain/tnl-tiny-cpu).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="table.key=value overrides, e.g. train.steps=20.")] = None,
    resume: Annotated[str, typer.Option(help="auto (newest complete checkpoint in the run folder, if any) | none | PATH.")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default: train.out_dir, else runs/<recipe>).")] = None,
) -> None:
    """Train a language model (TransNormerLLM, TNN, ...) from a recipe; under torchrun on several processes.

    Checkpoints: OUT/checkpoints/step-XXXXXXXX (Hugging Face folder + training state); metrics: OUT/metrics.jsonl.
    SIGTERM or SIGUSR1 saves a checkpoint and exits 75; rerun with --resume auto to continue.
    """
    from .recipes import load_recipe
    from .tasks import pretrain as task

    items = list(overrides or [])
    if out is not None:
        items.append(f"train.out_dir={_toml(str(out))}")
    config = load_recipe(recipe, "pretrain", items)
    task.run(config, resume=resume)


# ----------------------------------------------------------------------------- eval
eval_app = typer.Typer(help="Score models and prediction files on the benchmarks.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


@eval_app.command("lm")
def eval_lm(
    model: Annotated[Optional[str], typer.Option(help="Model folder, run folder (newest checkpoint) or Hub id.")] = None,
    data: Annotated[Optional[str], typer.Option(help="Text file (or folder, glob, JSONL) to score.")] = None,
    seq: Annotated[Optional[list[str]], typer.Option("--seq", help="Evaluation length(s) N; repeat or comma-separate.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Windows per forward pass.")] = None,
    tokenizer: Annotated[Optional[str], typer.Option(help="Tokenizer (default: the model folder's).")] = None,
    max_tokens: Annotated[Optional[int], typer.Option(help="Score only the first N tokens.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda | cuda:N.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="auto | float32 | bfloat16.")] = None,
    recipe: Annotated[Optional[str], typer.Option(help="An eval-lm recipe (path or name); flags override it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of the table.")] = False,
) -> None:
    """Perplexity of a causal LM on a text, one row per evaluation length (the extrapolation table).

    Non-overlapping windows of N tokens: every token is predicted once, from the context inside its window.
    """
    flags = {"model": model, "data": data, "seq": _parse_seqs(seq) if seq else None, "batch_size": batch_size,
             "tokenizer": tokenizer, "max_tokens": max_tokens, "device": device, "dtype": dtype}
    overrides = [f"eval.{k}={_toml(v)}" for k, v in flags.items() if v is not None]
    from .recipes import load_recipe
    from .tasks import eval_lm as task

    config = load_recipe(recipe, "eval-lm", overrides)
    task.run(config.eval, as_json=as_json)


# ----------------------------------------------------------------------------- finetune, classify, eval classify
@app.command("finetune")
def finetune(
    recipe: Annotated[str, typer.Argument(help="A finetune recipe: path or name (e.g. finetune/lvt-tiny-cpu).")],
    overrides: Annotated[Optional[list[str]], typer.Argument(help="table.key=value overrides, e.g. train.steps=20.")] = None,
    resume: Annotated[str, typer.Option(help="auto (newest complete checkpoint in the run folder, if any) | none | PATH.")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", help="Run folder (default: train.out_dir, else runs/<recipe>).")] = None,
) -> None:
    """Train a video model on its dataset (the recipe's task kind picks what: classify, ...).

    Checkpoints: OUT/checkpoints/step-XXXXXXXX (Hugging Face folder + training state); the final one's path goes
    to stdout and loads with `vsuite classify --model`. SIGTERM or SIGUSR1 saves a checkpoint and exits 75.
    """
    from .recipes import load_recipe
    from .tasks import finetune as task

    items = list(overrides or [])
    if out is not None:
        items.append(f"train.out_dir={_toml(str(out))}")
    config = load_recipe(recipe, "finetune", items)
    task.run(config, resume=resume)


_BACKEND_HELP = "Video decoder: auto (decord if installed, else PyAV) | decord | pyav."


@app.command("classify")
def classify(
    videos: Annotated[list[str], typer.Argument(help="Video file(s).")],
    model: Annotated[str, typer.Option(help="Model folder, run folder (newest checkpoint) or Hub id.")],
    top_k: Annotated[int, typer.Option("--top-k", help="Classes to print per video.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, with the sampling records.")] = False,
    clips: Annotated[int, typer.Option(help="Temporal clips per video (views are averaged).")] = 1,
    crops: Annotated[int, typer.Option(help="Spatial crops per clip (1 centre, 3 along the long side).")] = 1,
    video_backend: Annotated[str, typer.Option("--video-backend", help=_BACKEND_HELP)] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
) -> None:
    """Action recognition: the top-k classes of each video with their probabilities (LVT)."""
    from .tasks import classify as task

    task.run(videos, model=model, top_k=top_k, as_json=as_json, clips=clips, crops=crops, backend=video_backend,
             device=device)


@app.command("caption")
def caption(
    video: Annotated[str, typer.Argument(help="Video file.")],
    model: Annotated[str, typer.Option(help="Video-language model: folder or Hub id (SmolVLM2, Qwen2-VL/2.5-VL, LLaVA-OneVision).")] = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
    dense: Annotated[bool, typer.Option("--dense/--whole", help="Caption every scene with its timestamps (Vript), or the whole video at once (Vriptor's whole-video prompt).")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: VIDEO's folder/<name>.caption).")] = None,
    title: Annotated[str, typer.Option(help="Video title given to the model, as Vript does.")] = "",
    voiceover: Annotated[bool, typer.Option("--voiceover", help="Transcribe the voice-over with Whisper and put it in the prompts.")] = False,
    asr_model: Annotated[str, typer.Option("--asr-model", help="Whisper model (folder or Hub id) for --voiceover.")] = "openai/whisper-small",
    storyboard: Annotated[Optional[Path], typer.Option(help="Also write a self-contained HTML storyboard here.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Scenes per generate call.")] = 4,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens generated per scene.")] = 256,
    frames: Annotated[int, typer.Option(help="Frames sampled uniformly in whole-video mode.")] = 64,
    threshold: Annotated[float, typer.Option(help="Scene-cut threshold (PySceneDetect's content threshold).")] = 27.0,
    min_scene_len: Annotated[int, typer.Option("--min-scene-len", help="Shortest scene, in frames.")] = 15,
    video_backend: Annotated[str, typer.Option("--video-backend", help=_BACKEND_HELP)] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16.")] = "auto",
) -> None:
    """Dense, script-like captions of a long video (Vript/Vriptor): caption.json, script.md, SRT, WebVTT.

    Finished scenes are cached in OUT/scenes/, so an interrupted run resumes. The output folder goes to stdout.
    """
    from .tasks import caption as task

    opts = task.CaptionOptions(model=model, out=out, dense=dense, title=title, voiceover=voiceover,
                               asr_model=asr_model, device=device, dtype=dtype, batch_size=batch_size,
                               max_new_tokens=max_new_tokens, frames=frames, threshold=threshold,
                               min_scene_len=min_scene_len, storyboard=storyboard, video_backend=video_backend)
    folder = task.run(video, opts)
    sys.stdout.write(f"{folder}\n")


@eval_app.command("classify")
def eval_classify(
    model: Annotated[str, typer.Option(help="Model folder, run folder (newest checkpoint) or Hub id.")],
    data: Annotated[str, typer.Option(help="Labelled list: CSV (path,label / youtube_id,label,...), `path label` lines or SSv2 JSON.")],
    root: Annotated[Optional[str], typer.Option(help="Videos root (default: the list's folder).")] = None,
    labels: Annotated[Optional[str], typer.Option(help="Label map (JSON {name: id} or [names], or one name per line).")] = None,
    clips: Annotated[int, typer.Option(help="Temporal clips per video.")] = 1,
    crops: Annotated[int, typer.Option(help="Spatial crops per clip.")] = 1,
    video_backend: Annotated[str, typer.Option("--video-backend", help=_BACKEND_HELP)] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    limit: Annotated[int, typer.Option(help="Score only the first N videos (0 = all).")] = 0,
    predictions: Annotated[Optional[Path], typer.Option(help="Also write one JSON line per video to FILE.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of the table.")] = False,
) -> None:
    """Top-1 / top-5 accuracy of a video classifier with multi-view testing (softmax averaged over views)."""
    from .tasks import eval_classify as task

    task.run(model=model, data=data, root=root, labels=labels, clips=clips, crops=crops, backend=video_backend,
             device=device, limit=limit, as_json=as_json, predictions=predictions)


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
