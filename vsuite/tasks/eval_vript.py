"""`vsuite eval vript-hal | vript-rr | vript-ero --data DIR --predictions FILE`: score Vript-Hard predictions.

Reads the official annotation file of the benchmark (vsuite.data.vript_hard), matches the prediction rows to
it, scores them with vsuite.metrics.vript_hard (corrected by default, `official_compat` for the official
numbers), writes OUT/results.json + OUT/samples.jsonl (vsuite.metrics.results), prints the table on stderr
and, with --json, results.json on stdout. HAL loads spaCy and a SentenceTransformer (named or by path);
RR (multiple choice) and ERO need no model; RR's open-ended answers are rated by a local judge LM with
`--judge M` (vsuite.metrics.vript_judge). With `--model M` instead of `--predictions`, a video LM
(vsuite.models.vlm.VideoLM) first answers each item with the official prompt, its reply forced to start with
the official answer prefix, on frames vsuite decodes, into OUT/predictions.jsonl, which is then scored the
same way (with --judge it also answers RR's open-ended question, into `open_pred`).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from ..console import log, out, warn
from ..errors import UsageError

TASKS = {"vript-hal": "HAL", "vript-rr": "RR", "vript-ero": "ERO"}
SETTINGS = ("scene", "whole")


@dataclass
class VriptOptions:
    data: str
    predictions: str | None = None
    out: str | None = None
    official_compat: bool = False
    as_json: bool = False
    setting: str = "scene"  # RR: scene clips (RR_scenes) or whole videos (RR_videos)
    spacy_model: str = "en_core_web_lg"
    sbert_model: str = "all-mpnet-base-v2"
    device: str = "auto"  # HAL word embeddings; with --model also the video LM
    # --model: run a video LM on the benchmark videos first (then --predictions is not given)
    model: str | None = None
    frames: int = 16  # the paper's open video LLMs: 16 frames, uniform
    max_new_tokens: int = 0  # 0: 512 for HAL captions, 100 for RR / ERO answers (the official scripts' 100)
    batch_size: int = 1
    dtype: str = "auto"
    video_backend: str = "auto"
    limit: int = 0  # with --model: only the first N annotated items
    # RR open-ended: a local causal LM rates each open answer (folder or Hub id); None: multiple choice only
    judge: str | None = None
    judge_max_new_tokens: int = 512  # a short explanation, then the rating
    judge_batch_size: int = 8


def check_options(task: str, opts: VriptOptions) -> None:
    """Pure checks of the flag values (UsageError, exit 2), before anything heavy is imported."""
    if task not in TASKS:
        raise UsageError(f"unknown benchmark {task!r}; one of {', '.join(TASKS)}")
    if opts.setting not in SETTINGS:
        raise UsageError(f"--setting must be one of scene, whole, got {opts.setting!r}")
    if (opts.model is None) == (not opts.predictions):
        raise UsageError("give --predictions FILE (score existing answers) or --model M (generate them), not both")
    if opts.limit and opts.model is None:
        raise UsageError("--limit applies with --model only (a predictions file is scored whole)")
    if opts.judge is not None and task != "vript-rr":
        raise UsageError("--judge applies to vript-rr only (its open-ended answers)")
    if opts.judge is not None and not str(opts.judge).strip():
        raise UsageError("--judge must name a model folder or a Hub id")
    if opts.judge_max_new_tokens < 1 or opts.judge_batch_size < 1:
        raise UsageError("the judge's max_new_tokens and batch size must be >= 1")
    for flag, value, low in (("--frames", opts.frames, 1), ("--batch-size", opts.batch_size, 1),
                             ("--max-new-tokens", opts.max_new_tokens, 0), ("--limit", opts.limit, 0)):
        if value < low:
            raise UsageError(f"{flag} must be >= {low}, got {value}")
    for flag, value in (("--spacy-model", opts.spacy_model), ("--sbert-model", opts.sbert_model)):
        if not str(value).strip():
            raise UsageError(f"{flag} must name a model or a folder")


def default_out(task: str, opts: VriptOptions) -> Path:
    """OUT defaults to `<predictions stem>.<task>/` beside the predictions file, or `runs/eval/<task>-<model>`."""
    if opts.model is not None:
        return Path("runs") / "eval" / f"{task}-{Path(opts.model.rstrip('/')).name}"
    path = Path(opts.predictions)
    return path.with_name(f"{path.stem}.{task}")


def resolved_command(task: str, opts: VriptOptions, out_dir: Path) -> str:
    args = ["vsuite", "eval", task, "--data", str(Path(opts.data).resolve())]
    if opts.model is not None:
        args += ["--model", opts.model, "--frames", str(opts.frames), "--max-new-tokens", str(opts.max_new_tokens),
                 "--batch-size", str(opts.batch_size), "--dtype", opts.dtype, "--video-backend", opts.video_backend]
        if opts.limit:
            args += ["--limit", str(opts.limit)]
    else:
        args += ["--predictions", str(Path(opts.predictions).resolve())]
    args += ["--out", str(out_dir.resolve())]
    if task == "vript-rr":
        args += ["--setting", opts.setting]
        if opts.judge is not None:
            args += ["--judge", opts.judge]
    if task == "vript-hal":
        args += ["--spacy-model", opts.spacy_model, "--sbert-model", opts.sbert_model]
    if task == "vript-hal" or opts.model is not None or opts.judge is not None:
        args += ["--device", opts.device]
    if opts.official_compat:
        args.append("--official-compat")
    return shlex.join(args)


def _items(bench: str, joined, compat: bool):
    """vsuite.data Joined records -> scorer Items (the GT as the scorer wants it)."""
    from ..data.vript_hard import scene_letters
    from ..metrics.vript_hard import Item

    items = []
    for j in joined:
        pred = None if j.prediction is None else j.prediction.pred
        missing = j.prediction is None
        ann = j.annotation
        if bench == "HAL":
            target = ann.captions if ann is not None else _gt_captions(j.gt_text, compat)
            items.append(Item(j.id, target, pred, missing))
        elif bench == "RR":
            if ann is not None:
                items.append(Item(j.id, ann.answer_letter, pred, missing, ann.options))
            else:
                items.append(Item(j.id, _gt_letter(j), pred, missing))
        else:
            target = ann.answer if ann is not None else scene_letters(j.gt_text) if not compat else _capitals(j.gt_text)
            items.append(Item(j.id, target, pred, missing))
    return items


def _gt_captions(text: str, compat: bool) -> list[str]:
    """HAL captions of a row's gt cell. The official files hold the list's text ('["cap 1", "cap 2"]'), which
    the official scorer parses as one text (brackets and quotes included, compat); corrected reads the list."""
    if not compat and text.lstrip().startswith("["):
        import ast

        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return [text]


def _gt_letter(j) -> str:
    """RR: the `(X)` of a row's gt cell (the official way for files without a matching annotation)."""
    import re

    from ..errors import DataError

    found = re.search(r"\([A-Z]\)", j.gt_text or "")
    if not found:
        raise DataError(f"line {j.prediction.line}: gt {j.gt_text!r} has no option letter like (A)")
    return found.group(0)


