"""AVSBench mIoU / F-measure (vsuite.metrics.avs): hand-made masks with hand-computed numbers, a naive
threshold-by-threshold reference, and the batch-size dependence of the official numbers."""

from __future__ import annotations

import math

import pytest
import torch

from vsuite.metrics.avs import AVSMeter, f_curves, f_measure, frame_ious, mask_iou, thresholds

BIG = 20.0  # logit: sigmoid(20) > 0.5, sigmoid(-20) < 0.5


def logits_of(probs):
    p = torch.as_tensor(probs, dtype=torch.float64)
    return torch.log(p / (1 - p)).float()


def masks_from(*grids):
    """[N, H, W] float from nested 0/1 lists."""
    return torch.tensor(grids, dtype=torch.float32)


def square(h, w, cells):
    m = torch.zeros(h, w)
    for r, c in cells:
        m[r, c] = 1
    return m


# ----------------------------------------------------------------------------- mIoU
def test_frame_ious_hand_values():
    gt = torch.stack([
        square(4, 4, [(0, 0), (0, 1), (1, 0), (1, 1)]),  # A: 2x2 object
        torch.zeros(4, 4),                                # B: empty GT, 3 false positives
        torch.zeros(4, 4),                                # C: empty GT, empty prediction
        square(4, 4, [(2, 2), (2, 3), (3, 2), (3, 3)]),  # D: perfect prediction
        square(4, 4, [(3, 3)]),                           # E: 1-pixel object, empty prediction
    ])
    pred = torch.stack([
        square(4, 4, [(0, 0), (0, 1), (2, 0), (2, 1)]),  # A: 2 hits + 2 misses: 2 / 6
        square(4, 4, [(0, 0), (1, 1), (2, 2)]),
        torch.zeros(4, 4),
        gt[3].clone(),
        torch.zeros(4, 4),
    ])
    logits = pred * 2 * BIG - BIG  # +20 where predicted, -20 elsewhere
    ious = frame_ious(logits, gt)
    expected = [2 / (6 + 1e-7), 13 / (16 + 1e-7), 16 / (16 + 1e-7), 4 / (4 + 1e-7), 0.0]
    assert ious.tolist() == pytest.approx(expected, rel=1e-12)
    assert mask_iou(logits, gt) == pytest.approx(sum(expected) / 5, rel=1e-12)
    # probabilities instead of logits: the same masks
    assert frame_ious(pred * 0.8 + 0.1, gt, from_logits=False).tolist() == pytest.approx(expected, rel=1e-12)


def test_sigmoid_threshold_is_strict():
    gt = torch.ones(1, 2, 2)
    assert mask_iou(torch.zeros(1, 2, 2), gt) == 0.0  # sigmoid(0) = 0.5 is not > 0.5
    assert mask_iou(torch.full((1, 2, 2), 0.01), gt) == pytest.approx(1.0)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        mask_iou(torch.zeros(2, 4, 4), torch.zeros(2, 4, 5))


# ----------------------------------------------------------------------------- F-measure
def naive_f_curve(prob, gt):
    """One frame, one threshold at a time, in float64 (the official loop's maths)."""
    out = []
    for th in thresholds().tolist():
        pred = [1.0 if p >= th else 0.0 for p in prob]
        tp = sum(a * b for a, b in zip(pred, gt))
        prec, rec = tp / (sum(pred) + 1e-20), tp / (sum(gt) + 1e-20)
        den = 0.3 * prec + rec
        out.append(0.0 if den == 0 else 1.3 * prec * rec / den)
    return out


def test_thresholds_are_the_official_float32_ones():
    th = thresholds()
    assert th.dtype == torch.float32 and th.shape == (255,)
    assert th[0] == 0.0 and th[-1] == 1.0  # 1 - 1e-10 rounds to 1 in float32
    assert th[127].item() == pytest.approx(127 / 254, abs=1e-7)


def test_f_curves_match_naive_loop():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 5, generator=gen) * 3
    gt = (torch.rand(3, 6, 5, generator=gen) > 0.6).float()
    gt[1] = 0  # an empty GT frame
    logits[2, 0, 0], gt[2, 0, 0] = 40.0, 1.0  # sigmoid saturates to exactly 1.0 = the last threshold
    curves, valid = f_curves(logits, gt)
    assert valid.tolist() == [True, False, True]
    probs = torch.sigmoid(logits).reshape(3, -1)
    for i in (0, 2):
        assert curves[i].tolist() == pytest.approx(naive_f_curve(probs[i].tolist(), gt[i].reshape(-1).tolist()),
                                                   abs=1e-12)
    assert curves[1].abs().sum() == 0
    assert curves[2, -1] > 0  # the saturated pixel is predicted at th = 1.0


# Two 4x4 frames whose best thresholds differ (hand-computed curves):
#   frame 1: GT = {a}; p(a) = 0.9, p(b) = 0.6, others 0.1
#     th <= 0.1: P = 1/16, R = 1 -> F = 1.3/16 / (0.3/16 + 1) = 0.0797546...
#     0.1 < th <= 0.6: P = 1/2 -> F = 0.65 / 1.15 = 0.5652173...;  0.6 < th <= 0.9: F = 1;  th > 0.9: 0
#   frame 2: GT = {a, b}; p(a) = 0.9, p(b) = 0.3, others 0.1
#     th <= 0.1: P = 2/16 -> F = 0.1625 / 1.0375;  0.1 < th <= 0.3: F = 1;  0.3 < th <= 0.9: P = 1, R = 1/2 ->
#     F = 0.65 / 0.8 = 0.8125;  th > 0.9: 0
# Alone each frame reaches F = 1; together the mean curve peaks at (1 + 0.8125) / 2 = 0.90625 on (0.6, 0.9].
def two_frames():
    p1, p2 = torch.full((4, 4), 0.1), torch.full((4, 4), 0.1)
    p1[0, 0], p1[0, 1] = 0.9, 0.6
    p2[0, 0], p2[0, 1] = 0.9, 0.3
    g1, g2 = square(4, 4, [(0, 0)]), square(4, 4, [(0, 0), (0, 1)])
    return logits_of(torch.stack([p1, p2])), torch.stack([g1, g2])


