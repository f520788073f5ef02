"""Vript-Hard data: the annotation files of HAL / RR / ERO in the official layout, prediction files, prompts.

Layout (a local copy of the Hugging Face dataset repos Mutonix/Vript-HAL, -RR, -ERO): a folder holding
`HAL_annotations.jsonl` (or the older `CAP_annotations.jsonl`), `RR_annotations.jsonl` or
`ERO_annotations.jsonl` (the videos sit beside them in `*_scenes/`, `*_videos/`); `--data` may also name the
file itself. Records (fields read; others are kept but ignored):
    HAL  {"clip_id", "content": [caption, caption]}   (a string is one caption)
    RR   {"video_id", "clip_id", "question", "hint", "multiple_choice": [4 options],
          "multiple_choice_answer": one of them, "open_answer"}
    ERO  {"video_id", "question", "answer": ["B", "A", "C"]}
Predictions: the official CSV (header `id,pred` with optional `gt`, `meta`, `clip_id`, `open_pred`; `meta` is
the official scripts' Python-dict text of the annotation, whose clip_id is used) or JSON lines
{"id", "pred"[, "gt", "clip_id", "open_pred"]}. RR's `open_pred`: the open-ended answer to the same item (judged
with `--judge`). Any problem is a one-line DataError naming the file and line.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError

BENCHMARKS = ("HAL", "RR", "ERO")
ANNOTATION_FILES = {"HAL": ("HAL_annotations.jsonl", "CAP_annotations.jsonl"), "RR": ("RR_annotations.jsonl",),
                    "ERO": ("ERO_annotations.jsonl",)}

# The official evaluation prompts (vript-hard/evaluation_prompts/*.json): system, question, answer prefix.
_WATCH = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and movement "
          "of objects, and the action and pose of persons.")
PROMPTS = {
    "HAL": {"system": _WATCH, "question": "<VideoHere> \nDescribe this video in detail.", "answer_prefix": ""},
    "RR": {"system": _WATCH + " Based on your observations, select the best option that accurately addresses "
                              "the question.\n",
           "question": "<VideoHere> \nQuestion: {question}\nOptions:\n{option}\nHint: {hint}\nOnly give the best option.",
           "answer_prefix": "Best option:("},
    "ERO": {"system": "Carefully watch the video and pay attention to the temporal order of the scenes in the video, "
                      "which scene comes first, and which comes after. Based on your observations and the given "
                      "descriptions of the Scene (A), (B), and (C), Output the correct temporal order of the scenes.",
            "question": "<VideoHere> \n{question}",
            "answer_prefix": "The correct temporal order of the scenes based on the video is: Scene ("},
    # Vript-RR open-ended (vript_rr_openend.json): answers judged by a language model (vsuite.metrics.vript_judge)
    "RR-open": {"system": _WATCH + " Based on your observations, give the answer that accurately addresses the "
                                   "question.\n",
                "question": "<VideoHere> \nQuestion: {question}\nHint: {hint}", "answer_prefix": ""},
}


def prompt_hash(benchmark: str) -> str:
    """sha256 (first 16 hex digits) of the official prompt of HAL / RR / ERO / RR-open, recorded in results.json."""
    text = json.dumps(PROMPTS[benchmark], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- annotations
@dataclass
class HalAnnotation:
    clip_id: str
    captions: list[str]
    line: int


@dataclass
class RRAnnotation:
    video_id: str
    clip_id: str
    question: str
    hint: str
    options: list[str]
    answer: str
    answer_letter: str  # "(A)".. from the answer's index in the options (official)
    open_answer: str
    line: int


@dataclass
class EROAnnotation:
    video_id: str
    question: str
    answer: list[str]  # scene letters in temporal order, e.g. ["B", "A", "C"]
    line: int


def annotation_file(data: str | Path, benchmark: str) -> Path:
    """The annotation file of `benchmark` in folder `data` (or `data` itself when it is a file)."""
    path = Path(data)
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"--data {data}: no such file or folder")
    for name in ANNOTATION_FILES[benchmark]:
        if (path / name).is_file():
            return path / name
    raise DataError(f"--data {data}: no {' or '.join(ANNOTATION_FILES[benchmark])} in this folder "
                    f"(a local copy of the Mutonix/Vript-{benchmark} dataset)")


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line; DataError names the file and line of a bad one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        rows.append((lineno, obj))
    if not rows:
        raise DataError(f"{path}: no records")
    return rows


def _text(obj: dict, key: str, path: Path, lineno: int, required: bool = True) -> str:
    value = obj.get(key)
    if value is None and not required:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and key.endswith("id"):
        value = str(value)
    if not isinstance(value, str) or (required and not value.strip()):
        raise DataError(f"{path}:{lineno}: field {key!r} missing or not a non-empty string")
    return value


def _unique(items: dict, key: str, lineno: int, path: Path, what: str) -> None:
    if key in items:
        raise DataError(f"{path}:{lineno}: duplicate {what} {key!r} (first on line {items[key].line})")


def read_hal_annotations(path: Path) -> dict[str, HalAnnotation]:
    out: dict[str, HalAnnotation] = {}
    for lineno, obj in read_jsonl(path):
        clip_id = _text(obj, "clip_id", path, lineno)
        content = obj.get("content")
        captions = [content] if isinstance(content, str) else content
        if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
            raise DataError(f"{path}:{lineno}: field 'content' must be a caption or a list of captions")
        _unique(out, clip_id, lineno, path, "clip_id")
        out[clip_id] = HalAnnotation(clip_id, captions, lineno)
    return out


def read_rr_annotations(path: Path) -> list[RRAnnotation]:
    out, seen = [], {}
    for lineno, obj in read_jsonl(path):
        clip_id = _text(obj, "clip_id", path, lineno)
        options = obj.get("multiple_choice")
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
            raise DataError(f"{path}:{lineno}: field 'multiple_choice' must be a list of option strings")
        if len(options) > 26:
            raise DataError(f"{path}:{lineno}: more than 26 options")
        answer = _text(obj, "multiple_choice_answer", path, lineno)
        if answer not in options:
            raise DataError(f"{path}:{lineno}: multiple_choice_answer {answer!r} is not one of the options")
        item = RRAnnotation(_text(obj, "video_id", path, lineno), clip_id, _text(obj, "question", path, lineno),
                            _text(obj, "hint", path, lineno, required=False), options, answer,
                            f"({chr(65 + options.index(answer))})", _text(obj, "open_answer", path, lineno, False),
                            lineno)
        _unique(seen, clip_id, lineno, path, "clip_id")
        seen[clip_id] = item
        out.append(item)
    return out


def scene_letters(value) -> list[str]:
    """["B", "A", "C"] from a list of letters (or `(B)` / `Scene (B)`) or a string such as "B, A, C"."""
    parts = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    letters = []
    for part in parts:
        if not isinstance(part, str):
            return []
        letters.extend(re.findall(r"(?<![A-Za-z])([A-Z])(?![a-z])", part.replace("Scene", "")))
    return letters


def read_ero_annotations(path: Path) -> dict[str, EROAnnotation]:
    out: dict[str, EROAnnotation] = {}
    for lineno, obj in read_jsonl(path):
        video_id = _text(obj, "video_id", path, lineno)
        letters = scene_letters(obj.get("answer"))
        if len(letters) < 2:
            raise DataError(f"{path}:{lineno}: field 'answer' must list the scene letters in order, e.g. [\"B\", \"A\", \"C\"]")
        _unique(out, video_id, lineno, path, "video_id")
        out[video_id] = EROAnnotation(video_id, _text(obj, "question", path, lineno, False), letters, lineno)
    return out


# ----------------------------------------------------------------------------- predictions
@dataclass
class Prediction:
    id: str
    pred: str | None  # None: a JSON null (a CSV's empty cell is "")
    line: int
    gt: str | None = None
    clip_id: str | None = None
    extra: dict = field(default_factory=dict)
    open_pred: str | None = None  # RR: the open-ended answer (None: no such column / key, or null)
    has_open: bool = False  # the row carries an open_pred column / key


def read_predictions(path: str | Path) -> list[Prediction]:
    """The official CSV (id, pred[, gt, meta, clip_id]) or JSON lines ({"id", "pred"[, "gt", "clip_id"]})."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--predictions {path}: no such file")
    try:
        head = path.read_text(encoding="utf-8")[:4096].lstrip()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None
    if path.suffix.lower() in (".jsonl", ".json") or (path.suffix.lower() != ".csv" and head.startswith("{")):
        preds = _read_jsonl_predictions(path)
    else:
        preds = _read_csv_predictions(path)
    if not preds:
        raise DataError(f"{path}: no predictions")
    return preds


