"""LVT: feature map and gates against a naive per-head reference, shifts against hand-checked tensors,
a whole block against an explicit loop reference, shapes, Auto-class round trip, parameter count."""

import pytest
import torch
import torch.nn.functional as F

from vsuite.models.lvt import LvtConfig, LvtForVideoClassification, LvtModel
from vsuite.models.lvt.modeling_lvt import LvtAttention, LvtBlock, spatial_shift, temporal_shift
from vsuite_kernels.testing import assert_close


def tiny_config(**kw):
    base = dict(image_size=32, num_frames=4, patch_size=8, patch_stride=6, patch_padding=4, hidden_size=32,
                num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2.0, num_segments=2, shift_div=8,
                head_hidden_size=24, classifier_dropout=0.0, num_labels=3)
    return LvtConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- naive references
def naive_attention(attn: LvtAttention, x, shift=None):
    """Quadratic, softmax-free, head by head, token by token: the definition of LVT's attention."""
    b, n, d = x.shape
    h = attn.heads
    e = d // h
    qkv = x @ attn.qkv.weight.T + (attn.qkv.bias if attn.qkv.bias is not None else 0)
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    if shift is not None:
        k, v = shift(k), shift(v)
    out = torch.zeros_like(q)
    for bi in range(b):
        for hi in range(h):
            cs = slice(hi * e, (hi + 1) * e)
            fq = torch.clamp(q[bi, :, cs], min=0) + e**-0.5
            fk = torch.clamp(k[bi, :, cs], min=0) + e**-0.5
            vv = v[bi, :, cs]
            if attn.use_gate:
                z = torch.cat([fq, fk, vv], dim=-1)
                gq, gk = (attn.pgate, attn.pgate) if attn.share_gate else (attn.q_gate, attn.k_gate)
                wq, bq, wk, bk = gq.weight, gq.bias, gk.weight, gk.bias
                fq = fq * (1 / (1 + torch.exp(-(z @ wq.T + bq))))
                fk = fk * (1 / (1 + torch.exp(-(z @ wk.T + bk))))
            for i in range(n):
                scores = torch.stack([fq[i] @ fk[j] for j in range(n)])
                out[bi, i, cs] = (scores[:, None] * vv).sum(0) / (scores.sum() + 1e-6)
    return out @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize("use_gate,share_gate", [(True, False), (True, True), (False, False)])
def test_attention_matches_naive_per_head_reference(use_gate, share_gate):
    torch.manual_seed(0)
    attn = LvtAttention(tiny_config(use_gate=use_gate, share_gate=share_gate)).double().eval()
    for p in attn.parameters():  # non-trivial gates and biases
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    assert_close("attention", naive_attention(attn, x), attn(x), 1e-10)
    shift = lambda z: temporal_shift(z, 2, 8)  # noqa: E731
    assert_close("attention+shift", naive_attention(attn, x, shift), attn(x, shift=shift), 1e-10)


def test_gate_input_is_mapped_q_k_and_raw_v():
    """r = sigmoid(W [phi(q), phi(k), v] + b), phi(x) = relu(x) + e^-1/2, with e the head width."""
    torch.manual_seed(1)
    attn = LvtAttention(tiny_config(share_gate=False)).double()
    e = 16
    fq, fk = torch.rand(1, 3, 2, e, dtype=torch.float64) + e**-0.5, torch.rand(1, 3, 2, e, dtype=torch.float64)
    v = torch.randn(1, 3, 2, e, dtype=torch.float64)
    gq, gk = attn.feature_fixation(fq, fk, v)
    z = torch.cat([fq, fk, v], -1)
    assert_close("q gate", torch.sigmoid(attn.q_gate(z)) * fq, gq, 1e-12)
    assert_close("k gate", torch.sigmoid(attn.k_gate(z)) * fk, gk, 1e-12)


# ----------------------------------------------------------------------------- shifts
def test_temporal_shift_directions_and_zero_borders():
    # 3 frames, 4 channels, shift_div 4 -> fold 1: channel 0 takes the NEXT frame, channel 1 the PREVIOUS one.
    x = torch.tensor([[0., 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]]).view(3, 1, 4)
    expected = torch.tensor([[10., 0, 2, 3], [20, 1, 12, 13], [0, 11, 22, 23]]).view(3, 1, 4)
    assert torch.equal(temporal_shift(x, 3, 4), expected)


