"""Official LVT checkpoints (OpenNLPLab/Linear_VideoTransformer, SlowFast layout): the 8-entry temporal
embedding, SHIFT_SIZE 4, key names, config inference, the pickled file format and its safety."""

import os

import pytest
import torch
import torch.nn.functional as F

from vsuite.errors import DataError, ModelNotFoundError
from vsuite.models.lvt import LvtConfig, LvtForVideoClassification
from vsuite.models.lvt.modeling_lvt import spatial_shift
from vsuite.models.lvt.official import convert_state_dict, load_official_checkpoint

# The official K400 cfg.dump() keys that matter, with tiny values (SHIFT_SIZE 4 as in lxvitv2_B16_16x16_k400.yaml).
CFG_YAML = """\
DATA:
  NUM_FRAMES: 4
  TEST_CROP_SIZE: 64
  MEAN: [0.45, 0.45, 0.45]
  STD: [0.225, 0.225, 0.225]
XVIT:
  CONSENSUS_TYPE: vit
  USE_XVIT: true
  USE_SpatialShift: true
  SHIFT_SIZE: 4
  SHIFT_DIV: 8
  NUM_SEGMENTS: 2
  LOCATIONS_LIST: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
  BACKBONE:
    DROP_PATH_RATE: 0.0
    DROP_ATTN_RATE: 0.0
MODEL:
  NUM_CLASSES: 5
  DROPOUT_RATE: 0.5
ATTENTION_TYPE: divided_time_space
USE_CGATE: true
SHARE_GATE: false
LINEAR_TYPE: relu
USE_MOTION: false
USE_3D: false
"""


def source_model(**kw):
    """A vsuite LVT with every parameter random (the temporal embedding and gates included)."""
    base = dict(image_size=64, num_frames=4, patch_size=8, patch_stride=14, patch_padding=4, hidden_size=160,
                num_hidden_layers=2, num_attention_heads=2, mlp_ratio=1.0, num_segments=2, shift_div=8,
                temporal_embed_size=2, spatial_shift_size=4, head_hidden_size=12, num_labels=5,
                image_mean=[0.45] * 3, image_std=[0.225] * 3)
    torch.manual_seed(0)
    model = LvtForVideoClassification(LvtConfig(**{**base, **kw})).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def official_layout(model) -> dict:
    """The official XVIT names, written out here independently of the converter: the timm backbone is
    `base_model`, the VVTHead `consensus`, plus the classifier `new_fc` the 'vit' consensus never calls."""
    sd = {}
    for key, value in model.state_dict().items():
        if key.startswith("lvt."):
            sd["base_model." + key[len("lvt."):]] = value.clone()
        else:
            assert key.startswith("consensus.mlp_head."), key
            sd[key] = value.clone()
    d = model.config.hidden_size
    sd["new_fc.weight"], sd["new_fc.bias"] = torch.randn(400, d), torch.randn(400)
    return sd


def save_slowfast(path, sd, cfg=CFG_YAML):
    """slowfast/utils/checkpoint.py save_checkpoint's layout."""
    optimizer = {"state": {0: {"momentum_buffer": torch.zeros(3)}}, "param_groups": [{"lr": 0.035, "params": [0]}]}
    torch.save({"epoch": 39, "model_state": sd, "optimizer_state": optimizer, "cfg": cfg}, path)
    return path


def clips(model, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    return torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, generator=g)


# ----------------------------------------------------------------------------- temporal embedding
def test_sixteen_frames_share_eight_temporal_entries_per_group():
    """Official: temp_embed [1, 8, 1, D] added to x.view(B*16/8, 8, N, D), i.e. frame t gets entry t mod 8."""
    torch.manual_seed(0)
    cfg = LvtConfig(image_size=32, num_frames=16, patch_size=8, patch_stride=6, patch_padding=4, hidden_size=32,
                    num_hidden_layers=1, num_attention_heads=2, mlp_ratio=1.0, head_hidden_size=8, num_labels=2)
    assert cfg.temporal_embed_size == 8  # the official default
    model = LvtForVideoClassification(cfg).eval()
    with torch.no_grad():
        model.lvt.temp_embed.normal_()
    assert model.lvt.temp_embed.shape == (1, 8, 1, 32)
    x = torch.randn(2, 16, 3, 32, 32)
    with torch.no_grad():
        got = model.lvt(x, output_hidden_states=True).hidden_states[0].view(2, 16, -1, 32)
        pe = model.lvt.patch_embed
        tokens = F.conv2d(x.view(32, 3, 32, 32), pe.proj.weight, pe.proj.bias, stride=6, padding=4)
        tokens = F.layer_norm(tokens.flatten(2).transpose(1, 2), (32,), pe.norm.weight, pe.norm.bias)
        tokens = tokens.view(2, 16, -1, 32)
        temp = model.lvt.temp_embed[0, :, 0]  # [8, D]
        expected = torch.stack([tokens[:, t] + temp[t % 8] for t in range(16)], dim=1)
        official = (tokens.reshape(4, 8, -1, 32) + model.lvt.temp_embed).view(2, 16, -1, 32)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(got, official, atol=1e-6, rtol=0)
    torch.testing.assert_close(got[:, 8] - got[:, 0], tokens[:, 8] - tokens[:, 0], atol=1e-5, rtol=0)


def test_temporal_embed_size_checks():
    assert LvtConfig(num_frames=4, num_segments=4, temporal_embed_size=4).temporal_embed_size == 4
    assert LvtConfig(num_frames=4, num_segments=4).temporal_embed_size == 8  # more entries than frames: t < 8
    with pytest.raises(ValueError, match="temporal_embed_size"):
        LvtConfig(num_frames=12, num_segments=4, temporal_embed_size=8)


