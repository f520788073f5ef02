"""Tiny random video-language models built offline from configs (SmolVLM2/Idefics3 and Qwen2-VL).

`build_smolvlm(folder)` and `build_qwen2vl(folder)` write Hugging Face folders that load with
AutoProcessor + AutoModelForImageTextToText (see /work/shared/reference/vlm-offline-notes.md for the quirks
these follow). Used as session fixtures by the caption and finetune tests.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Medium shot of a red scene with a grey square moving right. The camera is static.",
    "Wide shot, the colour changes to green; the square keeps moving. Scene title: green room.",
    "Close-up, fade to black, then a blue scene. Voice-over: hello world. Duration: [0.0, 5.2]s",
    '{"shot_type": "...", "camera_movement": "...", "content": "...", "scene_title": "..."}',
    "User: Assistant: Describe the video scene by scene in detail (Duration: [0.0, 10.0]s, Sampling Rate: 0.5s/frame).",
    "You are provided the following series of three frames from a 0:00:05 [H:MM:SS] video. Frame from 00:01:",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,:;!?()[]{}\"'/-_=+*#@%&<>|\\~`^$",
]

SMOL_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>",
                "<global-img>", "<video>"]
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]

SMOL_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] in ['image', 'video'] %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif line['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bpe(special: list[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


def _quiet_outputs(model, tokenizer, special: list[str]) -> None:
    """Random greedy output: never emit special tokens (notes quirk 10)."""
    import torch

    ids = sorted({tokenizer.convert_tokens_to_ids(t) for t in special})
    with torch.no_grad():
        head = model.get_output_embeddings()
        head.weight[ids] = 0
        if getattr(head, "bias", None) is not None:
            head.bias[ids] = -1e4
    model.generation_config.suppress_tokens = ids
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(special[0])
    model.generation_config.pad_token_id = tokenizer.convert_tokens_to_ids(special[0])


def build_smolvlm(folder: str | Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import (PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMForConditionalGeneration,
                              SmolVLMImageProcessor, SmolVLMProcessor, SmolVLMVideoProcessor)

    folder = Path(folder)
    torch.manual_seed(seed)
    raw = _bpe(SMOL_SPECIAL)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                        pad_token="<|endoftext|>", unk_token="<|endoftext|>",
                                        extra_special_tokens={"fake_image_token": "<fake_token_around_image>",
                                                              "image_token": "<image>",
                                                              "end_of_utterance_token": "<end_of_utterance>",
                                                              "global_image_token": "<global-img>"})
    size, patch, scale = 32, 8, 2
    seq_len = (size // patch) ** 2 // scale ** 2
    image_processor = SmolVLMImageProcessor(do_image_splitting=False, size={"longest_edge": size},
                                            max_image_size={"longest_edge": size})
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": size}, max_image_size={"longest_edge": size},
                                            do_sample_frames=False,
                                            video_sampling={"fps": 1, "max_frames": 16,
                                                            "video_size": {"longest_edge": size}})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 image_seq_len=seq_len, chat_template=SMOL_TEMPLATE)
    vocab = len(tokenizer)
    config = SmolVLMConfig(
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=scale,
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": size, "patch_size": patch},
        text_config={"model_type": "llama", "vocab_size": vocab, "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 2048, "pad_token_id": tokenizer.pad_token_id},
        vocab_size=vocab, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    model = SmolVLMForConditionalGeneration(config).eval()
    _quiet_outputs(model, tokenizer, SMOL_SPECIAL)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_qwen2vl(folder: str | Path, *, seed: int = 0, v25: bool = False) -> Path:
    """Tiny Qwen2-VL, or with `v25` Qwen2.5-VL (window-attention vision tower, fps-aware MRoPE)."""
    import torch
    from transformers import (Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor,
                              Qwen2TokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration,
                              Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor)

    folder = Path(folder)
    torch.manual_seed(seed)
    raw = _bpe(QWEN_SPECIAL)
    vocab_map = raw.get_vocab()
    model_json = __import__("json").loads(raw.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model_json["merges"]]
    tokenizer = Qwen2TokenizerFast(vocab=vocab_map, merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   unk_token=None, bos_token=None)
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL[1:]})
    pixels = {"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 16}
    image_processor = Qwen2VLImageProcessor(size=pixels, patch_size=14, merge_size=2, temporal_patch_size=2)
    video_processor = Qwen2VLVideoProcessor(size=pixels, patch_size=14, merge_size=2, temporal_patch_size=2,
                                            do_sample_frames=False)
    try:
        video_processor.cap_pixels_per_frame = True
    except Exception:  # pragma: no cover
        pass
    processor = (Qwen2_5_VLProcessor if v25 else Qwen2VLProcessor)(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=QWEN_TEMPLATE)
    vocab = len(tokenizer)
    hidden, heads = 64, 4
    config_cls = Qwen2_5_VLConfig if v25 else Qwen2VLConfig
    config = config_cls(
        text_config={"vocab_size": vocab, "hidden_size": hidden, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": heads, "num_key_value_heads": 2, "max_position_embeddings": 4096,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                         "mrope_section": [2, 3, 3]},
                     "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                     "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")},
        vision_config=({"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                        "out_hidden_size": hidden, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                        "window_size": 56, "fullatt_block_indexes": [0]} if v25 else
                       {"depth": 1, "embed_dim": 32, "hidden_size": hidden, "num_heads": 2, "mlp_ratio": 2,
                        "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3}),
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"), tie_word_embeddings=False)
    model = (Qwen2_5_VLForConditionalGeneration if v25 else Qwen2VLForConditionalGeneration)(config).eval()
    _quiet_outputs(model, tokenizer, QWEN_SPECIAL)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# Added after the BPE vocabulary, <|notimestamps|> last: Whisper's generate treats every id above it as a
# timestamp token and strips it.
WHISPER_SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
                   "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]


def build_whisper(folder: str | Path, *, seed: int = 0) -> Path:
    """A tiny random Whisper (80 mel bins) with a locally trained byte-level tokenizer."""
    import json

    import torch
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizerFast)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    raw = _bpe(WHISPER_SPECIAL[:1], 300)
    model_json = json.loads(raw.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model_json["merges"]]
    tokenizer = WhisperTokenizerFast(vocab=raw.get_vocab(), merges=[tuple(m.split(" ")) for m in merges],
                                     unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIAL[1:]})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in WHISPER_SPECIAL}
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_source_positions=1500, max_target_positions=64,
                           pad_token_id=ids["<|endoftext|>"], bos_token_id=ids["<|endoftext|>"],
                           eos_token_id=ids["<|endoftext|>"], decoder_start_token_id=ids["<|startoftranscript|>"],
                           begin_suppress_tokens=None, suppress_tokens=None)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.proj_out.weight[list(ids.values())] = 0
    gen = model.generation_config
    gen.decoder_start_token_id = ids["<|startoftranscript|>"]
    gen.eos_token_id = ids["<|endoftext|>"]
    gen.pad_token_id = ids["<|endoftext|>"]
    gen.suppress_tokens = list(ids.values())
    gen.begin_suppress_tokens = None
    gen.forced_decoder_ids = None
    gen.no_timestamps_token_id = ids["<|notimestamps|>"]
    model.save_pretrained(folder)
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer)
    processor.save_pretrained(folder)
    return folder


# ----------------------------------------------------------------------------- pytest fixtures (import these)
import pytest  # noqa: E402


def _cached(tmp_path_factory, name: str, build) -> Path:
    """Build once per session (several test modules import the fixture)."""
    folder = tmp_path_factory.getbasetemp() / name
    if not (folder / "config.json").is_file():
        build(folder)
    return folder


@pytest.fixture(scope="session")
def smolvlm_dir(tmp_path_factory) -> Path:
    return _cached(tmp_path_factory, "tiny-smolvlm", build_smolvlm)


@pytest.fixture(scope="session")
def qwen2vl_dir(tmp_path_factory) -> Path:
    return _cached(tmp_path_factory, "tiny-qwen2vl", build_qwen2vl)


@pytest.fixture(scope="session")
def qwen25vl_dir(tmp_path_factory) -> Path:
    return _cached(tmp_path_factory, "tiny-qwen25vl", lambda folder: build_qwen2vl(folder, v25=True))


@pytest.fixture(scope="session")
def whisper_dir(tmp_path_factory) -> Path:
    return _cached(tmp_path_factory, "tiny-whisper", build_whisper)