def _capitals(text: str) -> list[str]:
    import re

    return re.findall(r"[A-Z]", text or "")  # the official parse of an ERO gt cell: every capital letter


def run(task: str, opts: VriptOptions) -> dict:
    check_options(task, opts)
    from ..data import vript_hard as D
    from ..metrics import vript_hard as M
    from ..metrics.results import print_table, write_results

    start = time.monotonic()
    bench = TASKS[task]
    ann_path = D.annotation_file(opts.data, bench)
    readers = {"HAL": D.read_hal_annotations, "RR": D.read_rr_annotations, "ERO": D.read_ero_annotations}
    annotations = readers[bench](ann_path)
    if opts.model is not None and opts.limit:  # score exactly the items the model answers
        annotations = (annotations[:opts.limit] if isinstance(annotations, list)
                       else dict(list(annotations.items())[:opts.limit]))
    out_dir = Path(opts.out) if opts.out else default_out(task, opts)
    mode = "official-compat" if opts.official_compat else "corrected"
    scorer = _load_scorer_models(bench, opts) if bench == "HAL" else None  # fail before any generation
    judge = _load_judge(opts) if opts.judge is not None else None  # likewise (both stay loaded with --model)
    model_info: dict = {"name": None, "source": "predictions"}
    protocol: dict = {"frames": None, "fps": None, "decoder": None, "prompt_hash": D.prompt_hash(bench),
                      "prompt": f"official Vript-{bench} prompt (predictions made outside vsuite: not verified)"}
    if opts.model is not None:
        pred_path, model_info, protocol = generate_predictions(bench, annotations, ann_path, opts, out_dir)
    else:
        pred_path = Path(opts.predictions)
        model_info["path"] = str(pred_path.resolve())
    predictions = D.read_predictions(pred_path)
    # RR answer types: `pred` is multiple choice; with --judge the `open_pred` answers are judged, or, in a file
    # without that column (the official open-ended outputs), `pred` itself is the open answer
    has_open = any(p.has_open for p in predictions)
    score_mc = bench != "RR" or judge is None or has_open
    if bench == "RR" and judge is not None:
        log("RR open-ended answers: " + ("the open_pred column" if has_open else
                                         "the pred column (no open_pred column; multiple choice not scored)"))
    elif bench == "RR" and has_open:
        warn("the predictions carry open_pred answers: not scored without --judge M")
    # (an open-ended file's gt cells hold open answers, not option letters: the annotations give the GT)
    joined, coverage = D.join(bench, annotations, predictions, pred_path, opts.setting,
                              prefer_gt_column=opts.official_compat and score_mc)
    if bench == "RR" and opts.setting == "whole":
        _check_whole_ids(joined, pred_path)
    items = _items(bench, joined, opts.official_compat) if score_mc else []
    n_missing = sum(j.prediction is None for j in joined)
    log(f"{task}: {len(predictions)} prediction(s) of {pred_path} against {len(annotations)} annotated item(s) "
        f"of {ann_path} ({mode})")
    if not coverage:
        warn("some rows carry their own gt: annotated items without a prediction cannot be detected")
    if n_missing:
        warn(f"{n_missing} annotated item(s) have no prediction: "
             + ("not scored (official behaviour)" if opts.official_compat else "scored as wrong / 0"))

    scorer_models = {}
    if bench == "HAL":
        from ..console import Progress

        nlp, sbert, scorer_models = scorer
        with Progress("HAL", len(items), every=max(1, len(items) // 10)) as progress:
            scores, samples = M.score_hal(items, M.SpacyLemmatizer(nlp), M.SbertEncoder(sbert), opts.official_compat,
                                          on_item=progress.advance)
    elif bench == "RR":
        scores, samples = M.score_rr(items, opts.official_compat) if score_mc else ({}, [])
    else:
        scores, samples = M.score_ero(items, opts.official_compat)
    if judge is not None:
        open_scores, samples = _judge_open(annotations, predictions, pred_path, opts, judge, has_open,
                                           joined if score_mc else None, samples)
        scores.update({f"open_{k}": v for k, v in open_scores.items()})
    scores["missing"] = n_missing

    config = {"benchmark": bench, "data": str(ann_path.resolve()), "predictions": str(pred_path.resolve()),
              "official_compat": opts.official_compat, "coverage_checked": coverage}
    if bench == "RR":
        config["setting"] = opts.setting
        config["answer_type"] = ("multiple_choice" if judge is None else
                                 "multiple_choice+open_ended" if score_mc else "open_ended")
        if judge is not None:
            from ..data.vript_hard import prompt_hash
            from ..metrics.vript_judge import OFFICIAL_JUDGE

            config["judge"] = {**judge.describe(), "official": OFFICIAL_JUDGE}
            protocol["open_prompt_hash"] = prompt_hash("RR-open")
            if not score_mc:
                protocol["prompt_hash"] = prompt_hash("RR-open")
    if scorer_models:
        config["scorer_models"] = scorer_models
    doc = write_results(out_dir, scores, samples, resolved_command(task, opts, out_dir), model_info, protocol,
                        benchmark=task, config=config, elapsed_s=time.monotonic() - start)
    print_table(task, {k: v for k, v in scores.items() if k != "status"}, f"({mode})")
    log(f"wrote {out_dir / 'results.json'} and {out_dir / 'samples.jsonl'}")
    if opts.as_json:
        out(doc)
    return doc


def _check_whole_ids(joined, pred_path: Path) -> None:
    """Whole-video setting: each row's id must be the video of the clip it answers."""
    from ..errors import DataError

    for j in joined:
        if j.annotation is not None and j.prediction is not None and j.prediction.id != j.annotation.video_id:
            raise DataError(f"{pred_path}:{j.prediction.line}: id {j.prediction.id!r} is not the video of clip "
                            f"{j.annotation.clip_id!r} ({j.annotation.video_id})")


def _load_judge(opts: VriptOptions):
    """The --judge model (a local folder or a cached Hub id; offline: a hint names `hf download`)."""
    from ..devices import resolve_device, resolve_dtype
    from ..errors import ModelNotFoundError
    from ..hub import resolve_model_dir
    from ..metrics.vript_judge import load_judge

    folder = resolve_model_dir(opts.judge, flag="--judge")
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"--judge {opts.judge}: {folder} has no config.json; pass a Hugging Face model folder")
    device = resolve_device(opts.device)
    judge = load_judge(folder, name=opts.judge, device=device, dtype=resolve_dtype(opts.dtype, device),
                       max_new_tokens=opts.judge_max_new_tokens)
    if judge.plain_prompt:
        warn(f"--judge {opts.judge} has no chat template (a base LM?): its ratings are rarely usable; pass an "
             "instruction-tuned chat model")
    log(f"RR open-ended judge: {opts.judge} on {device} (the paper's: GPT-4-turbo; scores differ)")
    return judge


def _judge_open(annotations, predictions, pred_path: Path, opts: VriptOptions, judge, has_open: bool,
                mc_joined, mc_samples: list[dict]):
    """Open-ended accuracy by the judge, and the samples: the multiple-choice ones each with an `open` record
    (when `mc_joined` is given: both answer types), else the open-ended records alone."""
    from ..console import Progress
    from ..data import vript_hard as D
    from ..errors import DataError
    from ..metrics.vript_judge import OpenItem, score_rr_open

    # the judge needs each item's question, hint and open answer: always from the annotations (as the official)
    joined, _ = D.join("RR", annotations, predictions, pred_path, opts.setting, prefer_gt_column=False)
    if opts.setting == "whole":
        _check_whole_ids(joined, pred_path)
    items = []
    for j in joined:
        if j.annotation is None:
            raise DataError(f"{pred_path}:{j.prediction.line}: {j.prediction.clip_id or j.id!r} is not in the "
                            "annotations: the judge needs its question, hint and open_answer")
        pred = None if j.prediction is None else (j.prediction.open_pred if has_open else j.prediction.pred)
        ann = j.annotation
        items.append(OpenItem(j.id, ann.question, ann.hint, ann.open_answer, pred, j.prediction is None))
    with Progress("judge", len(items), every=max(1, len(items) // 10)) as progress:
        scores, records = score_rr_open(items, judge, opts.official_compat, opts.judge_batch_size,
                                        on_item=progress.advance)
    bad = scores["status"].get("unparseable", 0)
    if bad:
        warn(f"{bad} judge repl(ies) had no readable rating: counted wrong (judge_output in samples.jsonl)")
    if mc_joined is None:
        return scores, records

    def key(j):  # the same prediction row (or annotated item without one) in both joins
        return ("line", j.prediction.line) if j.prediction is not None else ("item", j.id)

    by_key = {key(j): rec for j, rec in zip(joined, records)}
    for j, sample in zip(mc_joined, mc_samples):
        rec = by_key.get(key(j))
        if rec is not None:
            sample["open"] = {k: v for k, v in rec.items() if k != "id"}
            sample["score"]["open_correct"] = rec["score"]["correct"]
    return scores, mc_samples


def _load_scorer_models(bench: str, opts: VriptOptions):
    """HAL's spaCy pipeline and SentenceTransformer (ModelNotFoundError, exit 4, names a smaller installed one)."""
    from ..devices import resolve_device
    from ..metrics import vript_hard as M

    device = str(resolve_device(opts.device))
    nlp = M.load_spacy(opts.spacy_model)
    sbert = M.load_sbert(opts.sbert_model, device=device)
    info = {"spacy": f"{nlp.meta.get('lang', '')}_{nlp.meta.get('name', '')}-{nlp.meta.get('version', '')}",
            "sbert": opts.sbert_model,
            "official": opts.spacy_model == M.OFFICIAL_SPACY and opts.sbert_model == M.OFFICIAL_SBERT}
    if not info["official"]:
        warn(f"HAL scored with {opts.spacy_model} / {opts.sbert_model}: numbers differ from the paper's "
             f"({M.OFFICIAL_SPACY} / {M.OFFICIAL_SBERT})")
    return nlp, sbert, info


# ----------------------------------------------------------------------------- --model: answers from a video LM
VIDEO_FOLDERS = {"HAL": ("HAL_scenes", "CAP_scenes"), "RR-scene": ("RR_scenes",), "RR-whole": ("RR_videos",),
                 "ERO": ("ERO_videos",)}


def _requests(bench: str, annotations, setting: str) -> list[dict]:
    """One request per annotated item: prediction id, clip_id, video name and the official question text."""
    from ..data.vript_hard import PROMPTS

    def question(template: str, **fields) -> str:
        # vsuite's VideoLM puts the video itself first in the user turn: drop the official placeholder
        return template.replace("<VideoHere> \n", "").format(**fields)

    reqs = []
    if bench == "HAL":
        for clip_id in annotations:
            reqs.append({"id": clip_id, "video": clip_id, "prompt": question(PROMPTS["HAL"]["question"])})
    elif bench == "RR":
        for a in annotations:
            options = "\n".join(f"({chr(65 + i)}) {o}" for i, o in enumerate(a.options))
            text = question(PROMPTS["RR"]["question"], question=a.question, option=options, hint=a.hint)
            reqs.append({"id": a.clip_id if setting == "scene" else a.video_id, "clip_id": a.clip_id,
                         "video": a.clip_id if setting == "scene" else a.video_id, "prompt": text,
                         "open_prompt": question(PROMPTS["RR-open"]["question"], question=a.question, hint=a.hint)})
    else:
        for video_id, a in annotations.items():
            reqs.append({"id": video_id, "video": video_id, "prompt": question(PROMPTS["ERO"]["question"],
                                                                               question=a.question)})
    return reqs


def _video_path(root: Path, bench: str, setting: str, name: str) -> Path:
    from ..errors import DataError

    folders = VIDEO_FOLDERS[bench if bench != "RR" else f"RR-{setting}"]
    for folder in folders:
        if (root / folder / f"{name}.mp4").is_file():
            return root / folder / f"{name}.mp4"
    raise DataError(f"no video {folders[0]}/{name}.mp4 in {root} (the dataset's video folder)")


def generate_predictions(bench: str, annotations, ann_path: Path, opts: VriptOptions, out_dir: Path):
    """Run the video LM on every item (first --limit) with the official prompt; write OUT/predictions.jsonl.

    Frames: `--frames` segment-centre uniform frames of the clip / video (16 for the paper's open video LLMs),
    decoded by vsuite. The reply starts with the official answer prefix ("Best option:(", "The correct
    temporal order ... Scene ("), forced after the chat template's assistant turn; `pred` is that prefix
    followed by the model's continuation (the official VideoChat2 scripts keep "(" / "Scene (" and the first
    line; the first option / scene letters read the same). With --judge (RR) the model also answers the
    open-ended question (no prefix) into `open_pred`. Returns (path, model record, protocol).
    """
    import json

    from ..console import Progress
    from ..data.vript import atomic_write_text
    from ..data.vript_hard import PROMPTS, prompt_hash
    from ..media.decode import read_frames
    from ..media.probe import probe
    from ..media.sampling import sample_uniform
    from ..models.vlm import VideoLM, VideoPrompt

    reqs = _requests(bench, annotations, opts.setting)
    if opts.limit:
        reqs = reqs[:opts.limit]
    root = ann_path.parent
    for req in reqs:  # every video present before the model loads: no partial output
        req["path"] = _video_path(root, bench, opts.setting, req["video"])
    max_new = opts.max_new_tokens or (512 if bench == "HAL" else 100)
    open_ended = bench == "RR" and opts.judge is not None
    vlm = VideoLM.load(opts.model, device=opts.device, dtype=opts.dtype)
    log(f"{bench}: {len(reqs)} item(s) with {vlm.name} on {vlm.device}, {opts.frames} uniform frames")
    rows, backends, fps_seen = [], set(), set()
    with Progress("generate", len(reqs), every=max(1, len(reqs) // 10)) as progress:
        for i in range(0, len(reqs), opts.batch_size):
            chunk, items = reqs[i:i + opts.batch_size], []
            for req in chunk:
                info = probe(req["path"])
                decoded = read_frames(req["path"], sample_uniform(info.num_frames, info.fps, opts.frames),
                                      backend=opts.video_backend)
                backends.add(decoded.backend)
                fps_seen.add(round(info.fps, 3))
                items.append(VideoPrompt(decoded.frames, list(decoded.indices), info.fps, info.duration,
                                         req["prompt"], system=PROMPTS[bench]["system"],
                                         total_frames=info.num_frames))
            answers = vlm.generate(items, max_new_tokens=max_new, answer_prefix=PROMPTS[bench]["answer_prefix"])
            if open_ended:  # the same frames, the official open-ended prompt, no prefix
                opened = [VideoPrompt(it.frames, it.indices, it.fps, it.duration, req["open_prompt"],
                                      system=PROMPTS["RR-open"]["system"], total_frames=it.total_frames)
                          for it, req in zip(items, chunk)]
                open_answers = vlm.generate(opened, max_new_tokens=max_new)
            for n, (req, text) in enumerate(zip(chunk, answers)):
                row = {"id": req["id"], "pred": text}
                if "clip_id" in req:
                    row["clip_id"] = req["clip_id"]
                if open_ended:
                    row["open_pred"] = open_answers[n]
                rows.append(row)
                progress.advance()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "predictions.jsonl"
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    model = {"name": vlm.name, "source": "model", **vlm.describe(), "max_new_tokens": max_new}
    protocol = {"frames": opts.frames, "fps": sorted(fps_seen)[0] if len(fps_seen) == 1 else sorted(fps_seen),
                "decoder": "+".join(sorted(backends)), "sampling": "uniform segment centres over the whole file",
                "prompt_hash": prompt_hash(bench), "answer_prefix": PROMPTS[bench]["answer_prefix"],
                "prompt": f"official Vript-{bench} prompt" + (", the reply forced to start with its answer prefix"
                                                               if PROMPTS[bench]["answer_prefix"] else ""),
                "setting": opts.setting if bench == "RR" else None}
    return path, model, protocol
