"""Segmentation metrics against the simulator's truth, accumulated one detector at a time.

Every function here is pure: it takes a predicted mask (and probability), the
truth layers and the pixels that count (usable ones), and returns counts, never
ratios, so that counts from many detectors add up exactly and no more than one
detector is ever in memory. :class:`MethodScore` gathers all the counts of one
method and turns them into the reported figures.

Conventions: a truth positive is a usable pixel whose persistence exceeds the
truth threshold; a ratio whose denominator is 0 is reported as 0.0 (JSON has no
NaN); a truth object is an 8-connected group of positive pixels. The figures at
a fixed rate (recall at a clean-pixel false-positive rate, precision at a
recall) are None (JSON null) where no operating point of the method meets the
rate: a method with a probability offers one point per threshold of a fine
grid, a binary method only its mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
CLEAN_FPR_TARGETS = (0.005, 0.0001)
"""False-positive rates over clean pixels at which recall is reported (0.5 % and 0.01 %)."""
RECALL_TARGET = 0.95
"""Recall at which precision is reported."""
FINE_THRESHOLDS = 10001
"""Thresholds of the fine probability grid (steps of 1e-4) behind the fixed-rate figures."""
PREVIOUS_KINDS = ("grism", "photometric", "unknown")
"""Kinds of the exposure before the slew dark, over which object recall is split."""


def tpr_key(rate: float) -> str:
    """Summary key of the recall at a clean-pixel false-positive rate, e.g. ``tpr_at_clean_fpr_0.005``."""
    return f"tpr_at_clean_fpr_{rate:g}"


def precision_key(recall: float) -> str:
    """Summary key of the precision at a recall, e.g. ``precision_at_recall_0.95``."""
    return f"precision_at_recall_{recall:g}"


def safe_ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0."""
    return float(numerator) / float(denominator) if denominator else 0.0


@dataclass
class Confusion:
    """Pixel confusion counts.

    Attributes
    ----------
    tp, fp, fn, tn
        True/false positives and negatives.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __iadd__(self, other: Confusion) -> Confusion:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        return self

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return safe_ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return safe_ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN)."""
        return safe_ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        """TP / (TP + FP + FN) (Jaccard index)."""
        return safe_ratio(self.tp, self.tp + self.fp + self.fn)


