"""`vsuite finetune RECIPE` with `[task] kind = "describe"`: train AVLFormer on FAVDBench-layout data.

Recipe tables:
  [task]   kind = "describe"
  [model]  vsuite.models.avlformer.describe_config.DescribeModelConfig: init (a vsuite AVLFormer folder, the
           official model.bin, or empty), [model.config] (AvlformerConfig fields of a new model), tokenizer
           ("words" built from the training captions, or a BERT tokenizer folder / Hub id), swin_init /
           passt_init (published encoder checkpoints for a new model).
  [data]   vsuite.data.favdbench.FAVDBenchConfig: root (meta/<split>.csv + annotations_{en,cn}.json + videos/),
           lang, train_split, batch_size, shuffle.
  [train]  vsuite.train.TrainConfig (the shared trainer).

Each batch: the clips' frames and audio (vsuite.data.favd_clips, the model's frame count, size and audio
length), and the caption tensors of the official tensorizer (masks.tensorize_caption: MLM masking with
the model's mask_prob, LM targets). The loss is the model's: lm_lambda * LM + (1 - lm_lambda) * MLM + sparse.
Checkpoints (OUT/checkpoints/step-N) and the final OUT/model are Hugging Face folders with the tokenizer, so
`vsuite describe --model OUT/model` and `vsuite eval favdbench --model OUT/model` load them. OUT/model's path
goes to stdout.

Validation (the official evaluate_during_training): at every eval (train.eval_every steps and at the end) the
model describes the clips of data.val_split (greedy; the first data.val_clips of them if set) and they are scored
with BLEU and CIDEr(-D) as `vsuite eval favdbench` scores them (COCO protocol, Java PTB tokenizer, checked before
training starts); the eval line goes to metrics.jsonl and the best CIDEr so far is kept as OUT/best (model +
tokenizer + best.json). data.val_split = "" trains without it.

Audio augmentation as the official training: +-7 dB gain and a roll of up to 50 samples (the official also
applies the random gain at inference; vsuite does not). The official Swin learning-rate factor (0.05) and
warmup_linear schedule are recipe settings of the shared trainer (`lr_scale`, `schedule = "linear"`).
Differences from the official training: weight decay by dimension rather than by name, and a centre crop
of the short-side-resized frames (the official crops at random in training).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ..console import log
from ..errors import DataError, RecipeError
from ..models.describer import RECORD_FILE, clip_protocol

# Decoded clips are kept in memory when all of them fit in this many bytes (tiny and synthetic data sets).
CACHE_BYTES = 1 << 30


def augment_audio(wave, rng: random.Random):
    """The official training audio augmentation: a gain of randint(14) - 7 dB, then a roll by
    randint(-50, 50) samples (vision_language_tsv.py pydub_augment + roll_func)."""
    import torch

    gain = rng.randrange(14) - 7
    return torch.roll(wave * 10 ** (gain / 20), rng.randrange(-50, 50))


class DescribeBatches:
    """Endless, resumable batches {input_ids, text_lengths, masked_pos, masked_ids, output_token_ids,
    pixel_values, audio_values} for one rank; order and MLM masks depend only on (seed, epoch, position)."""

    def __init__(self, clips, tokenizer, config, *, batch_size: int, shuffle: bool, seed: int, rank: int = 0,
                 world_size: int = 1, official_lm_targets: bool = False, backend: str = "auto"):
        from ..models.avlformer.describe_config import caption_ids

        self.clips, self.config, self.protocol = clips, config, clip_protocol(config)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.official_lm_targets, self.backend = official_lm_targets, backend
        self.ids = [caption_ids(tokenizer, c.caption) for c in clips]
        self.batches_per_epoch = (len(clips) // world_size) // batch_size
        if self.batches_per_epoch == 0:
            raise DataError(f"{len(clips)} training clip(s) is fewer than data.batch_size {batch_size} x "
                            f"{world_size} rank(s); add clips or lower data.batch_size")
        per_clip = 4 * (self.protocol.num_frames * 3 * self.protocol.image_size ** 2 + self.protocol.audio_samples)
        self.cache = {} if per_clip * len(clips) <= CACHE_BYTES else None
        self.specials = {tokenizer.pad_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id,
                         tokenizer.mask_token_id, tokenizer.unk_token_id}
        self.epoch, self.index = 0, 0

    def _media(self, i: int):
        from ..data.favd_clips import load_clip

        if self.cache is not None and i in self.cache:
            return self.cache[i]
        clip = self.clips[i]
        if clip.video_path is None:
            raise DataError(f"clip {clip.id} has no video file under the data root's video folder")
        out = load_clip(clip.video_path, clip.audio_path, self.protocol, backend=self.backend)
        if self.cache is not None:
            self.cache[i] = out
        return out

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.clips)))
        if self.shuffle:
            random.Random(f"favd-order/{self.seed}/{epoch}").shuffle(order)
        mine = order[self.rank::self.world_size]
        return mine[: self.batches_per_epoch * self.batch_size]

    def _batch(self, items: list[int], epoch: int, index: int) -> dict:
        import torch

        from ..models.avlformer.masks import tensorize_caption

        c = self.config
        rng = random.Random(f"favd-mask/{self.seed}/{epoch}/{index}/{self.rank}")
        texts = [tensorize_caption(self.ids[i], max_seq_length=c.max_seq_length, cls_id=c.cls_token_id,
                                   sep_id=c.sep_token_id, pad_id=c.pad_token_id, mask_id=c.mask_token_id,
                                   vocab_size=c.vocab_size, mask_prob=c.mask_prob,
                                   max_masked_tokens=c.max_masked_tokens, special_ids=self.specials, rng=rng,
                                   official_lm_targets=self.official_lm_targets) for i in items]
        media = [self._media(i) for i in items]
        batch = {k: torch.stack([t[k] for t in texts]) for k in texts[0]}
        batch["pixel_values"] = torch.stack([m[0] for m in media])
        batch["audio_values"] = torch.stack([augment_audio(m[1], rng) for m in media])
        return batch

    def __iter__(self):
        while True:
            epoch = self.epoch
            order = self._order(epoch)
            while self.index < self.batches_per_epoch:
                b = self.index
                self.index += 1
                yield self._batch(order[b * self.batch_size:(b + 1) * self.batch_size], epoch, b)
            self.epoch, self.index = epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "clips": len(self.clips)}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = int(state["epoch"]), int(state["index"])


def _data_root(root: str) -> Path:
    from ..data import data_roots

    if not root:
        raise RecipeError("[data] root is empty: set it to the FAVDBench folder (meta/ + annotations_*.json)")
    return next((r / root for r in data_roots() if (r / root).is_dir()), Path(root))


def build_tokenizer(mcfg, clips):
    """The tokenizer of an init folder, else a word-level one from the captions, else a BERT tokenizer."""
    from transformers import AutoTokenizer

    from ..hub import resolve_model_dir
    from ..models.avlformer.describe_config import build_word_tokenizer

    init = Path(mcfg.init) if mcfg.init else None
    if init is not None and init.is_dir() and (init / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(init)
    if mcfg.tokenizer == "words":
        return build_word_tokenizer([c.caption for c in clips])
    return AutoTokenizer.from_pretrained(resolve_model_dir(mcfg.tokenizer, flag="model.tokenizer"))


def build_model(mcfg, tokenizer, seed: int):
    """A float32 AVLFormer: from an init folder or official file, or new from [model.config]."""
    import torch

    from ..models.avlformer import AvlformerConfig, AvlformerForDescription
    from ..models.avlformer.describe_config import tokenizer_ids
    from ..train import seed_everything

    seed_everything(seed)
    init = Path(mcfg.init) if mcfg.init else None
    if init is not None and init.is_dir():
        return AvlformerForDescription.from_pretrained(init, dtype=torch.float32)
    try:
        config = AvlformerConfig(**{**mcfg.config, **tokenizer_ids(tokenizer)})
    except (ValueError, TypeError) as err:
        raise RecipeError(f"[model] config: {err}") from None
    model = AvlformerForDescription(config)
    from ..models.avlformer import official

    if init is not None:
        official.load_official_avlformer(model, init)
    if mcfg.swin_init:
        official.load_published_swin(model, mcfg.swin_init)
    if mcfg.passt_init:
        official.load_published_passt(model, mcfg.passt_init)
    return model


def freeze_parts(model, mcfg) -> None:
    """Official --freeze_backbone (every swin.* parameter) and --freeze_passt (passt.mel and passt.net)."""
    for name, p in model.named_parameters():
        if (mcfg.freeze_swin and name.startswith("swin.")) or (mcfg.freeze_passt and name.startswith("passt.net.")):
            p.requires_grad_(False)


def describe_record(lang: str) -> str:
    """vsuite_describe.json: the description language, so `vsuite describe --lang` can check it."""
    import json

    return json.dumps({"lang": lang}) + "\n"


def tokenizer_files(tokenizer) -> dict[str, bytes]:
    """{file name: bytes} of the tokenizer's save_pretrained, to write beside a model's weights."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def best_files(tokenizer, lang: str, recipe) -> dict:
    """What OUT/best holds beside the weights, so `vsuite describe --model OUT/best` loads it."""
    return {**tokenizer_files(tokenizer), RECORD_FILE: describe_record(lang), "recipe.toml": recipe.to_toml()}


