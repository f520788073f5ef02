"""FAVDBench data: split lists, bilingual annotations, media paths, and the summary/visual/audio split.

Layout (a local copy of the Hugging Face dataset OpenNLPLab/FAVDBench plus the raw media, which is requested
from the authors; reference: /work/shared/reference/vript-favd.md §3.1):

    ROOT/meta/{train,val,test}.csv        header `ytid,start,end`
    ROOT/annotations_en.json              English descriptions (lang "en")
    ROOT/annotations_cn.json              Chinese descriptions (lang "zh")
    ROOT/videos/<split>/<clip id>.mp4     raw clips (also ROOT/videos/<clip id>.mp4), optional
    ROOT/audio_mp3/<split>/<clip id>.mp3  raw audio (.mp3/.wav/.flac/.m4a/.ogg), optional

Clip ids are `<ytid>_<start_ms>_<end_ms>` (e.g. `-05wY41ht1s_123000_133000`; the AudioScore result.csv and the
official frame names use them). The dataset card says `start`/`end` are seconds, but the values (5,000-10,000,
123,000-133,000 for 5 s and 10 s clips) are milliseconds: a CSV whose every clip is at most 60 units long is read
as seconds and converted, any other as milliseconds (the unit found is in `FAVDClip.start_s`/`end_s`, seconds).
YouTube ids may hold `_` and `-`, so ids are parsed from the right.

Annotation files are read in every shape the released files and the official metadata take: a JSON object
{clip id: description | [descriptions] | {"caption": ...}}, a JSON list of records {"image_id"|"clip_id"|
"video_id"|"vid"|"name"|"id": ..., "caption"|"description"|"text"|"desc": ...}, a COCO caption file
{"annotations": [{"image_id", "caption"}]} (the official test.caption_coco_format.json), or the official
`<split>.caption.tsv` (`test/<id>.mp4<TAB>[{"caption": ...}]`). Keys may carry a split folder and a file
extension (`test/<id>.mp4`), which are dropped. Any problem is a one-line DataError naming the file.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import DataError

SPLITS = ("train", "val", "test")
LANGS = ("en", "zh")
ANNOTATION_FILES = {"en": "annotations_en.json", "zh": "annotations_cn.json"}
VIDEO_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov")
AUDIO_EXTS = (".mp3", ".wav", ".flac", ".m4a", ".ogg")
_ID_KEYS = ("image_id", "clip_id", "video_id", "vid", "name", "id")  # COCO: "id" is the annotation's
_TEXT_KEYS = ("caption", "description", "text", "desc")
_SECONDS_MAX_LEN = 60  # a CSV whose clips are all <= 60 units long is in seconds (FAVD clips are 5 s or 10 s)


class FAVDBenchConfig(BaseModel):
    """The [data] table of a FAVD describe finetune: where FAVDBench is and which language to train on."""

    model_config = ConfigDict(extra="forbid", strict=True)

    root: str = Field("", description="FAVDBench folder: meta/{train,val,test}.csv + annotations_{en,cn}.json")
    lang: Literal["en", "zh"] = Field("en", description="annotation language: en (annotations_en.json) or "
                                                        "zh (annotations_cn.json)")
    video_dir: str = Field("videos", description="raw clips, relative to root: <dir>/<split>/<id>.mp4 or "
                                                 "<dir>/<id>.mp4")
    audio_dir: str = Field("audio_mp3", description="raw audio, relative to root: <dir>/<split>/<id>.mp3 "
                                                    "(.wav/.flac too) or <dir>/<id>.mp3")
    train_split: Literal["train", "val", "test"] = "train"
    val_split: Literal["train", "val", "test", ""] = Field("val", description="described and scored (BLEU, CIDEr) "
                                                                             "at each eval; empty: none")
    val_clips: int = Field(0, ge=0, description="score only the first N clips of val_split; 0: all")
    batch_size: int = Field(2, ge=1, description="clips per micro-batch on each rank (the official: 2 per GPU)")
    shuffle: bool = True


@dataclass(frozen=True)
class FAVDClip:
    id: str  # <ytid>_<start_ms>_<end_ms>
    ytid: str
    start_s: float
    end_s: float
    caption: str  # the (first) reference description
    video_path: Path | None = None
    audio_path: Path | None = None
    references: tuple[str, ...] = ()  # every reference description (FAVDBench has one per clip)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def clip_id(ytid: str, start_ms: int, end_ms: int) -> str:
    return f"{ytid}_{int(start_ms)}_{int(end_ms)}"


def parse_clip_id(text: str) -> tuple[str, int, int]:
    """`<ytid>_<start_ms>_<end_ms>` -> (ytid, start_ms, end_ms); the YouTube id itself may hold '_'."""
    parts = text.rsplit("_", 2)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isdigit():
        raise DataError(f"clip id {text!r} is not FAVDBench's <ytid>_<start_ms>_<end_ms>")
    return parts[0], int(parts[1]), int(parts[2])


def normalize_id(key: str) -> str:
    """`test/abc_0_10000.mp4` -> `abc_0_10000` (the official TSV keys carry the split folder and extension)."""
    name = str(key).strip().replace("\\", "/").rsplit("/", 1)[-1]
    for ext in (*VIDEO_EXTS, *AUDIO_EXTS):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


# ----------------------------------------------------------------------------- meta CSV
def read_meta(path: str | Path) -> list[tuple[str, str, float, float]]:
    """meta/<split>.csv -> [(clip id, ytid, start_s, end_s)] in file order (ms or s, see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no split list {path} (FAVDBench's meta/<split>.csv with header ytid,start,end)")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            if not {"ytid", "start", "end"} <= set(fields):
                raise DataError(f"{path}: header must hold ytid,start,end, got {','.join(fields) or 'nothing'}")
            rows = []
            for line, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                if not any(row.values()):
                    continue
                try:
                    start, end = float(row["start"]), float(row["end"])
                except ValueError:
                    raise DataError(f"{path}:{line}: start/end must be numbers, got {row['start']!r}, "
                                    f"{row['end']!r}") from None
                if not row["ytid"] or end <= start:
                    raise DataError(f"{path}:{line}: needs a ytid and end > start")
                rows.append((line, row["ytid"], start, end))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None
    if not rows:
        raise DataError(f"{path}: no clips listed")
    seconds = max(end - start for _, _, start, end in rows) <= _SECONDS_MAX_LEN
    scale = 1000.0 if seconds else 1.0
    out, seen = [], {}
    for line, ytid, start, end in rows:
        start_ms, end_ms = round(start * scale), round(end * scale)
        cid = clip_id(ytid, start_ms, end_ms)
        if cid in seen:
            raise DataError(f"{path}:{line}: clip {cid} is listed twice (also line {seen[cid]})")
        seen[cid] = line
        out.append((cid, ytid, start_ms / 1000.0, end_ms / 1000.0))
    return out


# ----------------------------------------------------------------------------- annotations
def _texts(value, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        for key in _TEXT_KEYS:
            if key in value:
                return _texts(value[key], where)
        raise DataError(f"{where}: a record needs one of {', '.join(_TEXT_KEYS)}")
    if isinstance(value, list) and value:
        texts = []
        for item in value:
            texts.extend(_texts(item, where))
        return texts
    raise DataError(f"{where}: a description must be text (or a list of texts), got {type(value).__name__}")


def _record_id(rec: dict, where: str) -> str:
    for key in _ID_KEYS:
        if key in rec and isinstance(rec[key], (str, int)):
            return normalize_id(str(rec[key]))
    raise DataError(f"{where}: a record needs an id ({', '.join(_ID_KEYS)})")


def _add(out: dict[str, list[str]], cid: str, texts: list[str]) -> None:
    out.setdefault(cid, []).extend(texts)


def _read_text(path: Path, what: str) -> str:
    """The file's text (UTF-8, a BOM dropped); a missing or undecodable file is a one-line DataError."""
    if not path.is_file():
        raise DataError(f"no {what} file {path}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason})") from None


def read_annotations(path: str | Path) -> dict[str, list[str]]:
    """An annotation file in any of the shapes of the module doc -> {clip id: [description, ...]}."""
    path = Path(path)
    text = _read_text(path, "annotation")
    out: dict[str, list[str]] = {}
    if path.suffix.lower() == ".tsv":
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            key, _, cell = line.partition("\t")
            try:
                value = json.loads(cell)
            except json.JSONDecodeError:
                value = cell  # a plain-text caption cell
            _add(out, normalize_id(key), _texts(value, f"{path}:{line_no}"))
        if not out:
            raise DataError(f"{path}: no annotations")
        return out
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: broken JSON ({err.msg})") from None
    if isinstance(doc, dict) and isinstance(doc.get("annotations"), list):
        doc = doc["annotations"]  # COCO caption format
    if isinstance(doc, dict):
        for key, value in doc.items():
            _add(out, normalize_id(key), _texts(value, f"{path}: {key!r}"))
    elif isinstance(doc, list):
        for i, rec in enumerate(doc):
            where = f"{path}: item {i}"
            if not isinstance(rec, dict):
                raise DataError(f"{where}: expected an object, got {type(rec).__name__}")
            _add(out, _record_id(rec, where), _texts(rec, where))
    else:
        raise DataError(f"{path}: expected a JSON object or list of annotations")
    if not out:
        raise DataError(f"{path}: no annotations")
    return out


def annotation_file(root: str | Path, lang: str = "en") -> Path:
    if lang not in LANGS:
        raise DataError(f"language must be one of {', '.join(LANGS)}, got {lang!r}")
    return Path(root) / ANNOTATION_FILES[lang]


def _find_media(root: Path, folder: str, split: str, cid: str, exts: tuple[str, ...]) -> Path | None:
    if not folder:
        return None
    base = root / folder
    for directory in (base / split, base):
        for ext in exts:
            path = directory / f"{cid}{ext}"
            if path.is_file():
                return path
    return None


def load_favdbench(root: str | Path, split: str = "test", lang: str = "en", *, video_dir: str = "videos",
                   audio_dir: str = "audio_mp3") -> list[FAVDClip]:
    """The clips of one split, in meta CSV order, each with its reference description and media paths (None
    where the file is absent). Every listed clip must have an annotation (DataError naming the first missing)."""
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not root.is_dir():
        raise DataError(f"no FAVDBench folder {root}")
    meta = read_meta(root / "meta" / f"{split}.csv")
    ann_path = annotation_file(root, lang)
    annotations = read_annotations(ann_path)
    missing = [cid for cid, *_ in meta if cid not in annotations]
    if missing:
        raise DataError(f"{ann_path}: {len(missing)} clip(s) of meta/{split}.csv have no description, first "
                        f"{missing[0]}")
    clips = []
    for cid, ytid, start_s, end_s in meta:
        refs = tuple(annotations[cid])
        clips.append(FAVDClip(cid, ytid, start_s, end_s, refs[0],
                              _find_media(root, video_dir, split, cid, VIDEO_EXTS),
                              _find_media(root, audio_dir, split, cid, AUDIO_EXTS), refs))
    return clips


def load_from_config(config: FAVDBenchConfig, split: str) -> list[FAVDClip]:
    if not config.root:
        raise DataError("[data] root is empty: set it to the FAVDBench folder (meta/ + annotations_*.json)")
    return load_favdbench(config.root, split, config.lang, video_dir=config.video_dir, audio_dir=config.audio_dir)


# ----------------------------------------------------------------------------- summary / visual / audio
# Words that mark a sentence as about sound (used only to decide whether the second-to-last sentence is audio).
_SOUND_WORDS_EN = re.compile(r"\b(sound|sounds|sounded|hear|heard|hears|audio|voice|voices|noise|noises|music|"
                             r"musical|sing|sings|singing|song|songs|speak|speaks|speaking|talk|talks|talking|"
                             r"say|says|saying|said|loud|loudly|quiet|quietly|melod\w*|rhythm\w*|tone|tones|"
                             r"bark\w*|ring\w*|beep\w*|buzz\w*|roar\w*|chirp\w*|whistl\w*|applau\w*|laugh\w*|"
                             r"cry|cries|crying|shout\w*|scream\w*|clap\w*|knock\w*|crash\w*|bang\w*|hum\w*|"
                             r"engine|instrument\w*|drum\w*|guitar\w*|piano)\b")
_SOUND_WORDS_ZH = re.compile(r"[声音响唱说讲叫鸣]|音乐|旋律|节奏")


def split_sentences(text: str, lang: str = "en") -> list[str]:
    """Sentences with their end mark. English: after '.', '!' or '?' followed by white space (the annotations
    separate sentences with ". "); Chinese: after '。', '！' or '？' (white space not needed)."""
    text = " ".join(str(text).split())
    if not text:
        return []
    pattern = r"(?<=[。！？])\s*" if lang == "zh" else r"(?<=[.!?])\s+"
    return [s.strip() for s in re.split(pattern, text) if s.strip()]


def split_description(text: str, lang: str = "en", audio_sentences: int | None = None
                      ) -> tuple[str, list[str], list[str]]:
    """A FAVD description -> (summary, visual sentences, audio sentences).

    FAVDBench marks nothing: the first sentence is the one-sentence summary, then 4-6 visual sentences, then
    1-2 audio sentences at the end (maintainers, OpenNLPLab/FAVDBench#12: "assume last 1-2 lines are
    audio-related"). The rule here: `audio_sentences` = 1 or 2 takes that many final sentences; None (default)
    always takes the last sentence (the one AudioScore reads) and also the one before it when that one speaks
    of sound (a fixed word list: sound, hear, voice, music, speaks, ...; 声/音/响/唱/说/... in Chinese).
    The summary is never audio; with one sentence there is only a summary.
    """
    if audio_sentences not in (None, 0, 1, 2):
        raise ValueError(f"audio_sentences must be None, 0, 1 or 2, got {audio_sentences}")
    sentences = split_sentences(text, lang)
    if not sentences:
        return "", [], []
    summary, rest = sentences[0], sentences[1:]
    if audio_sentences is None:
        n_audio = 1 if rest else 0
        if len(rest) >= 3:  # keep at least one visual sentence
            words = _SOUND_WORDS_ZH if lang == "zh" else _SOUND_WORDS_EN
            if words.search(rest[-2].lower()):
                n_audio = 2
    else:
        n_audio = min(audio_sentences, len(rest))
    cut = len(rest) - n_audio
    return summary, rest[:cut], rest[cut:]


# ----------------------------------------------------------------------------- prediction files
def parse_predictions(doc, where: str) -> dict[str, str]:
    """{id: caption} or a COCO result list [{"image_id", "caption"}] (also "id" / "clip_id" for the id) ->
    {clip id: caption}. Ids keep their order; a split folder or extension on an id is dropped."""
    out: dict[str, str] = {}

    def put(key, caption, item: str) -> None:
        if not isinstance(key, (str, int)) or isinstance(key, bool) or not str(key).strip():
            raise DataError(f"{where}: {item}: the id must be a clip id string, got {key!r}")
        if not isinstance(caption, str):
            raise DataError(f"{where}: {item}: the caption must be text, got {type(caption).__name__}")
        cid = normalize_id(str(key))
        if cid in out:
            raise DataError(f"{where}: {item}: clip {cid} is predicted twice")
        out[cid] = caption

    if isinstance(doc, dict):
        if isinstance(doc.get("annotations"), list):  # a COCO file with an annotations list
            doc = doc["annotations"]
        else:
            for key, caption in doc.items():
                put(key, caption, f"id {key!r}")
            return out
    if not isinstance(doc, list):
        raise DataError(f"{where}: expected {{id: caption}} or a list of {{\"image_id\", \"caption\"}}, got "
                        f"{type(doc).__name__}")
    for i, rec in enumerate(doc):
        item = f"item {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: {item}: expected {{\"image_id\", \"caption\"}}, got {type(rec).__name__}")
        key = next((rec[k] for k in ("image_id", "id", "clip_id") if k in rec), None)
        if key is None:
            raise DataError(f"{where}: {item}: no image_id")
        if "caption" not in rec:
            raise DataError(f"{where}: {item} ({key}): no caption")
        put(key, rec["caption"], f"{item} ({key})")
    return out


def read_predictions(path: str | Path) -> dict[str, str]:
    """A predictions file: JSON ({id: caption} or a COCO list) or JSON lines ({"image_id"|"id", "caption"} per
    line) -> {clip id: caption}. Problems are one-line DataErrors naming the file and the item or line."""
    path = Path(path)
    text = _read_text(path, "predictions")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{line_no}: broken JSON ({err.msg})") from None
        try:
            return parse_predictions(rows, str(path))
        except DataError as err:  # name the line, not the row index
            msg = str(err)
            match = re.match(rf"{re.escape(str(path))}: item (\d+)(.*)", msg)
            if match:
                line_no = [n for n, line in enumerate(text.splitlines(), 1) if line.strip()][int(match.group(1))]
                raise DataError(f"{path}:{line_no}{match.group(2)}") from None
            raise
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: broken JSON ({err.msg})") from None
    preds = parse_predictions(doc, str(path))
    if not preds:
        raise DataError(f"{path}: no predictions")
    return preds