def _read_jsonl_predictions(path: Path) -> list[Prediction]:
    out = []
    for lineno, obj in read_jsonl(path):
        if "id" not in obj or obj["id"] is None or str(obj["id"]).strip() == "":
            raise DataError(f"{path}:{lineno}: missing \"id\"")
        if "pred" not in obj:
            raise DataError(f"{path}:{lineno}: missing \"pred\" (use null for no answer)")
        pred = obj["pred"]
        if pred is not None and not isinstance(pred, str):
            pred = json.dumps(pred) if isinstance(pred, (list, dict)) else str(pred)
        gt = obj.get("gt")
        meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
        clip_id = obj.get("clip_id") or meta.get("clip_id")
        open_pred = obj.get("open_pred")
        if open_pred is not None and not isinstance(open_pred, str):
            open_pred = json.dumps(open_pred) if isinstance(open_pred, (list, dict)) else str(open_pred)
        out.append(Prediction(str(obj["id"]), pred, lineno, None if gt is None else str(gt),
                              None if clip_id is None else str(clip_id), open_pred=open_pred,
                              has_open="open_pred" in obj))
    return out


def _meta_clip_id(text: str) -> str | None:
    """The clip_id of the official scripts' `meta` cell (a Python dict's repr), if it parses."""
    if not text or not text.lstrip().startswith("{"):
        return None
    try:
        meta = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    value = meta.get("clip_id") if isinstance(meta, dict) else None
    return str(value) if value is not None else None


