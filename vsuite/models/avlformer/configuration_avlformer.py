"""AVLFormer (FAVD, arXiv 2303.15616) configuration: Video Swin + PaSST + a BERT-style multimodal decoder.

Defaults are the official model (OpenNLPLab/FAVDBench AVLFormer, src/configs/favd_32frm_default.json and
run.sh): 32 frames at 224 px through Video Swin-B (patch 2x4x4, window 8x7x7, embed 128, depths 2-2-18-2,
heads 4-8-16-32, patch norm; Kinetics-600 22K weights) -> 16x7x7 = 784 tokens projected 1024 -> 512 (`fc`);
10 s of 32 kHz audio -> 128-bin log-mel (win 800, hop 320, n_fft 1024) -> PaSST-S (patch 16, stride 10,
768 wide, 12 layers) with structured patchout of 40 time and 4 frequency patches -> 8x59 patches + the
distillation token = 473 tokens, 768 -> 512 (`passt.linear`), then a parameter-free RMS norm;
visual + audio = 1257 tokens (official max_img_seq_length) after up to 300 text tokens in a
bert-base-uncased decoder (img_feature_dim 512 -> hidden 768) with the seq2seq mask and a learned sparse
mask over the 1257 x 1257 audio-visual block (sigmoid, diagonal forced to 1, L1 loss x loss_sparse_w 0.5).
Loss = lm_lambda * LM + (1 - lm_lambda) * MLM (+ sparse); run.sh's --lambda_ 0.1 (the class default 0.5).

Notable fields:
  swin_*          Video Swin backbone (official SwinTransformer3D arguments).
  n_mels .. fmax  the log-mel front end (official AugmentMelSTFT; fmax None there means sr/2 - 1000).
  mel_freqm, mel_timem  training-time SpecAugment widths (official 48 bins, 192 frames of 128 x 1001).
  passt_*         PaSST-S. passt_input_tdim fixes the time positional embedding (998 frames -> 99 patches).
  passt_patchout_t / _f   structured patchout: that many time / frequency patch columns are dropped. The
                  official AVLFormer copy of PaSST drops them in training AND inference (random columns
                  both times); vsuite keeps random columns in training and, by default, evenly spaced
                  columns in inference (`passt_patchout_eval = "uniform"`, deterministic descriptions);
                  "random" reproduces the official inference.
  max_seq_length  text positions (CLS + caption + SEP); the official max_seq_a_length = max_seq_length 300.
  max_gen_length  generation length including the leading CLS (official max_gen_length 115).
  lm_lambda       weight of the autoregressive loss (official --lambda_).
"""

from __future__ import annotations

from dataclasses import field

from transformers.configuration_utils import PreTrainedConfig


