"""A model-agnostic wrapper around transformers' video-language models (image-text-to-text).

    vlm = VideoLM.load("HuggingFaceTB/SmolVLM2-500M-Video-Instruct", device="auto", dtype="auto")
    texts = vlm.generate([VideoPrompt(frames, indices, fps, duration, prompt, system=...)], max_new_tokens=256)
    texts = vlm.generate(items, answer_prefix="Best option:(")  # replies forced to start with a prefix

The caller decodes and samples the frames (vsuite.media) and passes them with their frame indices and the
video's fps, so the processor never samples or decodes on its own (`do_sample_frames=False`, explicit
`video_metadata`): results do not depend on transformers' video loader. The same code path serves SmolVLM2
(Idefics3), Qwen2-VL / Qwen2.5-VL and LLaVA-OneVision: whatever AutoProcessor + AutoModelForImageTextToText
load. `training_batch` builds (inputs, labels) for finetuning with the same chat layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError

DEFAULT_MODEL = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"


@dataclass
class VideoPrompt:
    """One request: frames [T, H, W, 3] uint8 at `indices` of a video running at `fps`, and the text."""

    frames: Any
    indices: list[int]
    fps: float
    duration: float  # of the whole video, seconds (for the processor's metadata)
    prompt: str
    system: str | None = None
    total_frames: int = 0
    extra: dict = field(default_factory=dict)
    before: str = ""  # text before the frames (Vript's `Voice-over: ...\nVideo frames:`); `prompt` follows them


@dataclass
class Generation:
    """One completion; `truncated` when it stopped at max_new_tokens without an end-of-sequence token."""

    text: str
    truncated: bool
    new_tokens: int


def cut_off(rows, eos_ids: set[int], max_new_tokens: int) -> list[bool]:
    """Per row of generated ids [B, T] (new tokens only): True when no end-of-sequence token was produced
    and the row is max_new_tokens long, i.e. the model was stopped mid-answer by the limit."""
    out = []
    for row in rows:
        ids = [int(t) for t in row]
        out.append(len(ids) >= max_new_tokens and not any(t in eos_ids for t in ids))
    return out


def join_prefix(prefix: str, continuation: str) -> str:
    """The answer as it reads: a forced prefix and the decoded continuation (stripped; after a prefix ending in
    a space or an opening bracket the continuation's leading spaces go too, so "Scene (" + " B)" = "Scene (B)")."""
    if not prefix:
        return continuation.strip()
    if prefix[-1].isspace() or prefix[-1] in "([{\"'":
        return (prefix + continuation.lstrip()).rstrip()
    return (prefix + continuation).rstrip()


def sampling_rate(item: VideoPrompt) -> float:
    """Frames per second of the frames passed (from their indices in the source video)."""
    if len(item.indices) < 2:
        return 1.0
    span = (max(item.indices) - min(item.indices)) / item.fps
    return (len(item.indices) - 1) / span if span > 0 else float(item.fps)


class VideoLM:
    """A loaded processor + model pair and the chat layout to talk to it about a video."""

    def __init__(self, model, processor, *, name: str, device, dtype) -> None:
        self.model, self.processor, self.name = model, processor, name
        self.device, self.dtype = device, dtype
        self.family = getattr(model.config, "model_type", "unknown")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, ref: str | Path, *, device: Any = "auto", dtype: Any = "auto", name: str | None = None) -> VideoLM:
        """`device`/`dtype`: the CLI's strings (auto | cpu | cuda:N, auto | float32 | ...) or torch objects;
        `name` (default `ref`) is what results record as the model."""
        from ..devices import resolve_device, resolve_dtype
        from ..hub import resolve_model_dir

        folder = resolve_model_dir(ref)
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(f"{folder} has no config.json; pass a Hugging Face model folder")
        dev = resolve_device(device) if isinstance(device, str) else device
        torch_dtype = resolve_dtype(dtype, dev) if isinstance(dtype, str) else dtype
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from ..hub import quiet_loading

        quiet_loading(errors_only=True)
        try:
            processor = AutoProcessor.from_pretrained(folder)
            model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch_dtype)
        except ImportError as err:
            raise ModelNotFoundError(f"{ref}: a package its processor needs is missing ({err}); pip install it"
                                     ) from None
        except (OSError, ValueError, KeyError) as err:
            raise ModelNotFoundError(f"{ref} does not load as a video-language model: "
                                     f"{str(err).splitlines()[0][:200]}") from None
        model.to(dev).eval()
        return cls(model, processor, name=str(name or ref), device=dev, dtype=torch_dtype)

    @classmethod
    def from_parts(cls, model, processor, name: str = "model") -> VideoLM:
        param = next(model.parameters())
        return cls(model, processor, name=name, device=param.device, dtype=param.dtype)

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    # ------------------------------------------------------------------ prompts
    @staticmethod
    def messages(item: VideoPrompt, answer: str | None = None) -> list[dict]:
        """Chat messages: [system], user ([text before], video, text), [assistant answer]."""
        msgs = []
        if item.system:
            msgs.append({"role": "system", "content": [{"type": "text", "text": item.system}]})
        before = [{"type": "text", "text": item.before}] if item.before else []
        msgs.append({"role": "user", "content": [*before, {"type": "video"}, {"type": "text", "text": item.prompt}]})
        if answer is not None:
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        return msgs

    def _metadata(self, item: VideoPrompt):
        from transformers.video_utils import VideoMetadata

        total = item.total_frames or (max(item.indices) + 1)
        return VideoMetadata(total_num_frames=total, fps=float(item.fps), duration=float(item.duration),
                             frames_indices=list(item.indices))

    def _encode(self, texts: list[str], items: list[VideoPrompt]):
        import numpy as np

        videos = [np.asarray(item.frames.numpy() if hasattr(item.frames, "numpy") else item.frames)
                  for item in items]
        kwargs = {"do_sample_frames": False, "video_metadata": [self._metadata(i) for i in items]}
        if self.wants_fps:  # absolute-time MRoPE: the rate of the frames passed (one value per call)
            rates = [sampling_rate(i) for i in items]
            kwargs["fps"] = sum(rates) / len(rates)
        return self.processor(text=texts, videos=videos, padding=True, return_tensors="pt", **kwargs)

    @property
    def wants_fps(self) -> bool:
        return "qwen2_5" in self.family or "qwen3" in self.family

    def chat_text(self, item: VideoPrompt, answer: str | None = None) -> str:
        return self.processor.apply_chat_template(self.messages(item, answer), add_generation_prompt=answer is None,
                                                  tokenize=False)

    def prompt_text(self, item: VideoPrompt, answer_prefix: str = "") -> str:
        """The text generation starts from: the chat template's generation prompt, then `answer_prefix` (the
        start of the assistant reply the model must continue, e.g. Vript-RR's "Best option:(").

        A template may put a separator between its generation prompt and an assistant message (SmolVLM2:
        "Assistant:" vs "Assistant: text"): the text before a rendered assistant reply is used when it extends
        the generation prompt, so the prefix sits where the model saw answers begin in training."""
        start = self.chat_text(item)
        if not answer_prefix:
            return start
        sentinel = "\u2063VSUITE_ANSWER\u2063"  # invisible separators: never in a template or a prompt
        full = self.chat_text(item, sentinel)
        cut = full[:full.find(sentinel)] if sentinel in full else ""
        return (cut if cut.startswith(start) else start) + answer_prefix

    # ------------------------------------------------------------------ generation
    def generate(self, items: list[VideoPrompt], *, max_new_tokens: int = 256,
                 answer_prefix: str | list[str] = "", **gen: Any) -> list[str]:
        """One completion per request (batched; left padding). `answer_prefix`: see `generate_full`."""
        return [g.text for g in self.generate_full(items, max_new_tokens=max_new_tokens, answer_prefix=answer_prefix,
                                                   **gen)]

    def generate_full(self, items: list[VideoPrompt], *, max_new_tokens: int = 256,
                      answer_prefix: str | list[str] = "", **gen: Any) -> list[Generation]:
        """Like `generate`, with whether each answer was cut off by max_new_tokens. `gen`: transformers
        generate() settings (num_beams, do_sample, top_p, repetition_penalty, ...); greedy by default.

        `answer_prefix` (one for all, or one per item): the reply is forced to start with it (`prompt_text`)
        and the returned text is the prefix followed by the model's continuation, as the answer reads."""
        prefixes = [answer_prefix] * len(items) if isinstance(answer_prefix, str) else list(answer_prefix)
        if len(prefixes) != len(items):
            raise ValueError(f"{len(prefixes)} answer prefixes for {len(items)} requests")
        if self.wants_fps and len({round(sampling_rate(i), 6) for i in items}) > 1:
            # the processor takes one fps per call: batch only requests sampled at the same rate
            groups: dict[float, list[int]] = {}
            for n, item in enumerate(items):
                groups.setdefault(round(sampling_rate(item), 6), []).append(n)
            out: list[Generation] = [Generation("", False, 0)] * len(items)
            for members in groups.values():
                for n, res in zip(members, self.generate_full([items[m] for m in members],
                                                              max_new_tokens=max_new_tokens,
                                                              answer_prefix=[prefixes[m] for m in members], **gen)):
                    out[n] = res
            return out
        import torch

        tok = self.tokenizer
        tok.padding_side = "left"
        texts = [self.prompt_text(item, prefix) for item, prefix in zip(items, prefixes)]
        inputs = self._encode(texts, items).to(self.device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        if "pixel_values_videos" in inputs and inputs["pixel_values_videos"].is_floating_point():
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self.dtype)
        settings = {"do_sample": False, "max_new_tokens": max_new_tokens, **gen}
        if tok.pad_token_id is not None:
            settings.setdefault("pad_token_id", tok.pad_token_id)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **settings)
        new = out[:, inputs["input_ids"].shape[1]:]  # [B, T] new tokens (finished rows padded after their eos)
        cut = cut_off(new.tolist(), self.eos_ids(), max_new_tokens)
        lengths = [int((row != tok.pad_token_id).sum()) if tok.pad_token_id is not None else len(row) for row in new]
        texts = tok.batch_decode(new, skip_special_tokens=True)
        return [Generation(join_prefix(p, t), c, n) for p, t, c, n in zip(prefixes, texts, cut, lengths)]

    def eos_ids(self) -> set[int]:
        """End-of-sequence ids: the generation config's (int or list), else the tokenizer's."""
        found = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if found is None:
            found = getattr(self.tokenizer, "eos_token_id", None)
        if found is None:
            return set()
        return {int(found)} if isinstance(found, int) else {int(x) for x in found}

    # ------------------------------------------------------------------ training
    def training_batch(self, items: list[VideoPrompt], answers: list[str]) -> dict:
        """Processor inputs plus `labels` that score only the answer tokens (prompt and padding = -100)."""
        tok = self.tokenizer
        tok.padding_side = "right"
        full = [self.chat_text(i, a) for i, a in zip(items, answers)]
        prompts = [self.chat_text(i) for i in items]
        batch = self._encode(full, items)
        prompt_ids = self._encode(prompts, items)["attention_mask"].sum(dim=1)
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = -100
        for row, n in enumerate(prompt_ids.tolist()):
            labels[row, :n] = -100
        batch["labels"] = labels
        return dict(batch)

    def describe(self) -> dict:
        return {"vlm_backend": "transformers", "model": self.name, "family": self.family, "device": str(self.device),
                "dtype": str(self.dtype).replace("torch.", "")}


def save_vlm(model, processor, folder: str | Path, *, extra_files: dict[str, str] | None = None) -> Path:
    """A plain Hugging Face folder (model + processor) that `VideoLM.load` reads; written then renamed.
    `extra_files`: name -> text written beside the weights (e.g. the caption mode record)."""
    import os
    import shutil

    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    for name, text in (extra_files or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    for f in tmp.iterdir():  # save_pretrained writes 0600 files
        if f.is_file():
            f.chmod(0o644)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder
