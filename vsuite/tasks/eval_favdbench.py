"""`vsuite eval favdbench (--predictions FILE | --model M) --data DIR`: score fine-grained audible video descriptions.

Reads one FAVDBench split (vsuite.data.favdbench: meta/<split>.csv + annotations_<lang>.json), matches the
predictions to it (every clip of the split exactly once), and scores them as the official evaluation does:
BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D) with the COCO caption protocol (vsuite.metrics.caption_coco, Java) and
EntityScore (vsuite.metrics.favd: noun tagger + T5 encoder) and AudioScore (the authors' TriLip model,
vsuite.models.trilip, from --audioscore-model TriLip.bin; without it one line says it was skipped and why).
Writes OUT/results.json + OUT/samples.jsonl
(vsuite.metrics.results), prints the table on stderr and, with --json, results.json on stdout.

With `--model M` instead of `--predictions`, the describer (vsuite.models.describer.describe_clips) first writes a
description of every clip into OUT/predictions.json (COCO result list), which is then scored the same way.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from ..console import log, out, warn
from ..errors import UsageError

BENCHMARK = "favdbench"
METRIC_GROUPS = ("bleu", "meteor", "rouge", "cider", "entity", "audio")


@dataclass
class FavdOptions:
    data: str
    predictions: str | None = None
    model: str | None = None
    split: str = "test"
    lang: str = "en"
    out: str | None = None
    as_json: bool = False
    metrics: str = "all"  # comma list of METRIC_GROUPS, or "all"
    t5_model: str = "t5-base"  # EntityScore's encoder (the official one)
    tagger: str = "spacy:en_core_web_sm"  # EntityScore's noun tagger (the official one is nltk)
    audioscore_model: str | None = None  # TriLip.bin (or a folder holding it); None: AudioScore skipped
    device: str = "auto"  # the T5 encoder and TriLip; with --model also the describer
    beams: int = 0  # with --model: 0 = the describer's default
    limit: int = 0  # with --model: only the first N clips of the split


def metric_groups(spec: str) -> tuple[str, ...]:
    """`all` | `bleu,meteor,...` -> the groups, in METRIC_GROUPS order (UsageError naming --metrics)."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names == ["all"]:
        return METRIC_GROUPS
    bad = [n for n in names if n not in METRIC_GROUPS]
    if bad or not names:
        raise UsageError(f"--metrics takes all or a comma list of {', '.join(METRIC_GROUPS)}, got {spec!r}")
    return tuple(g for g in METRIC_GROUPS if g in names)


def check_options(opts: FavdOptions) -> None:
    """Pure checks of the flag values (UsageError, exit 2), before anything heavy is imported."""
    if (opts.model is None) == (not opts.predictions):
        which = "not both" if opts.model is not None else "one of them is needed"
        raise UsageError("give --predictions FILE (score existing descriptions) or --model M (generate them), "
                         f"{which}")
    if opts.split not in ("train", "val", "test"):
        raise UsageError(f"--split must be one of train, val, test, got {opts.split!r}")
    if opts.lang not in ("en", "zh"):
        raise UsageError(f"--lang must be one of en, zh, got {opts.lang!r}")
    if opts.limit and opts.model is None:
        raise UsageError("--limit applies with --model only (a predictions file is scored whole)")
    for flag, value in (("--limit", opts.limit), ("--beams", opts.beams)):
        if value < 0:
            raise UsageError(f"{flag} must be >= 0, got {value}")
    groups = metric_groups(opts.metrics)
    if "entity" in groups:
        for flag, value in (("--t5-model", opts.t5_model), ("--tagger", opts.tagger)):
            if not str(value).strip():
                raise UsageError(f"{flag} must name a model or a folder")
        kind = opts.tagger.partition(":")[0]
        if kind not in ("spacy", "nltk") or (kind == "nltk" and opts.tagger != "nltk"):
            raise UsageError(f"--tagger must be nltk, spacy or spacy:NAME_OR_FOLDER, got {opts.tagger!r}")


def default_out(opts: FavdOptions) -> Path:
    """`<predictions stem>.favdbench/` beside the predictions file, or `runs/eval/favdbench-<model>`."""
    if opts.model is not None:
        return Path("runs") / "eval" / f"{BENCHMARK}-{Path(opts.model.rstrip('/')).name}"
    path = Path(opts.predictions)
    return path.with_name(f"{path.stem}.{BENCHMARK}")


