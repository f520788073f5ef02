"""`vsuite finetune RECIPE` with `[task] kind = "segment"`: train the audio-visual segmenter on AVSBench.

Recipe tables:
  [task]   kind = "segment"
  [model]  vsuite.models.segmenter.SegmentModelConfig: [model.config] = AVSConfig fields (backbone, its
           backbone_path / vggish_path pretrained weights, fusion, motion, projection, ...; `setting` and
           `image_size` follow [data] when not given and must agree with it), or `init` = a trained segmenter
           (model folder, run folder or Hub id) to continue from.
  [data]   vsuite.data.avsbench.AVSBenchConfig (root, split s4 | ms3, audio source, image_size, batch_size,
           val_subset, official_batch_clips).
  [train]  vsuite.train.TrainConfig (the shared trainer).

The losses are the official ones, inside AVSModel.forward: L_struct on the supervised frames (S4 train: the
first frame only, as the dataset marks it), + sim_loss_weight x L_AVM (0 for S4, 0.5 for MS3), + 1.0 x the
visual-to-audio latent loss. Batches are the official loader's: shuffled every epoch (seeded), the last
partial batch kept, no augmentation (the official code imports a random flip but never applies it).

Checkpoint selection: every eval (train.eval_every steps and at the end) scores data.val_subset (default
"val"; the official code selects on *test*) with vsuite.metrics.avs, and the best mIoU so far is saved as
OUT/best (a model folder + best.json with its step and scores). The path of OUT/best goes to stdout (the
final checkpoint's when no eval ran), and `--model OUT` in segment / eval avsbench picks OUT/best.
Every rank scores the whole validation subset (identical numbers, no gather needed; FSDP needs every rank
in each forward anyway).
"""

from __future__ import annotations

import math
import sys

from ..console import log, warn
from ..errors import RecipeError

def build_model(recipe):
    """A float32 AVSModel: from `init`, or new from [model.config] with its pretrained backbone / VGGish."""
    import torch

    from ..models.avs import AVSConfig, AVSModel
    from ..models.segmenter import load_segmenter, model_folder
    from ..train import seed_everything

    cfg, data = recipe.model, recipe.data
    seed_everything(recipe.train.seed)
    if cfg.init:
        model = load_segmenter(model_folder(cfg.init, flag="model.init"), torch.device("cpu")).train()
    else:
        fields = {"setting": data.split, "image_size": data.image_size, **cfg.config}
        try:
            config = AVSConfig(**fields)
        except (ValueError, TypeError) as err:
            raise RecipeError(f"{recipe.source}: [model.config]: {err}") from None
        model = AVSModel.from_backbone(config)
        if not config.vggish_path:
            init_vggish(model.audio_backbone)
    mc = model.config
    if mc.setting != data.split:
        raise RecipeError(f"{recipe.source}: the model's setting is {mc.setting!r} but data.split is "
                          f"{data.split!r}; set them equal (the setting picks the official losses)")
    if mc.image_size != data.image_size:
        raise RecipeError(f"{recipe.source}: the model takes {mc.image_size}px frames but data.image_size is "
                          f"{data.image_size}; set them equal")
    return model.float()


def init_vggish(vggish) -> None:
    """Kaiming-normal weights (fan_out for the convs, as torchvision's VGG; fan_in for the Linears) and zero
    biases for a VGGish that gets no pretrained weights. Under PyTorch's default init the 6 conv + 3 Linear
    ReLU stack maps every log-mel to the same vector (cosine 0.99999 between a 440 Hz and a 1320 Hz clip,
    measured on the synthetic set), so a frozen one would carry no audio at all and a trained one gets no
    gradient through it. The official model always loads vggish-10086976.pth (model.config.vggish_path)."""
    import torch
    from torch import nn

    log("model.config.vggish_path is not set: the VGGish audio encoder starts from a Kaiming initialisation "
        "(no pretrained weights)")
    with torch.no_grad():
        for module in vggish.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                mode = "fan_out" if isinstance(module, nn.Conv2d) else "fan_in"
                nn.init.kaiming_normal_(module.weight, mode=mode, nonlinearity="relu")
                nn.init.zeros_(module.bias)


