"""Video lists for classification: Kinetics-style CSV / `path label` lines and SSv2 JSON.

  - Kinetics CSV with a header: `path,label[,...]` (path relative to the videos root, or absolute), or the
    official annotation layout `youtube_id,label,time_start,time_end[,split]`, whose clips are found under the
    root by name (`<youtube_id>_<start:06d>_<end:06d>.<ext>`, or any file whose name starts with the id);
  - plain `path label` lines (the SlowFast / XViT format; the label is the last whitespace-separated field);
  - SSv2 JSON: a list of {"id", "label", "template", "placeholders"}; the class is the template with its
    brackets removed, looked up in labels.json (beside the list when not given); the video is
    `<root>/<id>.webm` (or .mp4 / .mkv / .avi).
A label is a class id or a class name; names go through the label map when one is given, else they are
numbered in sorted order (the Kinetics convention).
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


@dataclass
class VideoItem:
    path: Path
    label: int | None  # class id (None: unlabelled, e.g. an SSv2 test list)
    raw_label: str = ""  # as written in the list


@dataclass
class VideoList:
    items: list[VideoItem]
    classes: list[str] | None  # id -> name when known (names in the list, or a label map)
    source: str = ""
    format: str = ""

    @property
    def num_classes(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        ids = [i.label for i in self.items if i.label is not None]
        return max(ids) + 1 if ids else 0

    def class_names(self) -> list[str]:
        return list(self.classes) if self.classes is not None else [str(i) for i in range(self.num_classes)]


def resolve_data_path(path: str | Path, roots: list[Path] = ()) -> Path:
    """A relative path from the working directory if it exists there, else from the first root that has it."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    for root in roots:
        if (Path(root) / p).exists():
            return Path(root) / p
    return p


def read_label_map(path: str | Path) -> dict[str, int]:
    """name -> id from JSON {name: id} (ids may be strings, as in SSv2's labels.json), JSON [names], or
    a text file with one name per line (line number = id)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"cannot read the label map {path}: {err.strerror or err}") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as err:
            raise DataError(f"{path} is not valid JSON ({err})") from None
        if isinstance(data, list):
            return {str(name): i for i, name in enumerate(data)}
        if isinstance(data, dict):
            try:
                return {str(name): int(i) for name, i in data.items()}
            except (TypeError, ValueError):
                raise DataError(f"{path}: label map values must be class ids (integers)") from None
        raise DataError(f"{path}: a label map is a JSON object {{name: id}} or a list of names")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    return {name: i for i, name in enumerate(names)}


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


def read_video_list(path: str | Path, root: str | Path | None = None, *, labels: str | Path | None = None,
                    label2id: dict[str, int] | None = None) -> VideoList:
    """Parse a Kinetics CSV, a `path label` list or an SSv2 JSON list (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"video list not found: {path}; pass a CSV, a `path label` list or an SSv2 JSON file")
    root = Path(root) if root else path.parent
    if labels:  # an explicit label map wins; then (SSv2) labels.json beside the list; then `label2id`
        label2id = read_label_map(labels)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the video list {path}: {err}") from None
    if path.suffix == ".json" or text.lstrip().startswith("["):
        if not labels:
            label2id = _ssv2_label_map(path) or label2id
        return _read_ssv2(path, text, root, label2id)
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{path} lists no videos")
    header = [h.strip().lower() for h in lines[0].split(",")]
    if "," in lines[0] and "label" in header and ("path" in header or "youtube_id" in header):
        rows = _read_csv(path, text, root, header)
        fmt = "kinetics-csv"
    else:
        rows = []
        for n, line in enumerate(lines, 1):
            parts = line.rsplit(None, 1)
            if len(parts) != 2:
                raise DataError(f"{path} line {n}: expected `path label`, got {line.strip()!r}")
            rows.append((_join(root, parts[0]), parts[1].strip()))
        fmt = "path-label"
    return _assign_labels(path, rows, label2id, fmt)


def _join(root: Path, rel: str) -> Path:
    p = Path(rel.strip()).expanduser()
    return p if p.is_absolute() else root / p


def _read_csv(path: Path, text: str, root: Path, header: list[str]) -> list[tuple[Path, str]]:
    reader = csv.DictReader(text.splitlines())
    reader.fieldnames = [h.strip().lower() for h in reader.fieldnames or []]
    index = _VideoIndex(root)
    rows = []
    for n, row in enumerate(reader, 2):
        label = (row.get("label") or "").strip()
        if "path" in header:
            rel = (row.get("path") or "").strip()
            if not rel:
                raise DataError(f"{path} line {n}: empty path")
            rows.append((_join(root, rel), label))
        else:
            yid = (row.get("youtube_id") or "").strip()
            if not yid:
                raise DataError(f"{path} line {n}: empty youtube_id")
            stem = yid
            if (row.get("time_start") or "").strip() and (row.get("time_end") or "").strip():
                try:
                    stem = f"{yid}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
                except ValueError:
                    raise DataError(f"{path} line {n}: time_start/time_end must be numbers") from None
            rows.append((index.find(stem, yid, label), label))
    return rows


