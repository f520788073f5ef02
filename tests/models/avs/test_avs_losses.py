"""AVS losses against hand computations: the 31x31 boundary weight, L_struct with the official BCE quirk,
L_AVM (masked audio-visual KL), and the latent loss."""

import math

import pytest
import torch

from vsuite.models.avs.losses import avm_loss, boundary_weight, latent_loss, structure_loss

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread (tests/conftest.py)


def naive_weight(mask2d):
    """1 + 5 |mean of the 31x31 window (zeros outside, always divided by 961) - m|, pixel by pixel."""
    h, w = mask2d.shape
    out = torch.empty(h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            window = mask2d[max(i - 15, 0): i + 16, max(j - 15, 0): j + 16].sum()
            out[i, j] = 1 + 5 * abs(float(window) / 961 - float(mask2d[i, j]))
    return out


def test_boundary_weight_matches_31x31_window_loop():
    torch.manual_seed(0)
    mask = (torch.rand(1, 1, 40, 36, dtype=torch.float64) > 0.6).double()
    torch.testing.assert_close(boundary_weight(mask)[0, 0], naive_weight(mask[0, 0]))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def hand_struct(logits, mask, weighted_bce):
    """Official structure_loss on [N, 1, H, W], written with Python loops."""
    n, _, h, w = logits.shape
    weights = [naive_weight(mask[k, 0]) for k in range(n)]
    bce = {}
    for k in range(n):
        for i in range(h):
            for j in range(w):
                x, y = float(logits[k, 0, i, j]), float(mask[k, 0, i, j]) * 0.999 + 0.0005
                bce[k, i, j] = -(y * math.log(sigmoid(x)) + (1 - y) * math.log(1 - sigmoid(x)))
    mean_bce = sum(bce.values()) / len(bce)
    total = 0.0
    for k in range(n):
        wt = weights[k]
        if weighted_bce:
            wbce = sum(float(wt[i, j]) * bce[k, i, j] for i in range(h) for j in range(w)) / float(wt.sum())
        else:
            wbce = mean_bce  # the official quirk: a scalar BCE times a weight map, divided by its sum
        inter = sum(float(wt[i, j]) * sigmoid(float(logits[k, 0, i, j])) * float(mask[k, 0, i, j])
                    for i in range(h) for j in range(w))
        union = sum(float(wt[i, j]) * (sigmoid(float(logits[k, 0, i, j])) + float(mask[k, 0, i, j]))
                    for i in range(h) for j in range(w))
        total += wbce + 1 - (inter + 1) / (union - inter + 1)
    return total / n


@pytest.mark.parametrize("weighted_bce", [False, True])
def test_structure_loss_matches_hand_computation(weighted_bce):
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 5, 6, dtype=torch.float64) * 2
    mask = torch.zeros(2, 1, 5, 6, dtype=torch.float64)
    mask[0, 0, 1:3, 2:5] = 1
    mask[1, 0, 4, :] = 1
    got = structure_loss(logits, mask, weighted_bce=weighted_bce)
    assert got.item() == pytest.approx(hand_struct(logits, mask, weighted_bce), rel=1e-6)


def test_official_bce_ignores_the_boundary_weight():
    torch.manual_seed(0)
    logits = torch.randn(1, 1, 40, 40, dtype=torch.float64)
    mask = torch.zeros(1, 1, 40, 40, dtype=torch.float64)
    mask[..., 10:25, 5:30] = 1
    official = structure_loss(logits, mask)
    weighted = structure_loss(logits, mask, weighted_bce=True)
    assert official.item() != pytest.approx(weighted.item(), rel=1e-4)
    # official = plain mean BCE (smoothed target) + weighted IoU
    p = torch.sigmoid(logits)
    w = boundary_weight(mask)
    wiou = 1 - ((p * mask * w).sum() + 1) / (((p + mask) * w).sum() - (p * mask * w).sum() + 1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, mask * 0.999 + 0.0005)
    assert official.item() == pytest.approx((bce + wiou).item(), rel=1e-10)


def test_avm_loss_matches_hand_kl():
    torch.manual_seed(0)
    b, t, c = 1, 2, 3
    logits = torch.randn(b * t, 1, 4, 4, dtype=torch.float64)
    visual = [torch.randn(b * t, c, 2, 2, dtype=torch.float64), torch.randn(b * t, c, 1, 1, dtype=torch.float64)]
    audio = [torch.randn(b, t, c, dtype=torch.float64), torch.randn(b, t, c, dtype=torch.float64)]
    total = 0.0
    for a_map, v_map in zip(audio, visual):
        h = v_map.shape[-1]
        stage = 0.0
        for n in range(b * t):
            s = 4 // h  # adaptive pooling 4 -> h is a mean over s x s blocks
            m = [[sigmoid(float(logits[n, 0, i * s:(i + 1) * s, j * s:(j + 1) * s].mean())) for j in range(h)]
                 for i in range(h)]
            v = [sum(float(v_map[n, ch, i, j]) * m[i][j] for i in range(h) for j in range(h)) / (h * h)
                 for ch in range(c)]
            a = [float(x) for x in a_map.reshape(b * t, c)[n]]
            vn = [x / max(math.sqrt(sum(y * y for y in v)), 1e-12) for x in v]
            an = [x / max(math.sqrt(sum(y * y for y in a)), 1e-12) for x in a]
            pv = [math.exp(x) / sum(math.exp(y) for y in vn) for x in vn]
            pa = [math.exp(x) / sum(math.exp(y) for y in an) for x in an]
            stage += sum(pa[k] * (math.log(pa[k]) - math.log(pv[k])) for k in range(c))  # reduction "sum"
        total += stage
    assert avm_loss(logits, audio, visual).item() == pytest.approx(total / 2, rel=1e-9)


def test_latent_loss_matches_hand_distance():
    a = torch.tensor([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    g = torch.tensor([[0.0, 0.0, 2.0], [2.0, 0.0, 0.0]], dtype=torch.float64)
    # row 0: (0.6, 0.8, -1) + 1e-6 -> norm; row 1: identical directions -> only the eps remains
    r0 = math.sqrt((0.6 + 1e-6) ** 2 + (0.8 + 1e-6) ** 2 + (-1 + 1e-6) ** 2)
    r1 = math.sqrt(3 * 1e-12)
    assert latent_loss(a, g).item() == pytest.approx((r0 + r1) / 2, rel=1e-9)