def save_describe_model(model, tokenizer, folder: Path, lang: str) -> Path:
    """The model + tokenizer (+ vsuite_describe.json) as one Hugging Face folder, written atomically."""
    from ..hub import save_model
    from ..train.checkpoint import quiet

    with quiet():  # no "Writing model shards" bar in the training log
        return save_model(model, folder, extra_files={**tokenizer_files(tokenizer), RECORD_FILE: describe_record(lang)})


def validation_clips(root: Path, data):
    """The clips of data.val_split scored during training (the first data.val_clips of them; all if 0), or []."""
    from ..data.favdbench import load_favdbench

    if not data.val_split:
        return []
    clips = load_favdbench(root, data.val_split, data.lang, video_dir=data.video_dir, audio_dir=data.audio_dir)
    clips = clips[: data.val_clips] if data.val_clips else clips
    missing = [c.id for c in clips if c.video_path is None]
    if missing:
        raise DataError(f"{data.val_split} clip {missing[0]} has no video file under {root / data.video_dir}; add "
                        f"the videos or set data.val_split = \"\" (no validation)")
    return clips


def make_eval_fn(clips, tokenizer, keeper, lang: str, batch_size: int):
    """Trainer eval_fn: greedy descriptions of the validation clips, scored with BLEU and CIDEr(-D) exactly as
    `vsuite eval favdbench` (COCO protocol, PTB tokenizer); OUT/best keeps the best CIDEr. Decoded clips are
    cached across evaluations."""
    from ..data.favd_clips import load_clip
    from ..metrics import caption_coco as CC
    from ..models.describer import describe_with

    refs = {c.id: list(c.references or (c.caption,)) for c in clips}
    cache: dict[str, tuple] = {}

    def media(net):
        protocol = clip_protocol(net.config)

        def load(cid: str, video: str, audio: str | None):
            if cid not in cache:
                cache[cid] = load_clip(video, audio, protocol)
            return cache[cid]

        return load

    def evaluate(model, step: int) -> dict:
        preds = describe_with(model, tokenizer, clips, lang=lang, batch_size=batch_size, load_media=media(model))
        corpus, _ = CC.caption_scores(preds, refs, ("bleu", "cider"))
        scores = {"cider": corpus["CIDEr"], "bleu_4": corpus["Bleu_4"]}
        keeper.offer(model, step, scores)
        return scores

    return evaluate