def resolved_command(opts: FavdOptions, out_dir: Path) -> str:
    args = ["vsuite", "eval", BENCHMARK, "--data", str(Path(opts.data).resolve()), "--split", opts.split,
            "--lang", opts.lang]
    if opts.model is not None:
        args += ["--model", opts.model]
        if opts.beams:
            args += ["--beams", str(opts.beams)]
        if opts.limit:
            args += ["--limit", str(opts.limit)]
    else:
        args += ["--predictions", str(Path(opts.predictions).resolve())]
    args += ["--out", str(out_dir.resolve()), "--metrics", ",".join(metric_groups(opts.metrics))]
    groups = metric_groups(opts.metrics)
    if "entity" in groups:
        args += ["--t5-model", opts.t5_model, "--tagger", opts.tagger]
    if "audio" in groups and opts.audioscore_model:
        args += ["--audioscore-model", opts.audioscore_model]
    if "entity" in groups or opts.model is not None or ("audio" in groups and opts.audioscore_model):
        args += ["--device", opts.device]
    return shlex.join(args)


def match(clips, predictions: dict[str, str], pred_path: Path) -> None:
    """Every clip of the split predicted, nothing else (DataError naming the file and the first offender)."""
    from ..errors import DataError

    ids = {c.id for c in clips}
    missing = [c.id for c in clips if c.id not in predictions]
    extra = [k for k in predictions if k not in ids]
    if missing:
        raise DataError(f"{pred_path}: {len(missing)} clip(s) of the split have no prediction, first {missing[0]}")
    if extra:
        raise DataError(f"{pred_path}: {len(extra)} prediction(s) are not clips of the split, first {extra[0]} "
                        f"(wrong --split?)")


