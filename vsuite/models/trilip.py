"""TriLip, the model behind FAVDBench's AudioScore (OpenNLPLab/FAVDBench, Metrics/AudioScore/model/trilip.py,
load_passt.py, score.py, dataset.py), with the official parameter names.

What the official code does (read from the repository; reference: /work/shared/reference/vript-favd.md §3.5):
  - `vl_model`: OpenAI CLIP ViT-B/32 from the `clip` package (`clip.load("ViT-B/32", jit=False)`), frozen.
    Image tower: 224 px, 32-px patches, width 768, 12 layers; text tower: 77 tokens, width 512, 12 layers,
    QuickGELU, causal mask, the feature taken at the EOT token (the largest id); both projected to 512.
  - `a_model`: the same `MyPasst` as AVLFormer: AugmentMelSTFT (128 mels, 32 kHz, win 800, hop 320, n_fft 1024,
    fmax 15 kHz) -> PaSST-S `passt_s_swa_p16_128_ap476` built with n_classes=0, fstride=tstride=10,
    input_tdim 998, structured patchout 40 time / 4 frequency columns -> Linear 768 -> 512; frozen. Its output is
    [B, 473, 512] (distillation token + 59 x 8 kept patches; the CLS token is dropped).
  - trained: `vis_scaler`, `txt_scaler`, `aud_scaler` (FFN: w_1 512->2048, ReLU, w_2 2048->512, dropout 0.1,
    + residual, LayerNorm eps 1e-6) and two scalars `logit_scale1`, `logit_scale2` (initialised to
    log(1/0.07) and used as they are, NOT exponentiated).
  - forward: img = vis_scaler(encode_image), txt = txt_scaler(encode_text), aud = mean over tokens of
    aud_scaler(a_model(wave)) (the scaler runs per token, then the mean); no L2 normalisation (commented out);
    logits = (logit_scale1 * (img @ txt.T + 1)/2 + logit_scale2 * (aud @ txt.T + 1)/2) / 2, [B, B].
  - TriLip.bin: torch.save({"model": TriLip(...).state_dict() of a DataParallel model}); score.py strips the
    first 7 characters ("module.") of every key and loads STRICTLY, so the file holds the whole model: CLIP
    (vl_model.visual.*, vl_model.transformer.*, token_embedding, positional_embedding, ln_final,
    text_projection, logit_scale), PaSST (a_model.net.*, incl. the unused classifier LayerNorm head.0) and
    a_model.linear, the scalers and the logit scales. AugmentMelSTFT's buffers are non-persistent (no keys).

Here: `vl_model` is transformers' CLIPModel (keys converted from the OpenAI layout, `convert_official_state_dict`),
`a_model` is vsuite's AVLFormer audio encoder (vsuite.models.avlformer.passt.AudioEncoder: same mel front end
and PaSST, same names mel/net/linear). Dropped on load: a_model.net.head.* (the classifier LayerNorm, unused).

Deviations from the official run, on purpose and documented:
  - PaSST's structured patchout is applied by the official code at test time too, with random columns
    (forward_features has no `self.training` check); vsuite keeps 59 x 8 EVENLY SPACED columns by default
    (`patchout="uniform"`: deterministic, same token count); `patchout="random"` reproduces the official draw
    distribution (not its exact draws, which depend on DataLoader worker seeds).
  - the official runs CLIP in float16 under autocast on CUDA; vsuite computes in float32.
  - text: CLIP's BPE through transformers' CLIPTokenizer (the `clip` package also runs ftfy + HTML unescaping,
    which only changes text with mojibake or HTML entities).
Not verifiable offline: the real TriLip.bin (release asset r-metric-score, md5 in vsuite.metrics.favd) could not
be downloaded here; its key set is taken from the code that saved and loads it. An unknown or missing key is a
one-line DataError, never silently ignored.
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import DataError, ModelNotFoundError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
OFFICIAL_CLIP_TOKENIZER = "openai/clip-vit-base-patch32"  # same BPE as the clip package's bpe_simple_vocab_16e6
BPE_GZ = "bpe_simple_vocab_16e6.txt.gz"
WEIGHTS_NAMES = ("TriLip.bin", "trilip.bin")
DROPPED_PREFIXES = ("a_model.net.head.", "a_model.net.head_dist.", "a_model.net.pre_logits.")


@dataclass
class TrilipConfig:
    """Sizes of the three towers. Defaults = the official TriLip; the audio front-end fields use the names of
    vsuite's AVLFormer audio encoder, which TriLip reuses."""

    # CLIP (OpenAI build_model's numbers; heads = width // 64 as there)
    embed_dim: int = 512
    image_resolution: int = 224
    vision_patch: int = 32
    vision_width: int = 768
    vision_layers: int = 12
    context_length: int = 77
    vocab_size: int = 49408
    text_width: int = 512
    text_layers: int = 12
    # audio (MyPasst)
    n_mels: int = 128
    sample_rate: int = 32000
    win_length: int = 800
    hop_length: int = 320
    n_fft: int = 1024
    fmin: float = 0.0
    fmax: float = 15000.0  # official fmax=None -> sr // 2 - fmax_aug_range // 2
    mel_freqm: int = 48  # SpecAugment widths (training only)
    mel_timem: int = 192
    passt_input_tdim: int = 998
    passt_patch_size: int = 16
    passt_stride: int = 10
    passt_embed_dim: int = 768
    passt_depth: int = 12
    passt_num_heads: int = 12
    passt_mlp_ratio: float = 4.0
    passt_patchout_t: int = 40
    passt_patchout_f: int = 4
    passt_patchout_eval: str = "uniform"  # "uniform" (vsuite default) | "random" (the official test-time draw)
    passt_drop_path_rate: float = 0.0
    img_feature_dim: int = 512  # a_model.linear's output = the joint feature size
    audio_seconds: float = 10.0
    # scalers
    scaler_hidden: int = 2048
    scaler_dropout: float = 0.1

    @property
    def audio_samples(self) -> int:
        return round(self.audio_seconds * self.sample_rate)

    def clip_config(self):
        from transformers import CLIPConfig

        text = dict(vocab_size=self.vocab_size, hidden_size=self.text_width, intermediate_size=4 * self.text_width,
                    num_hidden_layers=self.text_layers, num_attention_heads=max(1, self.text_width // 64),
                    max_position_embeddings=self.context_length, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                    projection_dim=self.embed_dim, pad_token_id=0, bos_token_id=self.vocab_size - 2,
                    eos_token_id=self.vocab_size - 1)
        vision = dict(hidden_size=self.vision_width, intermediate_size=4 * self.vision_width,
                      num_hidden_layers=self.vision_layers, num_attention_heads=max(1, self.vision_width // 64),
                      image_size=self.image_resolution, patch_size=self.vision_patch, hidden_act="quick_gelu",
                      layer_norm_eps=1e-5, projection_dim=self.embed_dim)
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=self.embed_dim)

    def to_dict(self) -> dict:
        return asdict(self)


def _modules():
    """The nn.Module classes, built on first use (torch stays out of `import vsuite.models.trilip`)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class FFN(nn.Module):
        """The official scaler: x + dropout(w_2(relu(w_1(x)))), then LayerNorm (eps 1e-6). [..., d] -> [..., d]."""

        def __init__(self, d_in: int, d_hid: int, dropout: float = 0.1):
            super().__init__()
            self.w_1 = nn.Linear(d_in, d_hid)
            self.w_2 = nn.Linear(d_hid, d_in)
            self.layer_norm = nn.LayerNorm(d_in, eps=1e-6)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.layer_norm(self.dropout(self.w_2(F.relu(self.w_1(x)))) + x)

    class TriLip(nn.Module):
        def __init__(self, config: TrilipConfig):
            super().__init__()
            from transformers import CLIPModel

            from .avlformer.passt import AudioEncoder

            self.config = config
            self.vl_model = CLIPModel(config.clip_config())
            self.a_model = AudioEncoder(config)
            d = config.embed_dim
            self.logit_scale1 = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
            self.logit_scale2 = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
            self.vis_scaler = FFN(d, config.scaler_hidden, config.scaler_dropout)
            self.txt_scaler = FFN(d, config.scaler_hidden, config.scaler_dropout)
            self.aud_scaler = FFN(d, config.scaler_hidden, config.scaler_dropout)

        def encode_image(self, image):  # [B, 3, R, R] normalised -> [B, d]: ln_post(CLS) @ proj
            pooled = self.vl_model.vision_model(pixel_values=image).pooler_output
            return self.vl_model.visual_projection(pooled)

        def encode_text(self, ids):  # [B, context] (0-padded) -> [B, d]: ln_final at the EOT (max id) @ proj
            hidden = self.vl_model.text_model(input_ids=ids).last_hidden_state  # after final_layer_norm
            eot = hidden[torch.arange(ids.shape[0], device=ids.device), ids.argmax(dim=-1)]
            return self.vl_model.text_projection(eot)

        def encode_audio(self, wave):  # [B, N] or [B, 1, N] at 32 kHz -> [B, d]
            return self.aud_scaler(self.a_model(wave)).mean(dim=1)  # scaler per token [B, L, d], then mean

        def prepare(self, frames, waves, texts, tokenizer):
            """dataset.py's inputs: frames [H, W, 3] uint8 -> image [B, 3, R, R]; texts -> ids [B, context];
            waves [N] -> [B, 1, samples] (padded or cut to 10 s)."""
            cfg = self.config
            image = torch.stack([preprocess_image(f, cfg.image_resolution) for f in frames])
            text = clip_tokenize(tokenizer, list(texts), cfg.context_length)
            wave = torch.stack([prepare_wave(torch.as_tensor(w), cfg.audio_samples) for w in waves]).unsqueeze(1)
            return image, text, wave

        def features(self, image, text, audio):
            img = self.vis_scaler(self.encode_image(image))
            txt = self.txt_scaler(self.encode_text(text))
            return img, txt, self.encode_audio(audio)

        def forward(self, image, text, audio):
            """-> (logits [B, B] image/audio x text, logits.T), exactly the official combination."""
            img, txt, aud = self.features(image, text, audio)
            logits_img_txt = self.logit_scale1 * ((img @ txt.t() + 1) / 2)
            logits_aud_txt = self.logit_scale2 * ((aud @ txt.t() + 1) / 2)
            logits = (logits_img_txt + logits_aud_txt) / 2
            return logits, logits.t()

        def diagonal_logits(self, image, text, audio):
            """The diagonal of `forward`'s logits, [B] (what score.py keeps), without the B x B products."""
            img, txt, aud = self.features(image, text, audio)
            s_it = (img * txt).sum(-1)
            s_at = (aud * txt).sum(-1)
            return (self.logit_scale1 * (s_it + 1) / 2 + self.logit_scale2 * (s_at + 1) / 2) / 2

    return FFN, TriLip


def build_trilip(config: TrilipConfig | None = None):
    """A randomly initialised TriLip (eval mode) of `config`'s sizes."""
    _, cls = _modules()
    return cls(config or TrilipConfig()).eval()


# ----------------------------------------------------------------------------- official keys -> vsuite
def _strip(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _count(state: dict, prefix: str) -> int:
    """Number of residual blocks `prefix<i>.` in the state dict."""
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def infer_config(state: dict, base: TrilipConfig | None = None) -> TrilipConfig:
    """TrilipConfig from the shapes of an official-layout state dict (as OpenAI's build_model does for CLIP).
    Heads are width // 64 in every tower (CLIP's rule; PaSST-S: 768 // 64 = 12)."""
    cfg = TrilipConfig(**(base.to_dict() if base else {}))
    try:
        conv = state["vl_model.visual.conv1.weight"]  # [width, 3, patch, patch]
        grid = round((state["vl_model.visual.positional_embedding"].shape[0] - 1) ** 0.5)
        cfg.vision_width, cfg.vision_patch = int(conv.shape[0]), int(conv.shape[-1])
        cfg.image_resolution = cfg.vision_patch * grid
        cfg.vision_layers = _count(state, "vl_model.visual.transformer.resblocks.")
        cfg.embed_dim = int(state["vl_model.text_projection"].shape[1])
        cfg.context_length = int(state["vl_model.positional_embedding"].shape[0])
        cfg.vocab_size = int(state["vl_model.token_embedding.weight"].shape[0])
        cfg.text_width = int(state["vl_model.ln_final.weight"].shape[0])
        cfg.text_layers = _count(state, "vl_model.transformer.resblocks.")
        dim = int(state["a_model.net.cls_token"].shape[-1])
        cfg.passt_embed_dim, cfg.passt_num_heads = dim, max(1, dim // 64)
        cfg.passt_depth = _count(state, "a_model.net.blocks.")
        cfg.passt_patch_size = int(state["a_model.net.patch_embed.proj.weight"].shape[-1])
        cfg.passt_mlp_ratio = state["a_model.net.blocks.0.mlp.fc1.weight"].shape[0] / dim
        cfg.img_feature_dim = int(state["a_model.linear.weight"].shape[0])
        cfg.scaler_hidden = int(state["vis_scaler.w_1.weight"].shape[0])
        t = int(state["a_model.net.time_new_pos_embed"].shape[-1])
    except KeyError as err:
        raise DataError(f"not a TriLip state dict: {err.args[0]} is missing") from None
    if (cfg.passt_input_tdim - cfg.passt_patch_size) // cfg.passt_stride + 1 != t:  # official 998 -> 99 columns
        cfg.passt_input_tdim = (t - 1) * cfg.passt_stride + cfg.passt_patch_size
    return cfg


def convert_official_state_dict(state: dict) -> dict:
    """Official TriLip keys (OpenAI CLIP layout under vl_model.) -> vsuite TriLip keys (HF CLIPModel layout).

    OpenAI -> HF: visual.conv1 -> vision_model.embeddings.patch_embedding; visual.class_embedding /
    positional_embedding -> embeddings.class_embedding / position_embedding.weight; ln_pre -> pre_layrnorm;
    ln_post -> post_layernorm; visual.proj [w, d] -> visual_projection.weight [d, w] (transposed);
    token_embedding / positional_embedding -> text_model.embeddings.*; ln_final -> final_layer_norm;
    text_projection [w, d] -> text_projection.weight (transposed); per block: attn.in_proj_weight/bias [3w, ...]
    split into q_proj / k_proj / v_proj, attn.out_proj -> self_attn.out_proj, ln_1/ln_2 -> layer_norm1/2,
    mlp.c_fc / c_proj -> mlp.fc1 / fc2. Everything else keeps its name; DROPPED_PREFIXES are removed."""
    out = {}
    for key, value in state.items():
        key = _strip(key)
        if key.startswith(DROPPED_PREFIXES):
            continue
        if not key.startswith("vl_model."):
            out[key] = value
            continue
        for k, v in _clip_key(key[len("vl_model."):], value):
            out[f"vl_model.{k}"] = v
    return out


_BLOCK = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
          "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_TOP = {"visual.class_embedding": "vision_model.embeddings.class_embedding",
        "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
        "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "logit_scale": "logit_scale"}
_NORMS = {"visual.ln_pre": "vision_model.pre_layrnorm", "visual.ln_post": "vision_model.post_layernorm",
          "ln_final": "text_model.final_layer_norm"}


def _clip_key(key: str, value):
    """One OpenAI CLIP key -> [(HF key, tensor)] (an unknown key passes through unchanged and is reported)."""
    if key in _TOP:
        return [(_TOP[key], value)]
    if key == "visual.proj":
        return [("visual_projection.weight", value.t().contiguous())]
    if key == "text_projection":
        return [("text_projection.weight", value.t().contiguous())]
    for old, new in _NORMS.items():
        if key.startswith(old + "."):
            return [(new + key[len(old):], value)]
    for tower, hf in (("visual.transformer.resblocks.", "vision_model.encoder.layers."),
                      ("transformer.resblocks.", "text_model.encoder.layers.")):
        if key.startswith(tower):
            index, _, rest = key[len(tower):].partition(".")
            base = f"{hf}{index}."
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = rest.rsplit("_", 1)[-1]  # weight | bias
                q, k, v = value.chunk(3, dim=0)
                return [(f"{base}self_attn.{n}_proj.{kind}", t.contiguous()) for n, t in zip("qkv", (q, k, v))]
            for old, new in _BLOCK.items():
                if rest.startswith(old + "."):
                    return [(base + new + rest[len(old):], value)]
    return [(key, value)]


# ----------------------------------------------------------------------------- loading
def _weights_file(path: Path) -> Path:
    if path.is_dir():
        for name in WEIGHTS_NAMES:
            if (path / name).is_file():
                return path / name
        bins = sorted(path.glob("*.bin"))
        if len(bins) == 1:
            return bins[0]
        raise ModelNotFoundError(f"{path}: no TriLip.bin in this folder")
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no such file (expected TriLip.bin)")
    return path


def read_official_state(file: Path) -> dict:
    """The state dict inside TriLip.bin ({"model": {...}} or flat), read with torch.load(weights_only=True)."""
    import torch

    from .pickled_checkpoint import load_pickled_checkpoint

    what = "the TriLip model (TriLip.bin)"
    ckpt = load_pickled_checkpoint(file, what=what)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict):
        ckpt = ckpt["model"]
    if not isinstance(ckpt, dict) or not ckpt:
        raise DataError(f"{file}: no state dict found in {what}")
    bad = [str(k) for k, v in ckpt.items() if not torch.is_tensor(v)]
    if bad:
        raise DataError(f"{file}: {what} holds non-tensor entries ({', '.join(bad[:3])})")
    return {_strip(str(k)): v for k, v in ckpt.items()}


def load_trilip(path: str | os.PathLike, device="cpu", *, patchout: str = "uniform", tokenizer=None):
    """TriLip.bin (or a folder holding it) -> (model in eval mode on `device`, CLIP tokenizer).

    Sizes are inferred from the tensors, keys converted (convert_official_state_dict) and loaded strictly:
    a missing or unexpected key is a one-line DataError naming the file (exit 5); a missing file is
    ModelNotFoundError (exit 4). The tokenizer: `tokenizer` if given, else find_clip_tokenizer(path)."""
    from .pickled_checkpoint import load_converted_weights

    if patchout not in ("uniform", "random"):
        raise ValueError(f"patchout must be uniform or random, got {patchout!r}")
    file = _weights_file(Path(path))
    state = read_official_state(file)
    try:
        config = infer_config(state)
    except DataError as err:
        raise DataError(f"{file}: {err}") from None
    config.passt_patchout_eval = patchout
    converted = convert_official_state_dict(state)
    model = build_trilip(config)
    load_converted_weights(model, converted, file, "TriLip weights")
    tok = tokenizer if tokenizer is not None else find_clip_tokenizer(path)
    if tokenizer is None and (not _has_bpe(tok) or max(tok.get_vocab().values()) >= config.vocab_size):
        raise DataError(f"{file}: the CLIP tokenizer found for it ({len(tok.get_vocab())} tokens) does not fit the "
                        f"model's {config.vocab_size}-token embedding; use the vocabulary of "
                        f"{OFFICIAL_CLIP_TOKENIZER}")
    return model.to(device).eval(), tok


# ----------------------------------------------------------------------------- text
def find_clip_tokenizer(path: str | os.PathLike | None = None):
    """CLIP's BPE tokenizer, looked for (1) in the TriLip folder / beside TriLip.bin: transformers tokenizer
    files (vocab.json + merges.txt, or tokenizer.json) or the clip package's bpe_simple_vocab_16e6.txt.gz;
    (2) in the local Hugging Face cache of openai/clip-vit-base-patch32 (offline). ModelNotFoundError otherwise."""
    from transformers import CLIPTokenizer

    if path is not None:
        p = Path(path)
        folder = p if p.is_dir() else p.parent
        has_files = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
        if has_files or (folder / "tokenizer.json").is_file():
            return CLIPTokenizer.from_pretrained(str(folder))
        if (folder / BPE_GZ).is_file():
            return tokenizer_from_bpe(folder / BPE_GZ)
    try:
        tok = CLIPTokenizer.from_pretrained(OFFICIAL_CLIP_TOKENIZER, local_files_only=True)
    except (OSError, ValueError):
        tok = None
    if tok is not None and _has_bpe(tok):  # transformers 5 returns an EMPTY tokenizer when no file is cached
        return tok
    raise ModelNotFoundError(
            f"AudioScore needs CLIP's BPE vocabulary: put vocab.json + merges.txt of {OFFICIAL_CLIP_TOKENIZER} (or "
            f"the clip package's {BPE_GZ}) beside {path or 'TriLip.bin'}")


def _has_bpe(tok) -> bool:
    vocab = tok.get_vocab()
    return "<|startoftext|>" in vocab and "<|endoftext|>" in vocab and len(vocab) > 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte -> printable character table."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def tokenizer_from_bpe(bpe_gz: str | os.PathLike):
    """transformers CLIPTokenizer from the clip package's merges file, with the vocabulary SimpleTokenizer builds:
    the 256 byte characters, the same with '</w>', one entry per merge, then <|startoftext|>, <|endoftext|>."""
    import json
    import tempfile

    from transformers import CLIPTokenizer

    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [m for m in lines[1:49152 - 256 - 2 + 1] if m.strip()]  # the 48894 merges SimpleTokenizer uses
    chars = list(_bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
        Path(tmp, "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        return CLIPTokenizer(str(Path(tmp, "vocab.json")), str(Path(tmp, "merges.txt")))


def clip_tokenize(tokenizer, texts: list[str], context_length: int = 77):
    """clip.tokenize(texts, truncate=True): [sot] + BPE ids + [eot], cut to context_length with the last id set to
    eot, right-padded with 0 -> LongTensor [B, context_length]."""
    import torch

    sot = tokenizer.convert_tokens_to_ids("<|startoftext|>")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot] + list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [eot]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = eot
        out[i, :len(ids)] = torch.tensor(ids)
    return out


# ----------------------------------------------------------------------------- image
def preprocess_image(frame, resolution: int = 224):
    """clip.load's transform on one RGB frame [H, W, 3] uint8 (tensor or array): Resize(short side ->
    resolution, PIL bicubic; long side int(resolution * long / short) as torchvision), CenterCrop (offsets
    round((size - resolution) / 2)), /255, (x - CLIP_MEAN) / CLIP_STD -> [3, resolution, resolution] float32."""
    import numpy as np
    import torch
    from PIL import Image

    array = frame.numpy() if hasattr(frame, "numpy") else np.asarray(frame)
    img = Image.fromarray(np.ascontiguousarray(array.astype(np.uint8))).convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(resolution * long / short)
    size = (resolution, new_long) if w <= h else (new_long, resolution)
    if (w, h) != size:
        img = img.resize(size, Image.BICUBIC)
    w, h = img.size
    top, left = int(round((h - resolution) / 2.0)), int(round((w - resolution) / 2.0))
    img = img.crop((left, top, left + resolution, top + resolution))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean, std = torch.tensor(CLIP_MEAN)[:, None, None], torch.tensor(CLIP_STD)[:, None, None]
    return ((x - mean) / std).contiguous()


def prepare_wave(wave, samples: int):
    """dataset.py pad_or_truncate: [N] -> [samples] (zero-padded at the end or cut)."""
    import torch.nn.functional as F

    wave = wave.float().reshape(-1)
    return wave[:samples] if wave.shape[0] >= samples else F.pad(wave, (0, samples - wave.shape[0]))


__all__ = ["CLIP_MEAN", "CLIP_STD", "TrilipConfig", "build_trilip", "clip_tokenize", "convert_official_state_dict",
           "find_clip_tokenizer", "infer_config", "load_trilip", "prepare_wave", "preprocess_image",
           "read_official_state", "tokenizer_from_bpe"]