def test_f_measure_hand_values():
    logits, gt = two_frames()
    curves, _ = f_curves(logits, gt)
    th = thresholds()
    at = lambda x: int((th <= x).sum()) - 1  # index of the last threshold <= x  # noqa: E731
    assert curves[0, at(0.05)].item() == pytest.approx(1.3 / 16 / (0.3 / 16 + 1))
    assert curves[0, at(0.5)].item() == pytest.approx(0.65 / 1.15)
    assert curves[0, at(0.8)].item() == pytest.approx(1.0)
    assert curves[0, at(0.95)].item() == 0.0  # nothing predicted: 0/0 -> NaN -> 0
    assert curves[1, at(0.2)].item() == pytest.approx(1.0)
    assert curves[1, at(0.5)].item() == pytest.approx(0.8125)
    assert f_measure(logits[:1], gt[:1]) == pytest.approx(1.0)
    assert f_measure(logits[1:], gt[1:]) == pytest.approx(1.0)
    assert f_measure(logits, gt) == pytest.approx(0.90625)


def test_all_empty_batch_scores_zero_f():
    assert f_measure(torch.full((2, 3, 3), -BIG), torch.zeros(2, 3, 3)) == 0.0


# ----------------------------------------------------------------------------- the meter
def test_meter_f_depends_on_official_batch_size():
    logits, gt = two_frames()
    results = {}
    for frames in (1, 2):
        meter = AVSMeter(official_batch_frames=frames)
        meter.update(logits, gt)
        results[frames] = meter.result()
    assert results[1]["f_official"] == pytest.approx(1.0)  # each frame its own batch, its own threshold
    assert results[2]["f_official"] == pytest.approx(0.90625)  # one shared threshold
    assert results[1]["f_per_frame"] == results[2]["f_per_frame"] == pytest.approx(0.90625)
    assert results[1]["n_frames"] == 2 and results[1]["n_official_batches"] == 2


def test_meter_empty_gt_batch_counts_zero_in_f():
    logits, gt = two_frames()
    meter = AVSMeter(official_batch_frames=1)
    meter.update(logits[:1], gt[:1])
    meter.update(torch.full((1, 4, 4), -BIG), torch.zeros(1, 4, 4))  # a batch with no object at all
    out = meter.result()
    assert out["f_official"] == pytest.approx(0.5)  # (1.0 + 0) / 2, as the official AverageMeter
    assert out["f_per_frame"] == pytest.approx(1.0)  # empty-GT frames are skipped
    assert out["n_frames_with_object"] == 1


def test_meter_miou_short_last_batch():
    # frame IoUs 1, 0, 1/3 (up to eps); official batches of 2 frames: [1, 0] -> 0.5 and [1/3] -> 1/3
    gt = torch.stack([square(1, 3, [(0, 0)]), square(1, 3, [(0, 0)]), square(1, 3, [(0, 0)])])
    pred = torch.stack([square(1, 3, [(0, 0)]), square(1, 3, [(0, 1)]), square(1, 3, [(0, 0), (0, 1), (0, 2)])])
    logits = pred * 2 * BIG - BIG
    meter = AVSMeter(official_batch_frames=2)
    meter.update(logits, gt)
    out = meter.result()
    assert out["miou"] == pytest.approx((0.5 + 1 / 3) / 2, rel=1e-6)  # 0.41667
    assert out["miou_per_frame"] == pytest.approx(4 / 9, rel=1e-6)  # 0.44444
    full = AVSMeter(official_batch_frames=3)
    full.update(logits, gt)
    assert full.result()["miou"] == pytest.approx(full.result()["miou_per_frame"])


def test_meter_regroups_whatever_the_update_size():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(7, 8, 8, generator=gen) * 2
    gt = (torch.rand(7, 8, 8, generator=gen) > 0.5).float()
    gt[3] = 0
    whole, pieces = AVSMeter(official_batch_frames=3), AVSMeter(official_batch_frames=3)
    whole.update(logits, gt)
    for s in (slice(0, 2), slice(2, 3), slice(3, 7)):
        pieces.update(logits[s, None], gt[s, None])  # [N, 1, H, W] accepted too
    assert whole.result() == pytest.approx(pieces.result())
    # and equals the official batch-by-batch computation
    batches = [(logits[s:s + 3], gt[s:s + 3]) for s in range(0, 7, 3)]
    assert whole.result()["miou"] == pytest.approx(sum(mask_iou(x, y) for x, y in batches) / 3)
    assert whole.result()["f_official"] == pytest.approx(sum(f_measure(x, y) for x, y in batches) / 3)
    assert not math.isnan(whole.result()["f_per_frame"])


def test_meter_empty_and_bad_size():
    assert AVSMeter().result()["miou"] == 0.0
    with pytest.raises(ValueError):
        AVSMeter(official_batch_frames=0)