def run(opts: FavdOptions) -> dict:
    check_options(opts)
    from ..data import favdbench as D
    from ..metrics import caption_coco as CC
    from ..metrics import favd as F
    from ..metrics.results import print_table, write_results

    start = time.monotonic()
    groups = metric_groups(opts.metrics)
    clips = D.load_favdbench(opts.data, opts.split, opts.lang)
    if opts.model is not None and opts.limit:
        clips = clips[:opts.limit]
    out_dir = Path(opts.out) if opts.out else default_out(opts)
    coco_groups = [g for g in groups if g in CC.GROUPS]
    if coco_groups:
        CC.check_available(coco_groups)  # fail before any generation
    entity_models = _load_entity_models(opts) if "entity" in groups else None
    audio_reason = F.audioscore_skip_reason(opts.audioscore_model) if "audio" in groups else None
    trilip = None
    if "audio" in groups and audio_reason is None:
        _check_audio_media(clips, opts)  # before any model loads or generation: no partial output
        trilip = _load_trilip(opts)

    model_info: dict = {"name": None, "source": "predictions"}
    protocol: dict = {"frames": None, "fps": None, "decoder": None, "prompt_hash": None,
                      "note": "descriptions made outside vsuite: protocol not verified"}
    if opts.model is not None:
        pred_path, model_info, protocol = generate_predictions(clips, opts, out_dir)
    else:
        pred_path = Path(opts.predictions)
        model_info["path"] = str(pred_path.resolve())
    predictions = D.read_predictions(pred_path)
    match(clips, predictions, pred_path)
    preds = {c.id: predictions[c.id] for c in clips}  # benchmark order
    refs = {c.id: list(c.references or (c.caption,)) for c in clips}
    log(f"favdbench: {len(preds)} description(s) of {pred_path} against the {opts.split} split of {opts.data} "
        f"({opts.lang})")
    if opts.lang == "zh" and coco_groups:
        warn("Chinese descriptions: the COCO PTB tokenizer does not segment Chinese words, and METEOR uses English "
             "resources; the numbers follow the official code but compare only with the same protocol")

    scores: dict = {}
    per_item: dict[str, dict] = {cid: {} for cid in preds}
    details: dict = {}
    if coco_groups:
        corpus, items = CC.caption_scores(preds, refs, coco_groups)
        scores.update(corpus)
        for cid, values in items.items():
            per_item[cid].update(values)
    entity_items = {}
    if entity_models is not None:
        from ..console import Progress

        tagger, encoder, info = entity_models
        with Progress("EntityScore", len(preds), every=max(1, len(preds) // 10)) as progress:
            summary, entity_items = F.entity_scores(preds, refs, tagger, encoder, on_item=progress.advance)
        scores.update(summary)
        for cid, item in entity_items.items():
            per_item[cid]["EntityScore"] = item.score
        details["entity"] = info
        if summary["EntityScore_skipped"]:
            warn(f"EntityScore: {summary['EntityScore_skipped']} clip(s) without nouns on one side are left out of "
                 f"the mean (official behaviour)")
    if "audio" in groups and trilip is None:
        log(audio_reason)
        scores["AudioScore"] = None  # reported, not computed
        details["audioscore"] = {"skipped": audio_reason}
    elif trilip is not None:
        summary, audio_items = _audio_scores(clips, preds, trilip, opts)
        scores.update(summary)
        for cid, values in audio_items.items():
            per_item[cid]["AudioScore"] = values["AudioScore"]
        details["audioscore"] = trilip[2]

    samples = []
    for c in clips:
        sample = {"id": c.id, "target": refs[c.id][0], "response": preds[c.id], "score": per_item[c.id]}
        if trilip is not None:
            sample["audioscore_logit"] = audio_items[c.id]["logit"]
        if c.id in entity_items:
            it = entity_items[c.id]
            sample["entity"] = {"pred_nouns": it.pred_nouns, "ref_nouns": it.ref_nouns, "R": it.recall,
                                "C": it.comprehensiveness}
        samples.append(sample)
    config = {"data": str(Path(opts.data).resolve()), "split": opts.split, "lang": opts.lang,
              "predictions": str(pred_path.resolve()), "metrics": list(groups),
              "caption_protocol": "coco-caption (PTB tokenizer, Bleu closest, Meteor 1.5, Rouge-L, CIDEr-D corpus df)"
              if coco_groups else None}
    doc = write_results(out_dir, scores, samples, resolved_command(opts, out_dir), model_info, protocol,
                        benchmark=BENCHMARK, config=config, elapsed_s=time.monotonic() - start, details=details)
    print_table(BENCHMARK, {k: v for k, v in scores.items() if v is not None and not k.endswith(("_min", "_max"))},
                f"({opts.split}, {opts.lang})")
    log(f"wrote {out_dir / 'results.json'} and {out_dir / 'samples.jsonl'}")
    if opts.as_json:
        out(doc)
    return doc


def _load_entity_models(opts: FavdOptions):
    """The noun tagger and the T5 encoder (ModelNotFoundError, exit 4, names the flag)."""
    from ..devices import resolve_device
    from ..metrics import favd as F

    tagger = F.load_tagger(opts.tagger)
    device = str(resolve_device(opts.device))
    encoder = F.load_t5_encoder(opts.t5_model, device=device)
    info = {"tagger": opts.tagger, "t5_model": opts.t5_model, "device": device,
            "official": opts.tagger == "nltk" and opts.t5_model == F.OFFICIAL_T5}
    if opts.lang == "zh" and (opts.tagger == "nltk" or (opts.tagger.partition(":")[2] or "en_").startswith("en_")):
        warn("EntityScore of Chinese descriptions with an English tagger finds few nouns: pass a Chinese pipeline "
             "such as --tagger spacy:zh_core_web_sm (its CTB tag NN is kept; not the paper's protocol)")
    if not info["official"]:
        warn(f"EntityScore with {opts.tagger} / {opts.t5_model}: the official code uses NLTK's tagger and "
             f"{F.OFFICIAL_T5} (see the README for what differs)")
    return tagger, encoder, info


# ----------------------------------------------------------------------------- AudioScore
AUDIO_BATCH = 16  # clips decoded and scored at once (score.py uses 128 on a GPU; the diagonal is per clip)


def _check_audio_media(clips, opts: FavdOptions) -> None:
    """Every clip needs its video (the first frame) and some audio (its mp3 or the video's track); the official
    code reads both for every clip and tolerates neither missing (DataError naming the clip)."""
    from ..errors import DataError
    from ..media import probe

    for c in clips:
        if c.video_path is None:
            raise DataError(f"AudioScore: no video for clip {c.id} under {Path(opts.data) / 'videos'} "
                            f"(videos/<split>/<id>.mp4; TriLip reads its first frame)")
        if c.audio_path is None:  # the sound must then come from the video's own track
            try:
                has_audio = probe(c.video_path).has_audio
            except DataError as err:
                raise DataError(f"AudioScore: clip {c.id}: {err}") from None
            if not has_audio:
                raise DataError(f"AudioScore: clip {c.id} has no audio: no audio_mp3/<split>/{c.id}.mp3 and no "
                                f"audio track in {c.video_path}")


def _load_trilip(opts: FavdOptions):
    """(model, tokenizer, details record) from --audioscore-model on --device (exit 4 / 5 on a bad file)."""
    from ..devices import resolve_device
    from ..metrics import favd as F
    from ..models.trilip import load_trilip

    device = str(resolve_device(opts.device))
    model, tokenizer = load_trilip(opts.audioscore_model, device)
    cfg = model.config
    info = {"model": str(Path(opts.audioscore_model).resolve()), "official_md5": F.TRILIP_MD5, "device": device,
            "protocol": {"frame": "first of 32 extracted (ffmpeg fps=32/duration): the frame on screen at "
                                  "duration/64", "image": f"CLIP resize+centre crop {cfg.image_resolution}",
                         "audio_sample_rate": cfg.sample_rate, "audio_seconds": cfg.audio_seconds,
                         "text": "last sentence (split on '. ')", "patchout": cfg.passt_patchout_eval,
                         "gain": "none (the official applies a random -7..+6 dB gain)", "dtype": "float32"}}
    log(f"AudioScore: TriLip from {opts.audioscore_model} on {device}")
    return model, tokenizer, info


def first_extracted_frame(path: Path):
    """The official frames/<id>_frame0001.jpg, decoded straight from the video (no JPEG round trip) ->
    [H, W, 3] uint8. data_prepro/extract_frames.py runs `ffmpeg -i VIDEO -vf fps=32/duration` (duration from
    ffprobe's format=duration: the whole file's, audio included); the fps filter fills output slot 0 with the
    LAST input frame whose timestamp, in slots of duration/32 rounded to the nearest (halves up), is 0: the last
    frame before duration/64 (0.156 s of a 10-s clip: frame 3 at 25 fps; a test checks this against FFmpeg's
    own fps filter)."""
    from ..media import probe, read_frames
    from ..media import errors as media_errors

    info = probe(path)
    if info.num_frames < 1:
        raise media_errors.empty_video(path)
    duration = info.container_duration or info.duration
    t = max(duration / 64 - 1e-5, 0.0)  # strictly before duration/64 (read_frames takes ts <= t)
    return read_frames(path, times=[t]).frames[0]


def _audio_scores(clips, preds: dict[str, str], trilip, opts: FavdOptions):
    from ..console import Progress
    from ..data.favd_clips import ClipProtocol, load_clip_audio
    from ..errors import DataError
    from ..metrics import favd as F
    from ..models.trilip import CLIP_MEAN, CLIP_STD

    model, tokenizer, info = trilip
    cfg = model.config
    audio = ClipProtocol(1, cfg.image_resolution, CLIP_MEAN, CLIP_STD, cfg.sample_rate, cfg.audio_samples)
    summary, per_clip = {}, {}
    with Progress("AudioScore", len(clips), every=max(1, len(clips) // 10)) as progress:
        for start in range(0, len(clips), AUDIO_BATCH):  # decode a batch at a time: memory stays bounded
            items = []
            for c in clips[start:start + AUDIO_BATCH]:
                try:
                    wave = load_clip_audio(c.audio_path or c.video_path, audio)
                    frame = first_extracted_frame(c.video_path)
                except DataError as err:
                    raise DataError(f"AudioScore: clip {c.id}: {err}") from None
                items.append(F.AudioItem(c.id, frame, wave, preds[c.id]))
            _, scored = F.audio_scores(model, tokenizer, items, batch_size=AUDIO_BATCH, device=info["device"])
            per_clip.update(scored)
            for _ in items:
                progress.advance()
    values = [v["AudioScore"] for v in per_clip.values()]
    summary["AudioScore"] = sum(values) / len(values) if values else None
    return summary, per_clip


# ----------------------------------------------------------------------------- --model: descriptions first
def generate_predictions(clips, opts: FavdOptions, out_dir: Path):
    """Describe every clip with the model; write OUT/predictions.json (COCO result list).
    Returns (path, model record, protocol)."""
    import inspect
    import json

    from ..data.vript import atomic_write_text
    from ..errors import DataError

    from ..models.describer import describe_clips

    for c in clips:  # every clip's media present before the model loads: no partial output
        if c.video_path is None:
            raise DataError(f"no video for clip {c.id} under {Path(opts.data) / 'videos'} (videos/<split>/<id>.mp4)")
    wanted = {"lang": opts.lang, "device": opts.device, "beams": opts.beams or None}
    params = inspect.signature(describe_clips).parameters
    kwargs = {k: v for k, v in wanted.items() if k in params and v is not None}
    result = describe_clips(opts.model, clips, **kwargs)
    texts, info = (result if isinstance(result, tuple) else (result, {}))
    rows = [{"image_id": c.id, "caption": texts[c.id]} for c in clips]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "predictions.json"
    atomic_write_text(path, json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    info = dict(info or {})
    model = {"name": info.pop("name", Path(opts.model.rstrip("/")).name), "source": "model", "path": opts.model,
             **info.pop("model", {})}
    protocol = {"frames": info.pop("frames", None), "fps": info.pop("fps", None), "decoder": info.pop("decoder", None),
                "prompt_hash": info.pop("prompt_hash", None), **info}
    return path, model, protocol