def confusion(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> Confusion:
    """Confusion counts of a boolean prediction over the valid pixels.

    Parameters
    ----------
    pred, truth, valid
        Boolean arrays of one shape.

    Returns
    -------
    Confusion
    """
    n_valid = int(valid.sum())
    tp = int((pred & truth & valid).sum())
    n_pred = int((pred & valid).sum())
    n_true = int((truth & valid).sum())
    return Confusion(tp=tp, fp=n_pred - tp, fn=n_true - tp, tn=n_valid - n_pred - n_true + tp)


def amplitude_counts(
    pred: np.ndarray, amplitude: np.ndarray, positive: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Found and total truth-positive pixels per persistence-amplitude bin.

    Parameters
    ----------
    pred
        Boolean prediction.
    amplitude
        True persistence (electrons).
    positive
        Truth positives (already restricted to valid pixels).
    edges
        Increasing bin edges (electrons); bin ``i`` is ``[edges[i], edges[i+1])``.
        Positives outside the edges are not counted.

    Returns
    -------
    found, total : ndarray
        int64 counts per bin (``len(edges) - 1``).
    """
    return binned_found(amplitude[positive], pred[positive], edges)


def binned_found(values: np.ndarray, found: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Found and total items per bin of a value (pixel amplitude, object peak).

    Parameters
    ----------
    values
        One value per item.
    found
        Boolean, one per item.
    edges
        Increasing bin edges; items outside them are not counted.

    Returns
    -------
    found, total : ndarray
        int64 counts per bin (``len(edges) - 1``).
    """
    total, _ = np.histogram(values, bins=edges)
    hits, _ = np.histogram(values[found], bins=edges)
    return hits.astype(np.int64), total.astype(np.int64)


def flagged_counts(pred: np.ndarray, layer: np.ndarray, eligible: np.ndarray) -> tuple[int, int]:
    """Flagged and total pixels of a layer (cosmic rays, hot pixels, clean pixels) among eligible ones.

    Parameters
    ----------
    pred
        Boolean prediction.
    layer
        Boolean truth layer.
    eligible
        Pixels that count: usable and not truth persistence, so that flagging
        them is wrong.

    Returns
    -------
    flagged, total : int
    """
    selected = layer & eligible
    return int((pred & selected).sum()), int(selected.sum())


def object_hits(
    pred: np.ndarray, amplitude: np.ndarray, positive: np.ndarray, hit_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each truth object is found, and its peak amplitude.

    Parameters
    ----------
    pred
        Boolean prediction.
    amplitude
        True persistence (electrons).
    positive
        Truth positives; 8-connected groups of them are the objects.
    hit_fraction
        An object is found when at least this share of its pixels is predicted.

    Returns
    -------
    found : ndarray
        bool, one per object.
    peak : ndarray
        float64, the largest true persistence of each object (electrons).
    """
    labels, n_objects = ndimage.label(positive, structure=EIGHT_CONNECTED)
    if n_objects == 0:
        return np.zeros(0, bool), np.zeros(0)
    sizes = np.bincount(labels.ravel(), minlength=n_objects + 1)[1:]
    hits = np.bincount(labels[pred & positive], minlength=n_objects + 1)[1:]
    peak = np.full(n_objects, -np.inf)
    np.maximum.at(peak, labels[positive] - 1, amplitude[positive])
    return hits >= hit_fraction * sizes, peak


def pr_thresholds(n: int) -> np.ndarray:
    """``n`` probability thresholds evenly spaced over [0, 1]."""
    return np.linspace(0.0, 1.0, n)


def threshold_bins(prob: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Threshold bin of each pixel: the index of the highest threshold at or below its probability.

    Parameters
    ----------
    prob
        Probability (float) per pixel.
    thresholds
        Increasing thresholds.

    Returns
    -------
    ndarray
        intp, -1 below the first threshold.
    """
    return np.searchsorted(thresholds, prob, side="right") - 1


def score_bins(mask: np.ndarray, prob: np.ndarray | None, thresholds: np.ndarray) -> np.ndarray:
    """Threshold bin of each pixel's score: its probability, or for a binary method its mask as 0/1.

    The bins of a binary mask are those of 0 and 1 put in place, so the many
    thresholds of a fine grid cost nothing there.
    """
    if prob is not None:
        return threshold_bins(prob, thresholds)
    unflagged, flagged = threshold_bins(np.array([0.0, 1.0]), thresholds)
    return np.where(mask, flagged, unflagged)


def bin_histogram(bins: np.ndarray, selected: np.ndarray, n: int) -> np.ndarray:
    """int64 count of the selected pixels per threshold bin (those below the first threshold left out)."""
    chosen = bins[selected]
    return np.bincount(chosen[chosen >= 0], minlength=n).astype(np.int64)


def probability_histograms(
    prob: np.ndarray, truth: np.ndarray, valid: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of positive and negative valid pixels per threshold bin.

    Bin ``k`` holds the pixels whose probability is at least ``thresholds[k]``
    and below ``thresholds[k+1]`` (the last bin has no upper bound), so
    reverse cumulative sums give the counts at or above each threshold
    (:func:`pr_curve`). Probabilities below ``thresholds[0]`` are never flagged.

    Parameters
    ----------
    prob
        Probability (float) per pixel.
    truth, valid
        Boolean truth positives and pixels that count.
    thresholds
        Increasing thresholds.

    Returns
    -------
    positives, negatives : ndarray
        int64 counts per threshold.
    """
    bins = threshold_bins(prob, thresholds)
    n = len(thresholds)
    return bin_histogram(bins, truth & valid, n), bin_histogram(bins, valid & ~truth, n)


def at_or_above(histogram: np.ndarray) -> np.ndarray:
    """Counts at or above each threshold from counts per threshold bin (reverse cumulative sum)."""
    return np.cumsum(histogram[::-1])[::-1]


def pr_curve(positives: np.ndarray, negatives: np.ndarray, total_positives: int) -> tuple[np.ndarray, ...]:
    """Precision, recall and predicted count at each threshold from the histograms.

    Parameters
    ----------
    positives, negatives
        Histograms of :func:`probability_histograms`, summed over detectors.
    total_positives
        All truth positives (those below the first threshold included).

    Returns
    -------
    precision, recall : ndarray
        float64 per threshold (0.0 where nothing is predicted).
    predicted : ndarray
        int64 pixels at or above each threshold.
    """
    tp = at_or_above(positives)
    predicted = tp + at_or_above(negatives)
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    recall = tp / total_positives if total_positives else np.zeros(len(tp))
    return precision, recall, predicted


def recall_at_fpr(
    found: np.ndarray, false_alarms: np.ndarray, positives: int, negatives: int, target: float
) -> float | None:
    """The best recall among operating points whose false-positive rate is at most ``target``.

    Parameters
    ----------
    found, false_alarms
        Truth positives and negatives flagged at each operating point.
    positives, negatives
        All truth positives and negatives.
    target
        Largest false-positive rate allowed.

    Returns
    -------
    float or None
        None when no operating point is at or below the rate, or there are no
        negatives to measure it on.
    """
    if negatives == 0:
        return None
    allowed = false_alarms / negatives <= target
    if not allowed.any():
        return None
    return safe_ratio(found[allowed].max(), positives)


def precision_at_recall(precision: np.ndarray, recall: np.ndarray, target: float) -> float | None:
    """The best precision among operating points whose recall is at least ``target``; None if none."""
    reached = recall >= target
    return float(precision[reached].max()) if reached.any() else None


def ratios(found: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``found / total`` per bin (0.0 for an empty bin)."""
    return np.array([safe_ratio(f, t) for f, t in zip(found, total, strict=True)])


@dataclass
class MethodScore:
    """Every count of one method over the detectors seen so far.

    Parameters
    ----------
    edges
        Amplitude bin edges (electrons).
    thresholds
        PR-curve thresholds.
    hit_fraction
        Object-level hit fraction.
    fine_thresholds
        The fine probability grid of the fixed-rate figures (:data:`FINE_THRESHOLDS`).
    """

    edges: np.ndarray
    thresholds: np.ndarray
    hit_fraction: float
    fine_thresholds: np.ndarray = field(default_factory=lambda: pr_thresholds(FINE_THRESHOLDS))
    pixels: Confusion = field(default_factory=Confusion)
    amplitude_found: np.ndarray = field(init=False)
    amplitude_total: np.ndarray = field(init=False)
    pr_positives: np.ndarray = field(init=False)
    pr_negatives: np.ndarray = field(init=False)
    fine_positives: np.ndarray = field(init=False)
    fine_negatives: np.ndarray = field(init=False)
    fine_clean: np.ndarray = field(init=False)
    object_amplitude_found: np.ndarray = field(init=False)
    object_amplitude_total: np.ndarray = field(init=False)
    cr: list[int] = field(default_factory=lambda: [0, 0])
    hot: list[int] = field(default_factory=lambda: [0, 0])
    clean: list[int] = field(default_factory=lambda: [0, 0])
    objects: list[int] = field(default_factory=lambda: [0, 0])
    objects_by_previous: dict[str, list[int]] = field(
        default_factory=lambda: {kind: [0, 0] for kind in PREVIOUS_KINDS}
    )
    detectors: int = 0
    probability_detectors: int = 0

    def __post_init__(self) -> None:
        n_bins, n_fine = len(self.edges) - 1, len(self.fine_thresholds)
        self.amplitude_found = np.zeros(n_bins, np.int64)
        self.amplitude_total = np.zeros(n_bins, np.int64)
        self.object_amplitude_found = np.zeros(n_bins, np.int64)
        self.object_amplitude_total = np.zeros(n_bins, np.int64)
        self.pr_positives = np.zeros(len(self.thresholds), np.int64)
        self.pr_negatives = np.zeros(len(self.thresholds), np.int64)
        self.fine_positives = np.zeros(n_fine, np.int64)
        self.fine_negatives = np.zeros(n_fine, np.int64)
        self.fine_clean = np.zeros(n_fine, np.int64)

    def add(
        self,
        mask: np.ndarray,
        prob: np.ndarray | None,
        amplitude: np.ndarray,
        positive: np.ndarray,
        cosmic_rays: np.ndarray,
        hot_pixels: np.ndarray,
        valid: np.ndarray,
        clean: np.ndarray | None = None,
        previous: str = "unknown",
    ) -> None:
        """Add one detector.

        Parameters
        ----------
        mask
            Boolean prediction.
        prob
            Probability behind the mask, or None for a binary method (its mask
            then serves as a 0/1 probability, a single PR point).
        amplitude
            True persistence (electrons).
        positive
            Truth positives (valid pixels above the truth threshold).
        cosmic_rays, hot_pixels
            Boolean truth layers.
        valid
            Pixels that count.
        clean
            Pixels with no signal at all (next to no true persistence, no cosmic
            ray, hot pixel or snowball): flagging one is a plain false alarm.
            None: not counted (the summary then has 0 clean pixels).
        previous
            Kind of the exposure before this one, one of :data:`PREVIOUS_KINDS`.

        Raises
        ------
        ValueError
            When ``previous`` is not one of :data:`PREVIOUS_KINDS`.
        """
        if previous not in PREVIOUS_KINDS:
            raise ValueError(f"previous exposure kind {previous!r} is not one of {PREVIOUS_KINDS}")
        mask = mask & valid
        self.pixels += confusion(mask, positive, valid)
        found, total = amplitude_counts(mask, amplitude, positive, self.edges)
        self.amplitude_found += found
        self.amplitude_total += total
        eligible = valid & ~positive
        for counts, layer in ((self.cr, cosmic_rays), (self.hot, hot_pixels), (self.clean, clean)):
            if layer is not None:
                flagged, n = flagged_counts(mask, layer, eligible)
                counts[0] += flagged
                counts[1] += n
        self._add_objects(mask, amplitude, positive, previous)
        score = mask.astype(np.float32) if prob is None else prob
        pos, neg = probability_histograms(score, positive, valid, self.thresholds)
        self.pr_positives += pos
        self.pr_negatives += neg
        self._add_fine_histograms(score_bins(mask, prob, self.fine_thresholds), positive, eligible, clean)
        self.probability_detectors += int(prob is not None)
        self.detectors += 1

    def _add_objects(
        self, mask: np.ndarray, amplitude: np.ndarray, positive: np.ndarray, previous: str
    ) -> None:
        """Count the truth objects found, in all, per amplitude bin of their peak and per previous kind."""
        found, peak = object_hits(mask, amplitude, positive, self.hit_fraction)
        for counts in (self.objects, self.objects_by_previous[previous]):
            counts[0] += int(found.sum())
            counts[1] += len(found)
        binned_found_objects, binned_objects = binned_found(peak, found, self.edges)
        self.object_amplitude_found += binned_found_objects
        self.object_amplitude_total += binned_objects

    def _add_fine_histograms(
        self, bins: np.ndarray, positive: np.ndarray, negative: np.ndarray, clean: np.ndarray | None
    ) -> None:
        """Add the positive, negative and clean pixels per bin of the fine grid (:func:`score_bins`)."""
        n = len(self.fine_thresholds)
        self.fine_positives += bin_histogram(bins, positive, n)
        self.fine_negatives += bin_histogram(bins, negative, n)
        if clean is not None:
            self.fine_clean += bin_histogram(bins, clean & negative, n)

    def pr(self) -> tuple[np.ndarray, ...]:
        """Precision, recall and predicted count per threshold (:func:`pr_curve`)."""
        total = self.pixels.tp + self.pixels.fn
        return pr_curve(self.pr_positives, self.pr_negatives, total)

    def operating_points(self) -> tuple[np.ndarray, ...]:
        """The operating points behind the fixed-rate figures.

        One point per threshold of the fine grid when at least one detector
        came with a probability; otherwise the binary mask's single point.

        Returns
        -------
        found, clean_flagged : ndarray
            Truth positives and clean pixels flagged at each point.
        precision, recall : ndarray
            float64 per point.
        """
        if self.probability_detectors:
            precision, recall, _ = pr_curve(
                self.fine_positives, self.fine_negatives, self.pixels.tp + self.pixels.fn
            )
            return at_or_above(self.fine_positives), at_or_above(self.fine_clean), precision, recall
        p = self.pixels
        return np.array([p.tp]), np.array([self.clean[0]]), np.array([p.precision]), np.array([p.recall])

    def fixed_rate_figures(self) -> dict[str, float | int | None]:
        """The figures at a fixed rate, from :meth:`operating_points`.

        Returns
        -------
        dict
            ``tpr_at_clean_fpr_<rate>``: the best recall whose clean-pixel
            false-positive rate is at most each rate of :data:`CLEAN_FPR_TARGETS`;
            ``precision_at_recall_<recall>``: the best precision whose recall is
            at least :data:`RECALL_TARGET`; None where no point meets the rate.
            ``probability_detectors``: detectors that came with a probability.
        """
        found, clean_flagged, precision, recall = self.operating_points()
        positives = self.pixels.tp + self.pixels.fn
        figures: dict[str, float | int | None] = {
            tpr_key(target): recall_at_fpr(found, clean_flagged, positives, self.clean[1], target)
            for target in CLEAN_FPR_TARGETS
        }
        figures[precision_key(RECALL_TARGET)] = precision_at_recall(precision, recall, RECALL_TARGET)
        figures["probability_detectors"] = self.probability_detectors
        return figures

    def recall_above(self, level: float) -> float:
        """Recall over the truth positives of at least ``level`` electrons (below the last edge).

        Raises
        ------
        ValueError
            When ``level`` is not one of the amplitude bin edges.
        """
        if level not in self.edges:
            raise ValueError(f"{level:g} e- is not an amplitude bin edge {self.edges.tolist()}")
        first = int(np.searchsorted(self.edges, level))
        return safe_ratio(self.amplitude_found[first:].sum(), self.amplitude_total[first:].sum())

    def amplitude_recall(self) -> np.ndarray:
        """Recall per amplitude bin (0.0 for an empty bin)."""
        return ratios(self.amplitude_found, self.amplitude_total)

    def bin_labels(self) -> list[str]:
        """Names of the amplitude bins (:func:`amplitude_label`)."""
        return [amplitude_label(lo, hi) for lo, hi in zip(self.edges[:-1], self.edges[1:], strict=True)]

    def object_figures(self) -> dict[str, dict[str, float] | dict[str, int]]:
        """Object recall and object count per amplitude bin of the peak and per kind of previous exposure."""
        labels = self.bin_labels()
        recall = ratios(self.object_amplitude_found, self.object_amplitude_total)
        return {
            "object_recall_by_amplitude": dict(zip(labels, recall.tolist(), strict=True)),
            "objects_by_amplitude": dict(zip(labels, self.object_amplitude_total.tolist(), strict=True)),
            "object_recall_by_previous": {
                kind: safe_ratio(*counts) for kind, counts in self.objects_by_previous.items()
            },
            "objects_by_previous": {kind: counts[1] for kind, counts in self.objects_by_previous.items()},
        }

    def summary(self) -> dict[str, Any]:
        """The figures reported in ``metrics/eval.json``."""
        p = self.pixels
        return {
            "precision": p.precision,
            "recall": p.recall,
            "f1": p.f1,
            "iou": p.iou,
            "tp": p.tp,
            "fp": p.fp,
            "fn": p.fn,
            "tn": p.tn,
            "cosmic_ray_flagged_fraction": safe_ratio(*self.cr),
            "cosmic_ray_pixels": self.cr[1],
            "hot_pixel_flagged_fraction": safe_ratio(*self.hot),
            "hot_pixels": self.hot[1],
            "clean_flagged_fraction": safe_ratio(*self.clean),
            "clean_pixels": self.clean[1],
            "object_recall": safe_ratio(*self.objects),
            "objects_found": self.objects[0],
            "objects": self.objects[1],
            "recall_by_amplitude": dict(
                zip(self.bin_labels(), self.amplitude_recall().tolist(), strict=True)
            ),
            **self.fixed_rate_figures(),
            **self.object_figures(),
            "detectors": self.detectors,
        }


def amplitude_label(low: float, high: float) -> str:
    """Bin name, e.g. ``3-5e`` or ``>=50e`` for an open-ended last bin (``high >= 1e6``)."""
    if high >= 1e6:
        return f">={low:g}e"
    return f"{low:g}-{high:g}e"