class AVSBatches:
    """Endless, resumable batches of AVSBench clips for one rank: {"pixel_values", "audio_log_mel", "masks",
    "mask_valid"} tensors [B, 5, ...]. Each epoch is a seeded shuffle; the last partial batch is kept (the
    official DataLoader's drop_last=False); ranks take equal shares."""

    def __init__(self, dataset, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0):
        from ..errors import DataError

        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.num_clips = len(dataset)
        self.per_rank = self.num_clips // world_size
        if self.per_rank == 0:
            raise DataError(f"{self.num_clips} training clip(s) for {world_size} ranks; add clips or use fewer ranks")
        self.batches_per_epoch = math.ceil(self.per_rank / batch_size)
        self.epoch, self.index = 0, 0

    def epoch_order(self, epoch: int) -> list[int]:
        import random

        order = list(range(self.num_clips))
        random.Random(f"avs-batches/{self.seed}/{epoch}").shuffle(order)
        return order[self.rank::self.world_size][: self.per_rank]

    def _batches(self, epoch: int, first: int):
        from ..data.avsbench import collate

        order = self.epoch_order(epoch)
        groups = [order[b: b + self.batch_size] for b in range(first * self.batch_size, len(order), self.batch_size)]
        if self.num_workers == 0:
            for group in groups:
                yield collate([self.dataset[i] for i in group])
            return
        import torch

        yield from torch.utils.data.DataLoader(self.dataset, batch_sampler=groups, num_workers=self.num_workers,
                                               collate_fn=collate)

    def __iter__(self):
        while True:
            epoch = self.epoch
            for batch in self._batches(epoch, self.index):
                self.index += 1
                batch.pop("id")
                yield batch
            self.epoch, self.index = epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed, "num_clips": self.num_clips,
                "batch_size": self.batch_size, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        for key in ("num_clips", "batch_size", "world_size", "seed"):
            if key in state and state[key] != getattr(self, key):
                warn(f"data position saved with {key}={state[key]}, now {getattr(self, key)}: the batches after "
                     "resuming will not be the ones the original run would have seen")
        self.epoch, self.index = int(state["epoch"]), min(int(state["index"]), self.batches_per_epoch)


def score(model, dataset, batch_size: int, official_batch_clips: int, device) -> dict:
    """vsuite.metrics.avs scores of `model` on `dataset` (clips in order; frames without a valid mask are left
    out), the official F at official_batch_clips clips per batch. Called by the trainer under no_grad."""
    from ..data.avsbench import NUM_FRAMES, collate
    from ..metrics.avs import AVSMeter

    meter = AVSMeter(official_batch_frames=official_batch_clips * NUM_FRAMES)
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        out = model(pixel_values=batch["pixel_values"].to(device), audio_log_mel=batch["audio_log_mel"].to(device))
        logits = out.logits[:, :, 0].float().cpu()  # [B, T, H, W]
        valid = batch["mask_valid"]  # [B, T]
        meter.update(logits[valid], batch["masks"][:, :, 0][valid])
    return meter.result()


def make_eval_fn(recipe, dataset, keeper, env):
    data = recipe.data

    def evaluate(model, step: int) -> dict:
        result = score(model, dataset, data.batch_size, data.official_batch_clips, env.device)
        scores = {"miou": result["miou"], "f_official": result["f_official"], "f_per_frame": result["f_per_frame"]}
        keeper.offer(model, step, scores)
        return scores

    return evaluate


def run(recipe, *, resume: str = "auto"):
    """Train as the recipe says; returns the trainer's TrainResult."""
    from ..data.avsbench import AVSBenchDataset
    from ..train import distributed as D
    from ..train import fit, parameter_summary
    from ..train.best import BestKeeper
    from ..train.config import run_folder

    train, data = recipe.train, recipe.data
    if not data.root:
        raise RecipeError(f"{recipe.source}: data.root is empty; give the AVSBench folder (holding Single-source/ or "
                          "Multi-sources/)")
    out_dir = run_folder(train, recipe.source)
    train_set = AVSBenchDataset.from_config(data, "train")  # layout errors (exit 5) before the model is built
    val_set = AVSBenchDataset.from_config(data, data.val_subset)
    env = D.init(train.device)
    try:
        model = build_model(recipe)
        batches = AVSBatches(train_set, data.batch_size, seed=train.seed, rank=env.rank, world_size=env.world_size,
                             num_workers=data.num_workers)
        keeper = BestKeeper(out_dir, env, metric="miou", subset=data.val_subset,
                            extra_files=lambda: {"recipe.toml": recipe.to_toml()})
        eval_fn = make_eval_fn(recipe, val_set, keeper, env)
        if env.is_main:
            mc = model.config
            log(f"model AVSModel ({mc.backbone}, {mc.fusion}, setting {mc.setting}): {parameter_summary(model)} "
                f"| AVSBench {data.split}: {len(train_set)} train clips, "
                f"{batches.batches_per_epoch} batches of {data.batch_size} per epoch per rank, {len(val_set)} "
                f"{data.val_subset} clips for selection | {env.world_size} process(es) on {env.device.type} | "
                f"run folder {out_dir}")
        result = fit(train, model, batches, recipe, out_dir=out_dir, resume=resume, env=env, eval_fn=eval_fn)
        if env.is_main:
            if result.losses:
                log(result.done_line(f"metrics in {out_dir / 'metrics.jsonl'}"))
            record = keeper.chosen()
            chosen = keeper.folder if record is not None else result.checkpoint
            if chosen is not None:
                if record is not None:
                    log(f"selected on {record['subset']}: step {record['step']}, mIoU {record['scores']['miou']:.4f}")
                sys.stdout.write(f"{chosen}\n")
                sys.stdout.flush()
        return result
    finally:
        D.shutdown()
