"""Pixel, amplitude, object and PR metrics on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from slewdark.metrics import (
    Confusion,
    MethodScore,
    amplitude_counts,
    confusion,
    flagged_counts,
    object_counts,
    pr_curve,
    pr_thresholds,
    probability_histograms,
)


def test_confusion_counts_and_ratios() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 1], dtype=bool)
    pred = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    valid = np.ones(10, dtype=bool)
    valid[-1] = False  # a TP on an unusable pixel does not count
    c = confusion(pred, truth, valid)
    assert (c.tp, c.fp, c.fn, c.tn) == (3, 1, 1, 4)
    assert c.precision == pytest.approx(0.75)
    assert c.recall == pytest.approx(0.75)
    assert c.f1 == pytest.approx(0.75)
    assert c.iou == pytest.approx(3 / 5)


def test_confusion_adds_up_and_empty_is_zero() -> None:
    total = Confusion()
    assert (total.precision, total.recall, total.f1, total.iou) == (0.0, 0.0, 0.0, 0.0)
    total += Confusion(1, 2, 3, 4)
    total += Confusion(1, 0, 1, 10)
    assert (total.tp, total.fp, total.fn, total.tn) == (2, 2, 4, 14)


def test_amplitude_bins_count_found_positives() -> None:
    amplitude = np.array([1.0, 4.0, 4.5, 7.0, 12.0, 60.0, 60.0])
    positive = amplitude > 3.0
    pred = np.array([1, 0, 1, 1, 0, 1, 1], dtype=bool)
    found, total = amplitude_counts(pred, amplitude, positive, np.array([3.0, 5.0, 10.0, 50.0, 1e9]))
    assert total.tolist() == [2, 1, 1, 2]
    assert found.tolist() == [1, 1, 0, 2]


def test_flagged_counts_only_eligible_pixels() -> None:
    layer = np.array([1, 1, 1, 0], dtype=bool)
    eligible = np.array([1, 1, 0, 1], dtype=bool)
    pred = np.array([1, 0, 1, 1], dtype=bool)
    assert flagged_counts(pred, layer, eligible) == (1, 2)


def test_object_recall_uses_8_connectivity_and_hit_fraction() -> None:
    positive = np.zeros((10, 10), dtype=bool)
    positive[1, 1] = positive[2, 2] = positive[3, 3] = positive[4, 4] = True  # one diagonal object of 4
    positive[7:9, 7:9] = True  # a 2x2 object
    pred = np.zeros_like(positive)
    pred[1, 1] = True  # 1 of 4 pixels of the diagonal
    pred[7, 7] = pred[7, 8] = True  # 2 of 4 of the square
    assert object_counts(pred, positive, 0.25) == (2, 2)
    assert object_counts(pred, positive, 0.5) == (1, 2)
    assert object_counts(pred, np.zeros_like(positive), 0.5) == (0, 0)


def test_pr_curve_matches_direct_counts_and_is_monotone() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random((50, 50)) < 0.2
    prob = np.clip(0.5 * truth + 0.6 * rng.random((50, 50)), 0, 1).astype(np.float32)
    valid = rng.random((50, 50)) > 0.1
    thresholds = pr_thresholds(11)
    pos, neg = probability_histograms(prob, truth, valid, thresholds)
    precision, recall, predicted = pr_curve(pos, neg, int((truth & valid).sum()))
    for k, t in enumerate(thresholds):
        direct = confusion(prob >= t, truth, valid)
        assert predicted[k] == direct.tp + direct.fp
        assert recall[k] == pytest.approx(direct.recall)
        assert precision[k] == pytest.approx(direct.precision)
    assert np.all(np.diff(recall) <= 0)
    assert np.all(np.diff(predicted) <= 0)
    assert recall[0] == pytest.approx(1.0)


def test_method_score_streams_detectors_like_one_big_array() -> None:
    rng = np.random.default_rng(7)
    edges = np.array([3.0, 10.0, 1e9])
    amplitude = rng.exponential(6.0, (2, 40, 40))
    positive = amplitude > 3.0
    prob = rng.random((2, 40, 40)).astype(np.float32)
    mask = prob >= 0.5
    cr = rng.random((2, 40, 40)) < 0.05
    hot = rng.random((2, 40, 40)) < 0.05
    valid = np.ones((2, 40, 40), dtype=bool)
    clean = (amplitude < 1.0) & ~cr & ~hot
    streamed = MethodScore(edges, pr_thresholds(5), 0.5)
    for i in range(2):
        streamed.add(mask[i], prob[i], amplitude[i], positive[i], cr[i], hot[i], valid[i], clean[i])
    whole = confusion(mask, positive, valid)
    summary = streamed.summary()
    assert (summary["tp"], summary["fp"], summary["fn"], summary["tn"]) == (
        whole.tp,
        whole.fp,
        whole.fn,
        whole.tn,
    )
    assert summary["f1"] == pytest.approx(whole.f1)
    expected_cr = (mask & cr & ~positive).sum() / (cr & ~positive).sum()
    assert summary["cosmic_ray_flagged_fraction"] == pytest.approx(expected_cr)
    assert summary["clean_flagged_fraction"] == pytest.approx((mask & clean).sum() / clean.sum())
    assert summary["clean_pixels"] == clean.sum()
    found = (mask & positive & (amplitude >= 10.0)).sum()
    assert streamed.recall_above(10.0) == pytest.approx(found / (positive & (amplitude >= 10.0)).sum())
    with pytest.raises(ValueError, match="not an amplitude bin edge"):
        streamed.recall_above(27.0)
    assert set(summary["recall_by_amplitude"]) == {"3-10e", ">=10e"}
    assert summary["detectors"] == 2
    _, recall, _ = streamed.pr()
    assert recall[2] == pytest.approx(whole.recall)  # threshold 0.5 is the mask


def test_binary_method_is_a_single_pr_point() -> None:
    positive = np.array([[1, 1, 0, 0]], dtype=bool)
    mask = np.array([[1, 0, 1, 0]], dtype=bool)
    valid = np.ones_like(mask)
    score = MethodScore(np.array([3.0, 1e9]), pr_thresholds(5), 0.5)
    score.add(mask, None, np.where(positive, 5.0, 0.0), positive, ~valid, ~valid, valid)
    precision, recall, predicted = score.pr()
    assert predicted.tolist() == [4, 2, 2, 2, 2]
    assert recall[1:].tolist() == [0.5] * 4
    assert precision[1:].tolist() == [0.5] * 4
    assert score.summary()["clean_pixels"] == 0  # clean pixels not given: not counted