class _VideoIndex:
    """Video files below a root by stem, built on first use (official Kinetics layouts name clips by id)."""

    def __init__(self, root: Path):
        self.root, self._by_stem = root, None

    def find(self, stem: str, youtube_id: str, label: str) -> Path:
        if self._by_stem is None:
            self._by_stem = {}
            for folder, _, files in os.walk(self.root):
                for name in files:
                    p = Path(folder) / name
                    if p.suffix.lower() in VIDEO_SUFFIXES:
                        self._by_stem.setdefault(p.stem, p)
                        self._by_stem.setdefault(p.stem[:11], p)  # YouTube ids are 11 characters
        found = self._by_stem.get(stem) or self._by_stem.get(youtube_id)
        # a missing clip keeps its nominal path, so decoding reports it as "media file not found"
        return found or self.root / label / f"{stem}.mp4"


def _ssv2_label_map(list_path: Path) -> dict[str, int] | None:
    for name in ("labels.json", "something-something-v2-labels.json"):
        if (list_path.parent / name).is_file():
            return read_label_map(list_path.parent / name)
    return None


def _read_ssv2(path: Path, text: str, root: Path, label2id: dict[str, int] | None) -> VideoList:
    try:
        entries = json.loads(text)
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "id" in e for e in entries):
        raise DataError(f"{path}: an SSv2 list is a JSON list of objects with an \"id\"")
    if not entries:
        raise DataError(f"{path} lists no videos")
    items = []
    for e in entries:
        vid = str(e["id"])
        video = root / f"{vid}.webm"
        if not video.exists():
            video = next((root / f"{vid}{s}" for s in VIDEO_SUFFIXES if (root / f"{vid}{s}").exists()), video)
        template = e.get("template")
        if template is None and e.get("label") is None:
            items.append(VideoItem(video, None, ""))
            continue
        name = (template or e["label"]).replace("[", "").replace("]", "")
        if label2id is None:
            raise DataError(f"{path} has labelled SSv2 entries but no label map: put labels.json beside it or "
                            "pass the labels file")
        if name not in label2id:
            raise DataError(f"{path}: video {vid}: class {name!r} is not in the label map")
        items.append(VideoItem(video, label2id[name], name))
    classes = _names_from_map(label2id) if label2id else None
    return VideoList(items, classes, str(path), "ssv2-json")


def _names_from_map(label2id: dict[str, int]) -> list[str]:
    n = max(label2id.values()) + 1
    names = [str(i) for i in range(n)]
    for name, i in label2id.items():
        names[i] = name
    return names


def _assign_labels(path: Path, rows: list[tuple[Path, str]], label2id: dict[str, int] | None,
                   fmt: str) -> VideoList:
    if not rows:
        raise DataError(f"{path} lists no videos")
    if label2id is not None:
        items, n = [], max(label2id.values()) + 1
        for video, raw in rows:
            if raw in label2id:
                items.append(VideoItem(video, label2id[raw], raw))
            elif _is_int(raw) and 0 <= int(raw) < n:
                items.append(VideoItem(video, int(raw), raw))
            else:
                raise DataError(f"{path}: {video.name}: label {raw!r} is not in the label map ({n} classes)")
        return VideoList(items, _names_from_map(label2id), str(path), fmt)
    ints = [_is_int(raw) for _, raw in rows]
    if all(ints):
        items = [VideoItem(v, int(raw), raw) for v, raw in rows]
        bad = [i for i in items if i.label < 0]
        if bad:
            raise DataError(f"{path}: negative class id {bad[0].raw_label} for {bad[0].path.name}")
        return VideoList(items, None, str(path), fmt)
    if any(ints):
        first = next(raw for (_, raw), is_int in zip(rows, ints) if is_int)
        raise DataError(f"{path} mixes class ids ({first!r}) and class names; use one or the other, or pass a "
                        "label map")
    empty = [v for v, raw in rows if not raw]
    if empty:
        raise DataError(f"{path}: {empty[0].name} has no label")
    classes = sorted({raw for _, raw in rows})
    ids = {name: i for i, name in enumerate(classes)}
    return VideoList([VideoItem(v, ids[raw], raw) for v, raw in rows], classes, str(path), fmt)