def run(recipe, *, resume: str = "auto"):
    """Train as the recipe says; writes OUT/model and returns the trainer's TrainResult."""
    from ..data.favdbench import load_favdbench
    from ..train import distributed as D
    from ..train import fit, parameter_summary
    from ..train.best import BestKeeper
    from ..train.config import run_folder

    train, data, mcfg = recipe.train, recipe.data, recipe.model
    root = _data_root(data.root)
    clips = load_favdbench(root, data.train_split, data.lang, video_dir=data.video_dir, audio_dir=data.audio_dir)
    val_clips = validation_clips(root, data)
    if val_clips:
        from ..metrics.caption_coco import check_available

        check_available(("cider",))  # Java for the PTB tokenizer: say so before training, not at the first eval
    out_dir = run_folder(train, recipe.source)
    env = D.init(train.device)
    try:
        tokenizer = build_tokenizer(mcfg, clips)
        model = build_model(mcfg, tokenizer, train.seed)
        freeze_parts(model, mcfg)
        batches = DescribeBatches(clips, tokenizer, model.config, batch_size=data.batch_size, shuffle=data.shuffle,
                                  seed=train.seed, rank=env.rank, world_size=env.world_size,
                                  official_lm_targets=mcfg.official_lm_targets)
        keeper = BestKeeper(out_dir, env, metric="cider", subset=data.val_split,
                            extra_files=lambda: best_files(tokenizer, data.lang, recipe))
        eval_fn = make_eval_fn(val_clips, tokenizer, keeper, data.lang, data.batch_size) if val_clips else None
        if env.is_main:
            c = model.config
            val = f"{len(val_clips)} {data.val_split} clips scored at each eval" if val_clips else "no validation"
            log(f"model AVLFormer: {parameter_summary(model)}, vocab "
                f"{c.vocab_size}, {c.num_video_tokens} video + {c.num_audio_tokens} audio tokens | "
                f"{len(clips)} {data.lang} training clips ({val}), "
                f"{batches.batches_per_epoch} batches of {data.batch_size} per epoch per rank | "
                f"{env.world_size} process(es) on {env.device.type} | run folder {out_dir}")

        def save_extra(folder: Path) -> None:
            tokenizer.save_pretrained(folder)
            (folder / RECORD_FILE).write_text(describe_record(data.lang))

        result = fit(train, model, batches, recipe, out_dir=out_dir, resume=resume, env=env, save_extra=save_extra,
                     eval_fn=eval_fn)
        if env.is_main:
            model.to("cpu")
            folder = save_describe_model(model, tokenizer, out_dir / "model", data.lang)
            recipe.write(folder / "recipe.toml")
            if result.losses:
                log(result.done_line(f"model in {folder}"))
            record = keeper.chosen()
            if record is not None:
                log(f"best on {record['subset']}: step {record['step']}, CIDEr {record['scores']['cider']:.4f} "
                    f"({keeper.folder})")
            sys.stdout.write(f"{folder}\n")
            sys.stdout.flush()
        return result
    finally:
        D.shutdown()