# ----------------------------------------------------------------------------- SHIFT_SIZE 4
def test_shift_size_four_moves_eight_groups_by_four_tokens():
    """SHIFT_SIZE 4: fold = C // (2 * (9^2 - 1)) = C // 160; groups 0-3 move along the axes by 4 with zero
    borders, groups 4-7 along the diagonals by 4 keeping their own value off-grid, the rest stay."""
    assert LvtConfig(spatial_shift_size=4).spatial_shift_size == 4  # accepted at the official width 512
    height, width, channels = 6, 7, 160  # fold 1
    torch.manual_seed(0)
    x = torch.randn(height * width, 3, channels)  # rows (i, j), 3 time steps
    out = spatial_shift(x, height, width, 4).view(height, width, 3, channels)
    g = x.view(height, width, 3, channels)
    moves = [(4, 0, "zero"), (-4, 0, "zero"), (0, 4, "zero"), (0, -4, "zero"),
             (-4, -4, "keep"), (4, 4, "keep"), (-4, 4, "keep"), (4, -4, "keep")]
    for c, (dy, dx, border) in enumerate(moves):
        for i in range(height):
            for j in range(width):
                si, sj = i + dy, j + dx
                if 0 <= si < height and 0 <= sj < width:
                    want = g[si, sj, :, c]
                else:
                    want = torch.zeros(3) if border == "zero" else g[i, j, :, c]
                assert torch.equal(out[i, j, :, c], want), (c, i, j)
    assert torch.equal(out[..., 8:], g[..., 8:])
    assert (out[..., :8] != g[..., :8]).any()


# ----------------------------------------------------------------------------- checkpoints
def test_slowfast_checkpoint_loads_with_its_cfg_and_gives_the_same_logits(tmp_path):
    model = source_model()
    path = save_slowfast(tmp_path / "checkpoint_epoch_00040.pyth", official_layout(model))
    loaded = load_official_checkpoint(path)
    cfg = loaded.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.mlp_ratio) == (160, 2, 2, 1.0)
    assert (cfg.num_frames, cfg.num_segments, cfg.spatial_shift_size, cfg.temporal_embed_size) == (4, 2, 4, 2)
    assert cfg.use_gate and not cfg.share_gate and cfg.num_labels == 5 and cfg.head_hidden_size == 12
    assert cfg.image_mean == [0.45] * 3 and cfg.classifier_dropout == 0.5 and not loaded.training
    x = clips(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=x).logits, model(pixel_values=x).logits, atol=1e-6, rtol=0)


def test_bare_state_dict_with_overrides_and_save_pretrained(tmp_path):
    from transformers import AutoModelForVideoClassification

    model = source_model(hidden_size=32, spatial_shift_size=1, share_gate=True, num_frames=8, num_segments=4,
                         temporal_embed_size=4, image_size=32)
    official = official_layout(model)
    torch.save({"module." + k: v for k, v in official.items()}, tmp_path / "ddp.pth")  # a DDP-wrapped dump
    loaded = load_official_checkpoint(tmp_path / "ddp.pth", num_frames=8, num_segments=4, image_size=32,
                                      spatial_shift_size=1)
    assert loaded.config.share_gate and loaded.config.temporal_embed_size == 4
    loaded.save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    again = AutoModelForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    x = clips(model)
    with torch.no_grad():
        want = model(pixel_values=x).logits
        torch.testing.assert_close(loaded(pixel_values=x).logits, want, atol=1e-6, rtol=0)
        torch.testing.assert_close(again(pixel_values=x).logits, want, atol=1e-6, rtol=0)


def test_convert_drops_new_fc_and_renames_base_model():
    sd = {"base_model.temp_embed": torch.zeros(1), "consensus.mlp_head.0.weight": torch.ones(1),
          "new_fc.weight": torch.ones(1), "new_fc.bias": torch.ones(1)}
    assert sorted(convert_state_dict(sd)) == ["consensus.mlp_head.0.weight", "lvt.temp_embed"]
    with pytest.raises(DataError, match="unexpected keys encoder.x"):
        convert_state_dict({"encoder.x": torch.zeros(1)})


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pyth"
    torch.save({"epoch": 1, "model_state": official_layout(source_model(hidden_size=32, spatial_shift_size=1)),
                "cfg": Payload()}, path)
    with pytest.raises(DataError, match="refusing to load .*mkdir"):
        load_official_checkpoint(path)
    assert not marker.exists()


def test_numpy_metadata_is_read_and_errors_are_one_line(tmp_path):
    import numpy as np

    model = source_model()
    path = tmp_path / "np.pyth"
    torch.save({"epoch": np.int64(3), "best_top1": np.float64(71.5), "model_state": official_layout(model),
                "cfg": CFG_YAML}, path)
    assert load_official_checkpoint(path).config.num_labels == 5
    with pytest.raises(ModelNotFoundError, match="no such file"):
        load_official_checkpoint(tmp_path / "absent.pyth")
    (tmp_path / "junk.pyth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not readable") as err:
        load_official_checkpoint(tmp_path / "junk.pyth")
    assert "\n" not in str(err.value)
    cut = {k: v for k, v in official_layout(model).items() if "blocks.1.mlp.fc2.bias" not in k}
    with pytest.raises(DataError, match="missing lvt.blocks.1.mlp.fc2.bias"):
        load_official_checkpoint(save_slowfast(tmp_path / "cut.pyth", cut))
    motion = CFG_YAML.replace("USE_MOTION: false", "USE_MOTION: true")
    with pytest.raises(DataError, match="USE_MOTION"):
        load_official_checkpoint(save_slowfast(tmp_path / "motion.pyth", official_layout(model), motion))
