"""AVS parts against explicit references: the motion block (loop over pixels), AVCorr, TPAVI, the decoder's
upsampling and output size, and VGGish (torchvggish's transpose-based flatten, final ReLU)."""

import math

import pytest
import torch
import torch.nn.functional as F

from vsuite.models.avs.decoder import SimpleDecoder, upsample_nearest2
from vsuite.models.avs.fusion import AVCorr, TPAVIModule, motion_scores, pair_indices, visual_corr_attention
from vsuite.models.avs.vggish import VGGish

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def naive_motion(feature, num_frames, weight, bias):
    """Official visual_corr_attention, pixel by pixel: frame t pairs with t+1, the last with t-1."""
    bt, c, h, w = feature.shape
    out = torch.empty_like(feature)
    for n in range(bt):
        b, t = divmod(n, num_frames)
        partner = b * num_frames + (t + 1 if t < num_frames - 1 else t - 1)
        for i in range(h):
            for j in range(w):
                total = 0.0
                for k in range(h):
                    for m in range(w):
                        total += max(float(feature[n, :, i, j] @ feature[partner, :, k, m]), 0.0)
                score = total / (h * w)
                a = 1 / (1 + math.exp(-(weight * score + bias)))
                out[n, :, i, j] = feature[n, :, i, j] * (1 + a)
    return out


def test_pair_indices_last_frame_looks_back():
    assert pair_indices(5) == [1, 2, 3, 4, 3]
    assert pair_indices(2) == [1, 0]


def test_motion_block_matches_a_loop_over_pixels():
    torch.manual_seed(0)
    t = 5
    feature = torch.randn(2 * t, 3, 3, 4, dtype=torch.float64)  # B=2, C=3, H=3, W=4
    conv = torch.nn.Conv2d(1, 1, 1).double()
    with torch.no_grad():
        conv.weight.fill_(0.7)
        conv.bias.fill_(-0.2)
    got = visual_corr_attention([feature], torch.nn.ModuleList([conv]), t)[0]
    want = naive_motion(feature, t, 0.7, -0.2)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # the ReLU matters: without clamping the mean would differ
    scores = motion_scores(feature, t)
    raw = torch.einsum("nci,nck->nik", feature[:1].flatten(2), feature[1:2].flatten(2)).mean(-1)
    assert not torch.allclose(scores[0].flatten(), raw[0])


def l2n(x, dim):
    return x / torch.sqrt((x * x).sum(dim, keepdim=True) + 1e-6)


def test_avcorr_matches_explicit_formula():
    torch.manual_seed(0)
    module = AVCorr(8).double()
    v = torch.randn(10, 8, 5, 6, dtype=torch.float64)
    a = torch.randn(10, 8, dtype=torch.float64)
    out, audio = module(v, a, 5)
    vn, an = l2n(v, 1), l2n(a, 1)
    corr = torch.empty_like(v)
    for c in range(8):
        corr[:, c] = vn[:, c] * an[:, c, None, None]  # channel-wise product, no sum
    w1 = module.conv1.conv.weight[:, :, 0, 0]  # [2, 8]
    x = torch.einsum("oc,nchw->nohw", w1, corr)
    x = F.conv2d(x, module.conv2.conv.weight, padding=3)  # 7x7, no bias
    x = torch.einsum("oc,nchw->nohw", module.conv3.conv.weight[:, :, 0, 0], x)
    want = vn + vn * torch.sigmoid(x)
    torch.testing.assert_close(out, want, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(audio, an.reshape(2, 5, 8))
    assert module.conv1.conv.bias is None and module.conv1.norm is None


def test_tpavi_matches_explicit_non_local_formula():
    torch.manual_seed(0)
    module = TPAVIModule(8).double().eval()
    bn = module.W_z[1]
    with torch.no_grad():  # a non-zero output BatchNorm so the attention path counts
        bn.weight.normal_()
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    b, t, c, h, w = 2, 3, 8, 2, 3
    v = torch.randn(b * t, c, h, w, dtype=torch.float64)
    a = torch.randn(b * t, c, dtype=torch.float64)
    out, audio = module(v, a, t)
    vn = l2n(v, 1).reshape(b, t, c, h * w)
    an = l2n(a, 1).reshape(b, t, c)

    def conv1(m, x):  # x [C] -> [C']
        return m.weight[:, :, 0, 0, 0] @ x + m.bias

    want = torch.empty(b, t, c, h * w, dtype=torch.float64)
    n = t * h * w
    for bi in range(b):
        positions = [(ti, p) for ti in range(t) for p in range(h * w)]
        g = [conv1(module.g, vn[bi, ti, :, p]) for ti, p in positions]
        phi = [conv1(module.phi, an[bi, ti]) for ti, p in positions]
        for ti, p in positions:
            theta = conv1(module.theta, vn[bi, ti, :, p])
            y = sum((theta @ phi[j]) / n * g[j] for j in range(n))
            z = conv1(module.W_z[0], y)
            z = (z - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
            want[bi, ti, :, p] = F.layer_norm(z + vn[bi, ti, :, p], (c,), module.norm_layer.weight,
                                              module.norm_layer.bias)
    torch.testing.assert_close(out, want.reshape(b * t, c, h, w), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(audio, an)


def test_tpavi_starts_as_layer_norm_of_the_normalised_visual():
    module = TPAVIModule(8).eval()
    v = torch.randn(4, 8, 2, 2)
    out, _ = module(v, torch.randn(4, 8), 2)
    want = F.layer_norm(l2n(v, 1).permute(0, 2, 3, 1), (8,)).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, want)


def test_upsample_and_decoder_resolution():
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(upsample_nearest2(x), F.interpolate(x, scale_factor=2, mode="nearest"))
    dec = SimpleDecoder(8).eval()
    feats = [torch.randn(3, 8, 64 // s, 96 // s) for s in (4, 8, 16, 32)]
    assert dec(feats).shape == (3, 1, 64, 96)
    names = set(dec.state_dict())
    assert "short_connect_with_decode_module.3.resConfUnit1.ConvBNReLU2.norm.running_var" in names
    assert {"head_up_2.output_conv.0.bias", "head_up_2.output_conv.2.weight", "head_up_2.output_conv.4.bias"} <= names


def test_vggish_matches_torchvggish_flatten_order():
    torch.manual_seed(0)
    model = VGGish((2, 3, 4, 4, 5, 5), hidden_size=7, embedding_size=6).double()
    x = torch.randn(3, 1, 96, 64, dtype=torch.float64)
    feats = model.features(x)
    assert feats.shape == (3, 5, 6, 4)
    flat = torch.transpose(torch.transpose(feats, 1, 3), 1, 2).contiguous().view(3, -1)  # torchvggish VGG.forward
    want = model.embeddings(flat)
    torch.testing.assert_close(model(x), want)
    assert (want >= 0).all() and isinstance(model.embeddings[5], torch.nn.ReLU)
    with pytest.raises(ValueError, match="96, 64"):
        model(torch.randn(3, 1, 64, 96, dtype=torch.float64))