def _read_csv_predictions(path: Path) -> list[Prediction]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # captions with long quoted fields
    out = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file")
            header = [h.strip().lstrip("\ufeff") for h in header]
            missing = [c for c in ("id", "pred") if c not in header]
            if missing:
                raise DataError(f"{path}:1: missing column {missing[0]!r} (columns: {', '.join(header) or 'none'}; "
                                "expected id,pred[,gt])")
            col = {name: header.index(name) for name in header}
            start = reader.line_num + 1
            for row in reader:
                lineno, start = start, reader.line_num + 1
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{lineno}: {len(row)} fields, the header has {len(header)}")
                rid = row[col["id"]].strip()
                if not rid:
                    raise DataError(f"{path}:{lineno}: empty id")
                clip_id = row[col["clip_id"]].strip() if "clip_id" in col else None
                if not clip_id and "meta" in col:
                    clip_id = _meta_clip_id(row[col["meta"]])
                gt = row[col["gt"]] if "gt" in col else None
                open_pred = row[col["open_pred"]] if "open_pred" in col else None
                out.append(Prediction(rid, row[col["pred"]], lineno, gt, clip_id or None, open_pred=open_pred,
                                      has_open="open_pred" in col))
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: invalid CSV ({err})") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err})") from None
    return out


# ----------------------------------------------------------------------------- joining predictions to items
@dataclass
class Joined:
    """One benchmark item with its prediction. `annotation` is None when the GT came from a `gt` column."""

    id: str
    annotation: object
    prediction: Prediction | None  # None: no prediction row for this annotated item ("missing")
    gt_text: str | None = None  # the prediction row's `gt` cell, when it supplies the GT


def _check_duplicate(seen: dict, key: str, pred: Prediction, path: Path, what: str) -> None:
    if key in seen:
        raise DataError(f"{path}:{pred.line}: duplicate prediction for {what} {key!r} (first on line {seen[key].line})")
    seen[key] = pred


def join(benchmark: str, annotations, predictions: list[Prediction], path: Path, setting: str = "scene",
         prefer_gt_column: bool = False) -> tuple[list[Joined], bool]:
    """(items, coverage_checked): predictions matched to annotations in annotation order, then the rows scored
    from their own `gt` column.

    Keys: HAL clip_id, ERO video_id, RR clip_id (scene setting: the id; whole setting: the row's clip_id
    column or meta, since a video has 4 questions). A row whose key is not annotated must carry `gt`
    (the official scripts' way), else DataError naming the line. `prefer_gt_column` (official compat): a
    row's `gt` cell overrides the annotation, as the official scorer does.
    """
    path = Path(path)
    if benchmark == "RR":
        by_key = {a.clip_id: a for a in annotations}
    else:
        by_key = dict(annotations)
    seen: dict[str, Prediction] = {}
    matched: dict[str, Prediction] = {}
    extra: list[Joined] = []
    for pred in predictions:
        key = pred.id
        has_gt = pred.gt is not None and pred.gt.strip() != ""  # an empty gt cell supplies nothing
        if benchmark == "RR" and setting == "whole":
            key = pred.clip_id or ""
            if not key and not has_gt:
                raise DataError(f"{path}:{pred.line}: whole-video predictions need a clip_id column (or the official "
                                f"meta column, or a gt column): video {pred.id!r} has several questions")
        if key and key in by_key and not (prefer_gt_column and has_gt):
            _check_duplicate(seen, key, pred, path, "clip_id" if benchmark != "ERO" else "video_id")
            matched[key] = pred
        elif has_gt:
            extra.append(Joined(pred.id, None, pred, pred.gt))
        else:
            what = {"HAL": "clip_id", "RR": "clip_id", "ERO": "video_id"}[benchmark]
            raise DataError(f"{path}:{pred.line}: {what} {key or pred.id!r} is not in the annotations "
                            "(and the row has no gt column)")
    # annotated items without a prediction are "missing" (scored 0 by default); when some rows brought their own
    # GT, which annotated item they answer is unknown, so coverage cannot be checked and they are left out
    coverage = not extra
    items = [Joined(key, ann, matched.get(key)) for key, ann in by_key.items() if coverage or key in matched]
    return items + extra, coverage