class AvlformerConfig(PreTrainedConfig):
    model_type = "avlformer"

    # video
    num_frames: int = 32
    image_size: int = 224
    image_mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    image_std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    swin_patch_size: list[int] = field(default_factory=lambda: [2, 4, 4])
    swin_embed_dim: int = 128
    swin_depths: list[int] = field(default_factory=lambda: [2, 2, 18, 2])
    swin_num_heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    swin_window_size: list[int] = field(default_factory=lambda: [8, 7, 7])
    swin_mlp_ratio: float = 4.0
    swin_patch_norm: bool = True
    swin_drop_path_rate: float = 0.2
    # audio
    sample_rate: int = 32000
    audio_seconds: float = 10.0
    n_mels: int = 128
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    fmin: float = 0.0
    fmax: float = 15000.0  # official fmax=None -> sr // 2 - fmax_aug_range // 2 = 16000 - 1000
    mel_freqm: int = 48  # SpecAugment in training: up to this many mel bins masked (official freqm)
    mel_timem: int = 192  # ... and up to this many frames (official timem)
    passt_patch_size: int = 16
    passt_stride: int = 10
    passt_embed_dim: int = 768
    passt_depth: int = 12
    passt_num_heads: int = 12
    passt_mlp_ratio: float = 4.0
    passt_input_tdim: int = 998
    passt_patchout_t: int = 40
    passt_patchout_f: int = 4
    passt_patchout_eval: str = "uniform"  # uniform | random (official)
    passt_drop_path_rate: float = 0.0
    # multimodal decoder (bert-base-uncased)
    img_feature_dim: int = 512
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1  # official --drop_out 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    # sequence, masks and losses
    max_seq_length: int = 300
    max_gen_length: int = 115
    learn_mask_enabled: bool = True
    sparse_mask_soft2hard: bool = False
    loss_sparse_w: float = 0.5
    lm_lambda: float = 0.1
    mask_prob: float = 0.25
    max_masked_tokens: int = 75
    pad_token_id: int = 0
    cls_token_id: int = 101
    sep_token_id: int = 102
    mask_token_id: int = 103

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        problems = []
        if len(self.swin_depths) != len(self.swin_num_heads) or not self.swin_depths:
            problems.append("swin_depths and swin_num_heads need the same (non-zero) length")
        if len(self.swin_patch_size) != 3 or len(self.swin_window_size) != 3:
            problems.append("swin_patch_size and swin_window_size need 3 values (time, height, width)")
        for i, heads in enumerate(self.swin_num_heads):
            if (self.swin_embed_dim * 2**i) % heads:
                problems.append(f"Swin stage {i} width {self.swin_embed_dim * 2**i} is not divisible by {heads} heads")
        if self.passt_embed_dim % self.passt_num_heads:
            problems.append("passt_embed_dim must be divisible by passt_num_heads")
        if self.hidden_size % self.num_attention_heads:
            problems.append("hidden_size must be divisible by num_attention_heads")
        if self.passt_patchout_eval not in ("uniform", "random"):
            problems.append(f"passt_patchout_eval must be uniform or random, got {self.passt_patchout_eval!r}")
        if not problems:
            f, t = self.audio_grid()
            if self.passt_patchout_f >= f or self.passt_patchout_t >= t:
                problems.append(f"patchout ({self.passt_patchout_f} freq, {self.passt_patchout_t} time) leaves no "
                                f"patches of the {f}x{t} audio grid")
        if not 0.0 <= self.lm_lambda <= 1.0:
            problems.append("lm_lambda must be in [0, 1]")
        if self.max_seq_length > self.max_position_embeddings or self.max_gen_length > self.max_position_embeddings:
            problems.append("max_seq_length and max_gen_length must not exceed max_position_embeddings")
        if problems:
            raise ValueError("invalid AvlformerConfig: " + "; ".join(problems))

    # -- token geometry -------------------------------------------------------------------------
    def video_grid(self) -> tuple[int, int, int]:
        """(T', H', W') of the last Swin stage: patch embed (ceil, as the official padding) then one 2x2
        merge per stage after the first."""
        pt, ph, pw = self.swin_patch_size
        t, h, w = -(-self.num_frames // pt), -(-self.image_size // ph), -(-self.image_size // pw)
        for _ in range(len(self.swin_depths) - 1):
            h, w = -(-h // 2), -(-w // 2)
        return t, h, w

    def audio_frames(self) -> int:
        """Log-mel frames of audio_seconds of audio (torch.stft with center=True)."""
        return int(round(self.audio_seconds * self.sample_rate)) // self.hop_length + 1

    def audio_grid(self) -> tuple[int, int]:
        """(frequency, time) patches before patchout; time is cut to the positional embedding's length."""
        p, s = self.passt_patch_size, self.passt_stride
        f = (self.n_mels - p) // s + 1
        t_max = (self.passt_input_tdim - p) // s + 1
        t = min((self.audio_frames() - p) // s + 1, t_max)
        return f, t

    @property
    def num_video_tokens(self) -> int:
        t, h, w = self.video_grid()
        return t * h * w

    @property
    def num_audio_tokens(self) -> int:
        """Kept patches plus the distillation token (the official forward drops only the CLS token)."""
        f, t = self.audio_grid()
        return (f - self.passt_patchout_f) * (t - self.passt_patchout_t) + 1

    @property
    def num_visual_tokens(self) -> int:
        """Audio-visual tokens after the text (official max_img_seq_length: 784 + 473 = 1257)."""
        return self.num_video_tokens + self.num_audio_tokens

    @property
    def audio_samples(self) -> int:
        return int(round(self.audio_seconds * self.sample_rate))

    @property
    def swin_num_features(self) -> int:
        return self.swin_embed_dim * 2 ** (len(self.swin_depths) - 1)


__all__ = ["AvlformerConfig"]
