"""The `vsuite` command line: parses arguments, loads the recipe, calls one task function.

Thin on purpose: every command imports its task module (and with it torch) only when it
runs, so `vsuite --help` and shell completion stay fast. Every flag is checked first (the
pure checks below, then the recipe's typed configs), so a bad value is a one-line error in
well under a second, before torch is imported or any work starts. Errors are VsuiteError
subclasses; `run` prints them as one line and returns their documented code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .devices import check_device_spec, check_dtype_spec
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
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors (also accepted after the command).")] = False,
) -> None:
    if debug:
        _state["debug"] = True


# ----------------------------------------------------------------------------- flag checks
# Pure checks of values no config validates (the recipe-backed flags are validated by their typed
# config, through load_recipe(flags=...)). None means "not given".
VIDEO_BACKENDS = ("auto", "decord", "pyav")  # = vsuite.media.decode.BACKENDS (a test keeps them equal)


def _at_least(flag: str, value: int | float | None, low: int) -> None:
    if value is not None and value < low:
        raise UsageError(f"{flag} must be at least {low}, got {value}")


def _positive(flag: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{flag} must be greater than 0, got {value}")


def _one_of(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise UsageError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def _out_folder(flag: str, path: Path | None) -> None:
    """An output folder may exist (resume) or not (created); an existing file is a mistake."""
    if path is not None and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a folder; give a folder (it is created if missing)")


def _out_file(flag: str, path: Path | None) -> None:
    if path is not None and str(path) != "-" and path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")


def _parse_seqs(values: list[str] | None, flag: str = "--seq") -> list[int] | None:
    """`--seq 1024 --seq 4096,16384` -> [1024, 4096, 16384] (ranges are checked by the config)."""
    if not values:
        return None
    seqs = []
    for value in values:
        for part in value.split(","):
            try:
                seqs.append(int(part))
            except ValueError:
                raise UsageError(f"{flag} takes integers (e.g. {flag} 4096 or {flag} 1024,4096), got {part!r}") from None
    return seqs


def _flags(table: str, given: dict[str, tuple[str, object]]) -> dict[str, tuple[str, object]]:
    """{"heads": ("--heads", 4), "dim": ("--dim", None)} -> {"bench.heads": ("--heads", 4)} (given flags only)."""
    return {f"{table}.{key}": (flag, value) for key, (flag, value) in given.items() if value is not None}


# ----------------------------------------------------------------------------- bench-kernels
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
    if list_impls:
        from .tasks import bench_kernels as task

        task.list_implementations()
        return
    flags = _flags("bench", {
        "seq": ("--seq", _parse_seqs(seq)), "batch": ("--batch", batch), "heads": ("--heads", heads),
        "dim": ("--dim", dim), "mode": ("--mode", mode), "impl": ("--impl", impl), "baseline": ("--baseline", baseline),
        "budget": ("--budget", budget), "repeats": ("--repeats", repeats), "check": ("--check", check),
        "dtype": ("--dtype", dtype and check_dtype_spec(dtype)),
        "device": ("--device", device and check_device_spec(device)),
    })
    _out_file("--json", json_out)
    _out_file("--plot", plot)
    from .recipes import load_recipe

    config = load_recipe(recipe, "bench-kernels", flags=flags)  # bad flag values: exit 2 naming the flag
    from .tasks import bench_kernels as task

    task.run(config.bench, json_path=json_out, plot_path=plot)


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
    SIGTERM, SIGUSR1 or a file OUT/STOP saves a checkpoint and exits 75 (under torchrun: exit 0 and OUT/PREEMPTED);
    Ctrl-C saves and exits 130 (twice: at once, unsaved). Rerun with --resume auto to continue.
    """
    _out_folder("--out", out)
    from .recipes import load_recipe

    config = load_recipe(recipe, "pretrain", overrides or [], flags=_flags("train", {"out_dir": ("--out", out and str(out))}))
    from .tasks import pretrain as task

    task.run(config, resume=resume)


