"""Pixel, amplitude, object and PR metrics on hand-made arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from slewdark.core.metrics import (
    Confusion,
    MethodScore,
    amplitude_counts,
    confusion,
    flagged_counts,
    object_hits,
    pr_curve,
    pr_thresholds,
    precision_at_recall,
    probability_histograms,
    recall_at_fpr,
    score_bins,
    threshold_bins,
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


def test_object_hits_use_8_connectivity_hit_fraction_and_peak() -> None:
    positive = np.zeros((10, 10), dtype=bool)
    positive[1, 1] = positive[2, 2] = positive[3, 3] = positive[4, 4] = True  # one diagonal object of 4
    positive[7:9, 7:9] = True  # a 2x2 object
    amplitude = np.where(positive, 4.0, 0.0)
    amplitude[3, 3] = 30.0
    amplitude[8, 8] = 12.0
    pred = np.zeros_like(positive)
    pred[1, 1] = True  # 1 of 4 pixels of the diagonal
    pred[7, 7] = pred[7, 8] = True  # 2 of 4 of the square
    found, peak = object_hits(pred, amplitude, positive, 0.25)
    assert found.tolist() == [True, True]
    assert peak.tolist() == [30.0, 12.0]  # objects in raster order: the diagonal starts first
    assert object_hits(pred, amplitude, positive, 0.5)[0].tolist() == [False, True]
    none_found, no_peak = object_hits(pred, amplitude, np.zeros_like(positive), 0.5)
    assert none_found.size == 0 and no_peak.size == 0


def test_score_bins_of_a_probability_and_of_a_binary_mask() -> None:
    thresholds = np.array([0.0, 0.25, 0.5, 1.0])
    prob = np.array([0.0, 0.2, 0.25, 0.7, 1.0, -0.1])
    assert threshold_bins(prob, thresholds).tolist() == [0, 0, 1, 2, 3, -1]
    assert score_bins(prob > 0.5, prob, thresholds).tolist() == [0, 0, 1, 2, 3, -1]
    mask = np.array([[True, False], [False, True]])
    assert score_bins(mask, None, thresholds).tolist() == [
        [3, 0],
        [0, 3],
    ]  # 1 in the last bin, 0 in the first
    assert score_bins(mask, None, thresholds[1:]).tolist() == [[2, -1], [-1, 2]]  # 0 below the first


def test_recall_at_fpr_takes_the_best_point_within_the_rate() -> None:
    found = np.array([10, 8, 5, 1])  # positives flagged at four thresholds (of 10)
    false_alarms = np.array([100, 6, 5, 0])  # negatives flagged (of 1000)
    assert recall_at_fpr(found, false_alarms, 10, 1000, 0.005) == 0.5  # 5/1000 is within 0.5 %
    assert recall_at_fpr(found, false_alarms, 10, 1000, 0.006) == 0.8
    assert recall_at_fpr(found, false_alarms, 10, 1000, 0.0) == 0.1
    assert recall_at_fpr(found[:3], false_alarms[:3], 10, 1000, 0.001) is None  # never that low
    assert recall_at_fpr(found, false_alarms, 10, 0, 0.005) is None  # no negative to measure on


def test_precision_at_recall_takes_the_best_point_reaching_the_recall() -> None:
    precision = np.array([0.1, 0.6, 0.5, 0.9])
    recall = np.array([1.0, 0.96, 0.95, 0.5])
    assert precision_at_recall(precision, recall, 0.95) == 0.6
    assert precision_at_recall(precision, recall, 0.99) == 0.1
    assert precision_at_recall(precision[1:], recall[1:], 0.99) is None


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


def score_one(
    mask: np.ndarray, prob: np.ndarray | None, positive: np.ndarray, clean: np.ndarray
) -> dict[str, object]:
    """Summary of one 1-row detector where every pixel is a positive or a clean one, 5 e- positives."""
    score = MethodScore(np.array([3.0, 1e9]), pr_thresholds(5), 0.5)
    nothing = np.zeros_like(positive)
    score.add(mask, prob, np.where(positive, 5.0, 0.0), positive, nothing, nothing, positive | clean, clean)
    return score.summary()


def test_probability_gives_recall_at_clean_fpr_and_precision_at_95_recall() -> None:
    clean_prob = np.zeros(10_000)
    clean_prob[:1] = 0.9  # the top 0.01 % of the clean pixels
    clean_prob[1:50] = 0.6  # with the 0.9: 0.5 %
    clean_prob[50] = 0.4  # one more: 0.51 %
    positive_prob = np.repeat([0.95, 0.7, 0.5, 0.1], [20, 30, 30, 20])
    prob = np.concatenate([positive_prob, clean_prob]).astype(np.float32)[None, :]
    positive = np.zeros(prob.shape, dtype=bool)
    positive[0, :100] = True
    summary = score_one(prob >= 0.5, prob, positive, ~positive)
    assert summary["probability_detectors"] == 1
    # 0.5 %: a threshold in (0.4, 0.5] flags 50 clean pixels and the positives of 0.5 and more
    assert summary["tpr_at_clean_fpr_0.005"] == pytest.approx(0.8)
    # 0.01 %: a threshold in (0.6, 0.7] flags the one clean 0.9 and the positives of 0.7 and more
    assert summary["tpr_at_clean_fpr_0.0001"] == pytest.approx(0.5)
    # 95 % recall needs the positives of 0.1: best at a threshold in (0, 0.1], 51 clean pixels flagged
    assert summary["precision_at_recall_0.95"] == pytest.approx(100 / 151)


@pytest.mark.parametrize(
    ("clean_flagged", "found", "expected"),
    [
        (30, 96, {"tpr_at_clean_fpr_0.005": 0.96, "tpr_at_clean_fpr_0.0001": None}),  # FPR 0.3 %
        (1, 90, {"tpr_at_clean_fpr_0.005": 0.9, "tpr_at_clean_fpr_0.0001": 0.9}),  # FPR 0.01 %
        (60, 100, {"tpr_at_clean_fpr_0.005": None, "tpr_at_clean_fpr_0.0001": None}),  # FPR 0.6 %
    ],
)
def test_binary_mask_is_its_single_operating_point(
    clean_flagged: int, found: int, expected: dict[str, float | None]
) -> None:
    positive = np.zeros((1, 10_100), dtype=bool)
    positive[0, :100] = True
    mask = np.zeros_like(positive)
    mask[0, :found] = True
    mask[0, 100 : 100 + clean_flagged] = True
    summary = score_one(mask, None, positive, ~positive)
    assert summary["probability_detectors"] == 0
    assert {key: summary[key] for key in expected} == pytest.approx(expected)
    precision = found / (found + clean_flagged)
    assert summary["precision_at_recall_0.95"] == (pytest.approx(precision) if found >= 95 else None)


def test_object_recall_by_peak_amplitude_and_previous_exposure() -> None:
    edges = np.array([3.0, 10.0, 1e9])
    score = MethodScore(edges, pr_thresholds(5), 0.5)
    nothing = np.zeros((1, 9), dtype=bool)
    grism = np.array([[4.0, 5.0, 0.0, 4.0, 20.0, 8.0, 0.0, 0.0, 0.0]])  # objects peaking at 5 and 20 e-
    grism_mask = np.array([[1, 0, 0, 0, 1, 0, 0, 0, 0]], dtype=bool)  # 1/2 of the first, 1/3 of the second
    photometric = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 12.0, 6.0]])  # one object peaking at 12 e-
    photometric_mask = np.array([[0, 0, 0, 0, 0, 0, 0, 1, 0]], dtype=bool)
    for amplitude, mask, previous in (
        (grism, grism_mask, "grism"),
        (photometric, photometric_mask, "photometric"),
    ):
        valid = np.ones_like(mask)
        score.add(mask, None, amplitude, amplitude > 3.0, nothing, nothing, valid, previous=previous)
    summary = score.summary()
    assert (summary["objects_found"], summary["objects"]) == (2, 3)
    assert summary["object_recall_by_amplitude"] == {"3-10e": 1.0, ">=10e": 0.5}
    assert summary["objects_by_amplitude"] == {"3-10e": 1, ">=10e": 2}
    assert summary["object_recall_by_previous"] == {"grism": 0.5, "photometric": 1.0, "unknown": 0.0}
    assert summary["objects_by_previous"] == {"grism": 2, "photometric": 1, "unknown": 0}
    with pytest.raises(ValueError, match="previous exposure kind 'imaging'"):
        score.add(grism_mask, None, grism, grism > 3.0, nothing, nothing, nothing, previous="imaging")