def test_temporal_shift_stays_inside_num_segments_groups():
    # 4 frames in groups of 2 (the NUM_SEGMENTS quirk): nothing crosses from frame 1 to frame 2.
    x = torch.tensor([[0., 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23], [30, 31, 32, 33]]).view(4, 1, 4)
    expected = torch.tensor([[10., 0, 2, 3], [0, 1, 12, 13], [30, 0, 22, 23], [0, 21, 32, 33]]).view(4, 1, 4)
    assert torch.equal(temporal_shift(x, 2, 4), expected)


P = [[1., 2, 3], [4, 5, 6], [7, 8, 9]]
SPATIAL_EXPECTED = [
    [[4, 5, 6], [7, 8, 9], [0, 0, 0]],  # 0: from the row below, zero bottom border
    [[0, 0, 0], [1, 2, 3], [4, 5, 6]],  # 1: from the row above
    [[2, 3, 0], [5, 6, 0], [8, 9, 0]],  # 2: from the right
    [[0, 1, 2], [0, 4, 5], [0, 7, 8]],  # 3: from the left
    [[1, 2, 3], [4, 1, 2], [7, 4, 5]],  # 4: from up-left; off-grid keeps its own value (official quirk)
    [[5, 6, 3], [8, 9, 6], [7, 8, 9]],  # 5: from down-right
    [[1, 2, 3], [2, 3, 6], [5, 6, 9]],  # 6: from up-right
    [[1, 4, 5], [4, 7, 8], [7, 8, 9]],  # 7: from down-left
]


def test_spatial_shift_eight_neighbours_hand_checked():
    # A 3x3 grid, 16 channels (fold 1): channels 0-7 are the 8 shifted groups, 8-15 stay.
    plane = torch.tensor(P)
    x = plane[:, :, None].expand(3, 3, 16).reshape(9, 1, 16).clone()  # rows (i, j), one time step
    out = spatial_shift(x, 3, 3, 1).view(3, 3, 16)
    for c, expected in enumerate(SPATIAL_EXPECTED):
        assert torch.equal(out[..., c], torch.tensor(expected, dtype=torch.float32)), f"group {c}"
    for c in range(8, 16):
        assert torch.equal(out[..., c], plane)


def test_spatial_shift_batches_time_and_rectangular_grids():
    torch.manual_seed(0)
    x = torch.randn(2 * 2 * 3, 5, 32)  # 2 videos, 2x3 grid, 5 frames, 32 channels (fold 2)
    out = spatial_shift(x, 2, 3, 1).view(2, 2, 3, 5, 32)
    g = x.view(2, 2, 3, 5, 32)
    assert torch.equal(out[:, 0, :, :, 0:2], g[:, 1, :, :, 0:2])  # group 0 of row 0 comes from row 1
    assert torch.equal(out[:, 1, :, :, 0:2], torch.zeros_like(g[:, 1, :, :, 0:2]))
    assert torch.equal(out[:, :, 0:2, :, 4:6], g[:, :, 1:3, :, 4:6])  # group 2 from the right
    assert torch.equal(out[..., 16:], g[..., 16:])


def test_spatial_shift_size_two_first_groups():
    x = torch.arange(16.).view(4, 4)[:, :, None].expand(4, 4, 48).reshape(16, 1, 48)  # fold 1
    out = spatial_shift(x, 4, 4, 2).view(4, 4, 48)
    plane = torch.arange(16.).view(4, 4)
    assert torch.equal(out[:2, :, 0], plane[2:]) and not out[2:, :, 0].any()  # two rows down, zero border
    assert torch.equal(out[2:, 1:, 8], plane[:2, :-1])  # group 8: (dy, dx) = (-2, -1)
    assert torch.equal(out[:2, :, 8], plane[:2])  # off-grid keeps its value


# ----------------------------------------------------------------------------- block and model
def test_block_matches_loop_reference():
    """Temporal attention per grid location with the SPATIAL shift on k/v, then spatial attention per frame
    with the TEMPORAL shift on k/v, then the DW-conv MLP, each with its norm and residual."""
    torch.manual_seed(0)
    cfg = tiny_config()
    block = LvtBlock(cfg).double().eval()
    b, t, h, w, d = 2, 4, 3, 3, 32
    x = torch.randn(b * t, h * w, d, dtype=torch.float64)
    got = block(x, b, t, h, w)

    v = x.view(b, t, h * w, d).clone()
    # temporal attention: for each location, the sequence over t; the spatial shift needs the whole grid
    normed = block.temporal_norm1(v)  # [b, t, hw, d]
    seqs = normed.permute(0, 2, 1, 3).reshape(b * h * w, t, d)  # rows (b, i, j)
    res = naive_attention(block.temporal_attn, seqs, lambda z: spatial_shift(z, h, w, 1))
    v = v + res.view(b, h * w, t, d).permute(0, 2, 1, 3)
    # spatial attention per frame: rows (b, t); the temporal shift groups num_segments frames
    frames = v.reshape(b * t, h * w, d)
    frames = frames + naive_attention(block.attn, block.norm1(frames), lambda z: temporal_shift(z, 2, 8))
    m = block.mlp
    y = m.fc1(block.norm2(frames)).transpose(1, 2).reshape(b * t, -1, h, w)
    y = F.gelu(F.conv2d(y, m.dwconv.dwconv.weight, m.dwconv.dwconv.bias, padding=1, groups=y.shape[1]))
    expected = frames + m.fc2(y.flatten(2).transpose(1, 2))
    assert_close("block", expected, got, 1e-10)