# ----------------------------------------------------------------------------- eval
_EVAL_OUT_HELP = "Folder for results.json + samples.jsonl (default: {default})."
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
    out: Annotated[Optional[Path], typer.Option("--out", help=_EVAL_OUT_HELP.format(default="runs/eval/lm-<model>-<data>"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json on stdout (the table goes to stderr).")] = False,
) -> None:
    """Perplexity of a causal LM on a text, one row per evaluation length (the extrapolation table).

    Non-overlapping windows of N tokens: every token is predicted once, from the context inside its window.
    Writes OUT/results.json and OUT/samples.jsonl (one line per length).
    """
    seqs = _parse_seqs(seq)
    _out_folder("--out", out)
    flags = _flags("eval", {
        "model": ("--model", model), "data": ("--data", data), "seq": ("--seq", seqs), "out": ("--out", out and str(out)),
        "batch_size": ("--batch-size", batch_size), "tokenizer": ("--tokenizer", tokenizer),
        "max_tokens": ("--max-tokens", max_tokens),
        "device": ("--device", device and check_device_spec(device)),
        "dtype": ("--dtype", dtype and check_dtype_spec(dtype, choices=("auto", "float32", "bfloat16"))),
    })
    from .recipes import load_recipe

    config = load_recipe(recipe, "eval-lm", flags=flags)  # bad flag values: exit 2 naming the flag
    from .tasks import eval_lm as task

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
    to stdout and loads with `vsuite classify --model`. SIGTERM or SIGUSR1 saves a checkpoint and exits 75
    (under torchrun: exit 0 and OUT/PREEMPTED); Ctrl-C saves and exits 130.
    """
    _out_folder("--out", out)
    from .recipes import load_recipe

    config = load_recipe(recipe, "finetune", overrides or [], flags=_flags("train", {"out_dir": ("--out", out and str(out))}))
    from .tasks import finetune as task

    task.run(config, resume=resume)


_BACKEND_HELP = "Video decoder: auto (decord if installed, else PyAV) | decord | pyav."


def _check_views(clips: int, crops: int, video_backend: str) -> None:
    _at_least("--clips", clips, 1)
    _at_least("--crops", crops, 1)
    _one_of("--video-backend", video_backend, VIDEO_BACKENDS)


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
    _at_least("--top-k", top_k, 1)
    _check_views(clips, crops, video_backend)
    device = check_device_spec(device)
    from .tasks import classify as task

    task.run(videos, model=model, top_k=top_k, as_json=as_json, clips=clips, crops=crops, backend=video_backend,
             device=device)


@app.command("caption")
def caption(
    video: Annotated[str, typer.Argument(help="Video file.")],
    model: Annotated[str, typer.Option(help="Video-language model: folder or Hub id (SmolVLM2, Qwen2-VL/2.5-VL, LLaVA-OneVision).")] = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct",
    dense: Annotated[Optional[bool], typer.Option("--dense/--whole", help="Scene-by-scene captions with timestamps (mode vriptor for a Vriptor-style checkpoint, else vript), or one whole-video caption. Default: the model's recorded mode, else --whole.")] = None,
    mode: Annotated[str, typer.Option(help="auto | vript (each detected scene, Vript's annotation prompt) | vriptor (whole video, 64 frames, Vriptor's 'scene by scene' instruction, split into scenes) | whole.")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: VIDEO's folder/<name>.caption).")] = None,
    title: Annotated[str, typer.Option(help="Video title given to the model, as Vript does.")] = "",
    voiceover: Annotated[bool, typer.Option("--voiceover", help="Transcribe the voice-over with Whisper and put it in the prompts.")] = False,
    asr_model: Annotated[str, typer.Option("--asr-model", help="Whisper model (folder or Hub id) for --voiceover.")] = "openai/whisper-small",
    storyboard: Annotated[Optional[Path], typer.Option(help="Also write a self-contained HTML storyboard here.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Scenes per generate call.")] = 4,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", help="Tokens generated per answer (default: 2048 in vriptor mode, 256 otherwise).")] = None,
    num_beams: Annotated[Optional[int], typer.Option("--num-beams", help="Beam width (default: 3 in vriptor mode, as Vriptor's demo; 1 otherwise).")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass (default: 0.9 in vriptor mode).")] = None,
    repetition_penalty: Annotated[Optional[float], typer.Option("--repetition-penalty", help="Repetition penalty (default: 1.5 in vriptor mode).")] = None,
    sample: Annotated[Optional[bool], typer.Option("--sample/--greedy", help="Sample while decoding (default: sampled beams in vriptor mode, greedy otherwise).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of sampled decoding.")] = 0,
    frames: Annotated[Optional[int], typer.Option(help="Frames sampled from the whole video in the whole and vriptor modes (default 64).")] = None,
    threshold: Annotated[float, typer.Option(help="Scene-cut threshold (PySceneDetect's content threshold).")] = 27.0,
    min_scene_len: Annotated[int, typer.Option("--min-scene-len", help="Shortest scene, in frames.")] = 15,
    video_backend: Annotated[str, typer.Option("--video-backend", help=_BACKEND_HELP)] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto (bf16 on GPU, fp32 on CPU) | float32 | bfloat16 | float16.")] = "auto",
) -> None:
    """Dense, script-like captions of a long video (Vript/Vriptor): caption.json, script.md, SRT, WebVTT.

    Finished scenes are cached in OUT/scenes/, so an interrupted run resumes. The output folder goes to stdout.
    """
    for flag, value in (("--batch-size", batch_size), ("--max-new-tokens", max_new_tokens), ("--frames", frames),
                        ("--min-scene-len", min_scene_len), ("--num-beams", num_beams)):
        _at_least(flag, value, 1)
    _positive("--threshold", threshold)
    _positive("--repetition-penalty", repetition_penalty)
    if top_p is not None and not 0 < top_p <= 1:
        raise UsageError(f"--top-p must be in (0, 1], got {top_p}")
    _one_of("--mode", mode, ("auto", "whole", "vript", "vriptor"))  # = caption.plan.MODES (a test keeps them equal)
    if mode == "whole" and dense or mode in ("vript", "vriptor") and dense is False:
        raise UsageError(f"--mode {mode} contradicts --{'dense' if dense else 'whole'}; drop one")
    _one_of("--video-backend", video_backend, VIDEO_BACKENDS)
    device, dtype = check_device_spec(device), check_dtype_spec(dtype)
    _out_folder("--out", out)
    _out_file("--storyboard", storyboard)
    from .tasks import caption as task

    opts = task.CaptionOptions(model=model, out=out, dense=dense, mode=mode, title=title, voiceover=voiceover,
                               asr_model=asr_model, device=device, dtype=dtype, batch_size=batch_size,
                               max_new_tokens=max_new_tokens, num_beams=num_beams, top_p=top_p,
                               repetition_penalty=repetition_penalty, do_sample=sample, seed=seed, frames=frames,
                               threshold=threshold, min_scene_len=min_scene_len, storyboard=storyboard,
                               video_backend=video_backend)
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
    out: Annotated[Optional[Path], typer.Option("--out", help=_EVAL_OUT_HELP.format(default="runs/eval/classify-<model>-<list>"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json on stdout (the table goes to stderr).")] = False,
) -> None:
    """Top-1 / top-5 accuracy of a video classifier with multi-view testing (softmax averaged over views).

    Writes OUT/results.json and OUT/samples.jsonl (one line per video).
    """
    _check_views(clips, crops, video_backend)
    _at_least("--limit", limit, 0)
    device = check_device_spec(device)
    _out_file("--predictions", predictions)
    _out_folder("--out", out)
    from .tasks import eval_classify as task

    task.run(model=model, data=data, root=root, labels=labels, clips=clips, crops=crops, backend=video_backend,
             device=device, limit=limit, as_json=as_json, predictions=predictions, out=out)


# ----------------------------------------------------------------------------- eval vript-hal / vript-rr / vript-ero
_VRIPT_DATA_HELP = "Folder with the official {name}_annotations.jsonl (a copy of Mutonix/Vript-{name}), or the file."
_VRIPT_PRED_HELP = "Predictions to score: the official CSV (id,pred[,gt,meta]) or JSON lines {\"id\", \"pred\"}."
_VRIPT_OUT_HELP = "Folder for results.json + samples.jsonl (default: PREDICTIONS' folder/<stem>.<benchmark>, or runs/eval/<benchmark>-<model>)."
_VRIPT_COMPAT_HELP = "Reproduce the official scorer bug for bug (see the README) instead of the corrected scores."
_VRIPT_MODEL_HELP = "Instead of --predictions: answer with this video LM (folder or Hub id) on the dataset's videos first."


def _vript_model_opts(model, frames, max_new_tokens, batch_size, dtype, video_backend, limit) -> dict:
    """The --model options, checked as strings/numbers before anything heavy is imported."""
    from .devices import check_dtype_spec

    _one_of("--video-backend", video_backend, VIDEO_BACKENDS)
    return {"model": model, "frames": frames, "max_new_tokens": max_new_tokens, "batch_size": batch_size,
            "dtype": check_dtype_spec(dtype), "video_backend": video_backend, "limit": limit}


def _eval_vript(task_name: str, **kwargs) -> None:
    kwargs["device"] = check_device_spec(kwargs["device"])
    _one_of("--setting", kwargs.get("setting"), ("scene", "whole"))
    _out_folder("--out", Path(kwargs["out"]) if kwargs.get("out") else None)
    from .tasks import eval_vript as task

    opts = task.VriptOptions(**{k: v for k, v in kwargs.items() if v is not None})
    task.check_options(task_name, opts)
    task.run(task_name, opts)


_M_FRAMES = typer.Option("--frames", help="With --model: uniform frames per video (the paper's open video LLMs: 16).")
_M_TOKENS = typer.Option("--max-new-tokens", help="With --model: tokens per answer (0: 512 for HAL, 100 for RR/ERO).")
_M_BATCH = typer.Option("--batch-size", help="With --model: videos per generate call.")
_M_DTYPE = typer.Option(help="With --model: auto | float32 | bfloat16 | float16.")
_M_BACKEND = typer.Option("--video-backend", help=_BACKEND_HELP)
_M_LIMIT = typer.Option(help="With --model: only the first N items (0 = all).")
_M_DEVICE = typer.Option(help="auto | cpu | cuda | cuda:N (the video LM; HAL's word embeddings).")


@eval_app.command("vript-hal")
def eval_vript_hal(
    data: Annotated[str, typer.Option(help=_VRIPT_DATA_HELP.format(name="HAL"))],
    predictions: Annotated[Optional[str], typer.Option(help=_VRIPT_PRED_HELP + " id = clip_id, pred = the caption.")] = None,
    model: Annotated[Optional[str], typer.Option(help=_VRIPT_MODEL_HELP)] = None,
    out: Annotated[Optional[str], typer.Option("--out", help=_VRIPT_OUT_HELP)] = None,
    official_compat: Annotated[bool, typer.Option("--official-compat", help=_VRIPT_COMPAT_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json on stdout.")] = False,
    spacy_model: Annotated[str, typer.Option("--spacy-model", help="spaCy pipeline (package name or folder); the paper's is en_core_web_lg.")] = "en_core_web_lg",
    sbert_model: Annotated[str, typer.Option("--sbert-model", help="SentenceTransformer (name or folder); the paper's is all-mpnet-base-v2.")] = "all-mpnet-base-v2",
    device: Annotated[str, _M_DEVICE] = "auto",
    frames: Annotated[int, _M_FRAMES] = 16,
    max_new_tokens: Annotated[int, _M_TOKENS] = 0,
    batch_size: Annotated[int, _M_BATCH] = 1,
    dtype: Annotated[str, _M_DTYPE] = "auto",
    video_backend: Annotated[str, _M_BACKEND] = "auto",
    limit: Annotated[int, _M_LIMIT] = 0,
) -> None:
    """Vript-HAL: precision / recall / F1 of the content words of captions (hallucination), per clip, averaged."""
    _eval_vript("vript-hal", data=data, predictions=predictions, out=out, official_compat=official_compat,
                as_json=as_json, spacy_model=spacy_model, sbert_model=sbert_model, device=device,
                **_vript_model_opts(model, frames, max_new_tokens, batch_size, dtype, video_backend, limit))


@eval_app.command("vript-rr")
def eval_vript_rr(
    data: Annotated[str, typer.Option(help=_VRIPT_DATA_HELP.format(name="RR"))],
    predictions: Annotated[Optional[str], typer.Option(help=_VRIPT_PRED_HELP + " id = clip_id (scene) or video_id (whole).")] = None,
    model: Annotated[Optional[str], typer.Option(help=_VRIPT_MODEL_HELP)] = None,
    setting: Annotated[str, typer.Option(help="scene (RR_scenes clips) | whole (RR_videos; rows need clip_id, meta or gt).")] = "scene",
    judge: Annotated[Optional[str], typer.Option("--judge", help="Also score the open-ended answers (open_pred, else pred) with this local chat LM as the judge (folder or cached Hub id; the paper's: GPT-4-turbo).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", help=_VRIPT_OUT_HELP)] = None,
    official_compat: Annotated[bool, typer.Option("--official-compat", help=_VRIPT_COMPAT_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json on stdout.")] = False,
    device: Annotated[str, _M_DEVICE] = "auto",
    frames: Annotated[int, _M_FRAMES] = 16,
    max_new_tokens: Annotated[int, _M_TOKENS] = 0,
    batch_size: Annotated[int, _M_BATCH] = 1,
    dtype: Annotated[str, _M_DTYPE] = "auto",
    video_backend: Annotated[str, _M_BACKEND] = "auto",
    limit: Annotated[int, _M_LIMIT] = 0,
) -> None:
    """Vript-RR (retrieval then reasoning): multiple-choice accuracy (the first (X) of each answer); with --judge, open-ended accuracy."""
    _eval_vript("vript-rr", data=data, predictions=predictions, setting=setting, out=out, judge=judge,
                official_compat=official_compat, as_json=as_json, device=device,
                **_vript_model_opts(model, frames, max_new_tokens, batch_size, dtype, video_backend, limit))


@eval_app.command("vript-ero")
def eval_vript_ero(
    data: Annotated[str, typer.Option(help=_VRIPT_DATA_HELP.format(name="ERO"))],
    predictions: Annotated[Optional[str], typer.Option(help=_VRIPT_PRED_HELP + " id = video_id.")] = None,
    model: Annotated[Optional[str], typer.Option(help=_VRIPT_MODEL_HELP)] = None,
    out: Annotated[Optional[str], typer.Option("--out", help=_VRIPT_OUT_HELP)] = None,
    official_compat: Annotated[bool, typer.Option("--official-compat", help=_VRIPT_COMPAT_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json on stdout.")] = False,
    device: Annotated[str, _M_DEVICE] = "auto",
    frames: Annotated[int, _M_FRAMES] = 16,
    max_new_tokens: Annotated[int, _M_TOKENS] = 0,
    batch_size: Annotated[int, _M_BATCH] = 1,
    dtype: Annotated[str, _M_DTYPE] = "auto",
    video_backend: Annotated[str, _M_BACKEND] = "auto",
    limit: Annotated[int, _M_LIMIT] = 0,
) -> None:
    """Vript-ERO (event re-ordering): @1 / @2 / @3, at least 1 / 2 / all 3 scenes in the right place."""
    _eval_vript("vript-ero", data=data, predictions=predictions, out=out, official_compat=official_compat,
                as_json=as_json, device=device,
                **_vript_model_opts(model, frames, max_new_tokens, batch_size, dtype, video_backend, limit))


# ----------------------------------------------------------------------------- describe
@app.command("describe")
def describe(
    video: Annotated[str, typer.Argument(help="Video file with sound.")],
    model: Annotated[Optional[str], typer.Option(help="AVLFormer folder (OUT/model of `vsuite finetune` with kind = \"describe\") or Hub id.")] = None,
    lang: Annotated[str, typer.Option(help="en | zh: the language the model was finetuned on.")] = "en",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout (description, parts, decoder, protocol).")] = False,
    beams: Annotated[int, typer.Option(help="Beam size (1 = greedy, the official default).")] = 1,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Generated tokens incl. [CLS] (default: the model's max_gen_length).")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
) -> None:
    """Fine-grained audible video description (FAVD / AVLFormer): a summary, visual details and the sounds."""
    _one_of("--lang", lang, ("en", "zh"))
    _at_least("--beams", beams, 1)
    _at_least("--max-length", max_length, 2)
    device = check_device_spec(device)
    from .tasks import describe as task

    task.run(video, model=model, lang=lang, as_json=as_json, beams=beams, device=device, max_length=max_length)


# ----------------------------------------------------------------------------- segment, eval avsbench
@app.command("segment")
def segment(
    video: Annotated[str, typer.Argument(help="Video file with sound.")],
    model: Annotated[str, typer.Option(help="Segmenter: model folder, run folder (its val-selected best/, else newest checkpoint) or Hub id.")] = "runs/avs-s4-pvt",
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: VIDEO's folder/<name>.segment).")] = None,
    fps: Annotated[str, typer.Option(help="1 (AVSBench: the frame at 15/16 of every second) | all (every frame).")] = "1",
    threshold: Annotated[float, typer.Option(help="Mask probability threshold.")] = 0.5,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Windows of 5 frames per forward pass.")] = 1,
    video_backend: Annotated[str, typer.Option("--video-backend", help=_BACKEND_HELP)] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json on stdout (else the output folder).")] = False,
) -> None:
    """Audio-visual segmentation: masks of the objects that make the sound (AVS with bidirectional generation).

    Writes OUT/masks/frame_XXXXXX.png, OUT/overlay.mp4 (masks tinted over every frame, original audio) and
    OUT/summary.json (frames, times, sounding area per frame, sampling protocol). Nothing is left on failure.
    """
    _at_least("--batch-size", batch_size, 1)
    _one_of("--fps", fps, ("1", "all"))  # = tasks.segment.FPS_CHOICES
    _one_of("--video-backend", video_backend, VIDEO_BACKENDS)
    if not 0 < threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1 (a probability), got {threshold}")
    device = check_device_spec(device)
    _out_folder("--out", out)
    from .tasks import segment as task

    task.run(video, task.SegmentOptions(model=model, out=out, fps=fps, threshold=threshold, device=device,
                                        batch_size=batch_size, video_backend=video_backend, as_json=as_json))


@eval_app.command("avsbench")
def eval_avsbench(
    split: Annotated[str, typer.Option(help="s4 (Single-source) | ms3 (Multi-sources).")],
    model: Annotated[str, typer.Option(help="Segmenter: model folder, run folder or Hub id.")],
    data: Annotated[str, typer.Option(help="AVSBench root (holding Single-source/ and/or Multi-sources/).")],
    subset: Annotated[str, typer.Option(help="test | val | train.")] = "test",
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Clips per batch for F official (default: the official test batch).")] = None,
    audio: Annotated[str, typer.Option(help="auto | pkl (the released log-mel) | wav.")] = "auto",
    limit: Annotated[int, typer.Option(help="Score only the first N clips (0 = all).")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N.")] = "auto",
    out: Annotated[Optional[Path], typer.Option("--out", help=_EVAL_OUT_HELP.format(default="runs/eval/avsbench-<split>-<model>"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json on stdout (the table goes to stderr).")] = False,
) -> None:
    """AVSBench S4 / MS3: mIoU, F official (per-batch max, at the official batch size) and F per frame.

    Writes OUT/results.json and OUT/samples.jsonl (one line per clip).
    """
    _one_of("--split", split, ("s4", "ms3"))
    _one_of("--subset", subset, ("test", "val", "train"))
    _one_of("--audio", audio, ("auto", "pkl", "wav"))
    _at_least("--batch-size", batch_size, 1)
    _at_least("--limit", limit, 0)
    device = check_device_spec(device)
    _out_folder("--out", out)
    from .tasks import eval_avsbench as task

    task.run(split=split, model=model, data=data, subset=subset, batch_size=batch_size, audio=audio, limit=limit,
             device=device, out=out, as_json=as_json)


# ----------------------------------------------------------------------------- eval favdbench
@eval_app.command("favdbench")
def eval_favdbench(
    data: Annotated[str, typer.Option(help="FAVDBench folder: meta/{train,val,test}.csv + annotations_en.json / annotations_cn.json (+ videos/, audio_mp3/ for --model).")],
    predictions: Annotated[Optional[str], typer.Option(help="Descriptions to score: JSON {clip_id: text}, a COCO list [{\"image_id\", \"caption\"}], or JSON lines.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Instead of --predictions: describe every clip with this model first (vsuite describe).")] = None,
    split: Annotated[str, typer.Option(help="train | val | test.")] = "test",
    lang: Annotated[str, typer.Option(help="en (annotations_en.json) | zh (annotations_cn.json).")] = "en",
    out: Annotated[Optional[str], typer.Option("--out", help="Folder for results.json + samples.jsonl (default: PREDICTIONS' folder/<stem>.favdbench, or runs/eval/favdbench-<model>).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json on stdout.")] = False,
    metrics: Annotated[str, typer.Option(help="all, or a comma list of bleu,meteor,rouge,cider,entity,audio (bleu..cider need Java).")] = "all",
    t5_model: Annotated[str, typer.Option("--t5-model", help="EntityScore's T5 encoder (Hub id or folder); the official one is t5-base.")] = "t5-base",
    tagger: Annotated[str, typer.Option(help="EntityScore's noun tagger: spacy[:NAME_OR_FOLDER] | nltk (the official; needs NLTK data).")] = "spacy:en_core_web_sm",
    audioscore_model: Annotated[Optional[str], typer.Option("--audioscore-model", help="TriLip.bin (or a folder holding it, with CLIP's vocab.json + merges.txt) for AudioScore; without it AudioScore is reported as skipped.")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N (the T5 encoder and TriLip; the describer with --model).")] = "auto",
    beams: Annotated[int, typer.Option(help="With --model: beam size (0 = the describer's default).")] = 0,
    limit: Annotated[int, typer.Option(help="With --model: only the first N clips (0 = all).")] = 0,
) -> None:
    """FAVDBench: BLEU-1..4, METEOR, ROUGE-L, CIDEr (COCO caption protocol), EntityScore; AudioScore when available."""
    device = check_device_spec(device)
    _out_folder("--out", Path(out) if out else None)
    from .tasks import eval_favdbench as task

    opts = task.FavdOptions(data=data, predictions=predictions, model=model, split=split, lang=lang, out=out,
                            as_json=as_json, metrics=metrics, t5_model=t5_model, tagger=tagger,
                            audioscore_model=audioscore_model, device=device, beams=beams, limit=limit)
    task.check_options(opts)
    task.run(opts)


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
    if len(files) == 1:  # one file: its error is the one error line
        load_recipe(files[0], task or task_of(files[0]))
        log(f"ok    {files[0]}")
        return
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

    args = list(argv if argv is not None else sys.argv[1:])
    # --debug is accepted before or after the command (the error text says "rerun with --debug"):
    # it is taken out here, before Typer parses, up to a `--` that ends the options.
    stop = args.index("--") if "--" in args else len(args)
    debug_given = "--debug" in args[:stop]
    args = [a for a in args[:stop] if a != "--debug"] + args[stop:]
    _state["debug"] = os.environ.get("VSUITE_DEBUG") == "1" or debug_given
    debug = _state["debug"]
    try:
        app(args=args, prog_name="vsuite", standalone_mode=True)
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
