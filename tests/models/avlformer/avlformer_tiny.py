"""A tiny AVLFormer config for tests: 8 frames of 32x32, 1 s of 16 kHz audio, 2 Swin stages, 2 PaSST layers."""

TINY = dict(
    num_frames=8, image_size=32, swin_patch_size=[2, 4, 4], swin_embed_dim=16, swin_depths=[2, 2],
    swin_num_heads=[2, 4], swin_window_size=[2, 4, 4], swin_drop_path_rate=0.0,
    sample_rate=16000, audio_seconds=1.0, n_mels=32, n_fft=512, win_length=400, hop_length=160, fmax=7000.0,
    passt_patch_size=16, passt_stride=10, passt_embed_dim=32, passt_depth=2, passt_num_heads=2,
    passt_input_tdim=101, passt_patchout_t=3, passt_patchout_f=0,
    img_feature_dim=24, vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=64,
    max_seq_length=20, max_gen_length=20, pad_token_id=0, cls_token_id=1, sep_token_id=2, mask_token_id=3,
    max_masked_tokens=8,
)


def tiny_config(**overrides):
    from vsuite.models.avlformer import AvlformerConfig

    return AvlformerConfig(**{**TINY, **overrides})