def test_shapes_and_head():
    torch.manual_seed(0)
    cfg = tiny_config()
    model = LvtForVideoClassification(cfg).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    out = model(pixel_values=x, labels=torch.tensor([0, 2]), output_hidden_states=True)
    assert out.logits.shape == (2, 3)
    assert len(out.hidden_states) == cfg.num_hidden_layers + 1
    grid = cfg.grid_size()  # (32 + 8 - 8) // 6 + 1 = 6
    assert grid == 6 and out.hidden_states[-1].shape == (2, 4 * 36, 32)
    base = model.lvt(x)
    assert base.pooler_output.shape == (2, 4, 32)
    expected = model.consensus.mlp_head(base.pooler_output.mean(1))  # frames -> mean over T -> VVTHead
    assert_close("head", expected, out.logits, 1e-5)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="4 frames"):
        model(pixel_values=torch.randn(1, 3, 3, 32, 32))


def test_official_grid_is_17x17_at_224():
    assert LvtConfig().grid_size() == 17
    model = LvtModel(tiny_config(image_size=224, patch_size=16, patch_stride=14, patch_padding=8, num_hidden_layers=1))
    tokens, h, w = model.patch_embed(torch.randn(1, 3, 224, 224))
    assert (h, w) == (17, 17) and tokens.shape == (1, 289, 32)


def test_soft_labels_equal_label_smoothing():
    from vsuite.models.lvt.modeling_lvt import classification_loss

    torch.manual_seed(0)
    logits, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    soft = F.one_hot(y, 4).float() * 0.9 + 0.1 / 4
    assert_close("ls", F.cross_entropy(logits, y, label_smoothing=0.1), classification_loss(logits, soft), 1e-6)
    assert_close("ce", F.cross_entropy(logits, y), classification_loss(logits, y), 1e-7)


def test_config_checks():
    with pytest.raises(ValueError, match="num_segments"):
        LvtConfig(num_frames=16, num_segments=6)
    with pytest.raises(ValueError, match="divisible"):
        LvtConfig(hidden_size=100, num_attention_heads=8)
    with pytest.raises(ValueError, match="spatial_shift_size"):
        LvtConfig(spatial_shift_size=0)
    with pytest.raises(ValueError, match="too small for a spatial shift of size 4"):
        LvtConfig(hidden_size=128, num_attention_heads=8, spatial_shift_size=4)  # fold 128 // 160 = 0


def test_auto_class_round_trip(tmp_path):
    from transformers import AutoConfig, AutoModelForVideoClassification

    torch.manual_seed(0)
    labels = {0: "left", 1: "right", 2: "still"}
    model = LvtForVideoClassification(tiny_config(id2label=labels, label2id={v: k for k, v in labels.items()})).eval()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), LvtConfig)
    loaded = AutoModelForVideoClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LvtForVideoClassification)
    assert loaded.config.id2label == labels and loaded.config.label2id["still"] == 2
    assert loaded.config.num_segments == 2 and not loaded.config.share_gate
    x = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(pixel_values=x).logits, loaded(pixel_values=x).logits)


def test_base_config_has_about_51m_parameters():
    with torch.device("meta"):
        model = LvtForVideoClassification(LvtConfig(num_labels=400))
    backbone = sum(p.numel() for p in model.lvt.parameters())
    total = sum(p.numel() for p in model.parameters())
    assert 50.5e6 < backbone < 52.5e6, backbone  # 51.69M: ~4.27M per block x 12 + 0.39M patch embedding
    assert total - backbone == 512 * 2 + 512 * 768 + 768 + 768 * 400 + 400  # VVTHead
    gates = sum(p.numel() for n, p in model.named_parameters() if "gate" in n)
    assert gates == 12 * 2 * 2 * (192 * 64 + 64)  # separate q/k gates in both attentions of every block
