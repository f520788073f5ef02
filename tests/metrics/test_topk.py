"""vsuite.metrics.topk against hand-computed values: view averaging, ties by class id, k beyond the classes."""

import pytest
import torch

from vsuite.metrics.topk import average_views, label_ranks, top_classes, topk_accuracy, topk_hits


def test_average_views_is_the_mean_of_the_view_softmaxes():
    views = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.1, 0.5, 0.4]])
    assert average_views(views).tolist() == pytest.approx([0.3, 0.3, 0.4])
    with pytest.raises(ValueError):
        average_views(torch.ones(3))


def test_topk_by_hand_seven_classes():
    # rank of the label: video 0 -> 0, video 1 -> 2, video 2 -> 5, video 3 -> 6
    probs = torch.tensor([
        [0.40, 0.10, 0.10, 0.10, 0.10, 0.10, 0.10],  # label 0: most probable
        [0.30, 0.25, 0.20, 0.10, 0.08, 0.05, 0.02],  # label 2: third
        [0.30, 0.25, 0.20, 0.10, 0.08, 0.05, 0.02],  # label 5: sixth
        [0.30, 0.25, 0.20, 0.10, 0.08, 0.05, 0.02],  # label 6: last
    ])
    labels = [0, 2, 5, 6]
    assert label_ranks(probs, labels).tolist() == [0, 2, 5, 6]
    assert topk_hits(probs, labels, ks=(1, 3, 5, 6, 7)) == {1: 1, 3: 2, 5: 2, 6: 3, 7: 4}
    assert topk_accuracy(probs, labels) == {"top1": 0.25, "top5": 0.5}


def test_ties_rank_the_lower_class_id_first():
    probs = torch.tensor([[0.2, 0.4, 0.4, 0.0],   # classes 1 and 2 tie for first: 1 ranks 0, 2 ranks 1
                          [0.25, 0.25, 0.25, 0.25]])  # all tie: rank = class id
    assert top_classes(probs[0], 2) == [1, 2]
    assert label_ranks(probs, [2, 3]).tolist() == [1, 3]
    assert topk_accuracy(probs, [2, 3], ks=(1, 2, 4)) == {"top1": 0.0, "top2": 0.5, "top4": 1.0}
    assert topk_accuracy(probs, [1, 0], ks=(1,)) == {"top1": 1.0}


def test_k_beyond_the_classes_counts_every_video():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    assert topk_accuracy(probs, [1, 1, 0], ks=(1, 5)) == {"top1": 0.0, "top5": 1.0}
    assert top_classes(probs[2], 5) == [1, 0]


def test_shape_errors():
    with pytest.raises(ValueError):
        topk_accuracy(torch.ones(2, 3), [0, 1, 2])
    with pytest.raises(ValueError):
        topk_accuracy(torch.ones(0, 3), [])
