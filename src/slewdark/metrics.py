"""Segmentation metrics against the simulator's truth, accumulated one detector at a time.

Every function here is pure: it takes a predicted mask (and probability), the
truth layers and the pixels that count (usable ones), and returns counts, never
ratios, so that counts from many detectors add up exactly and no more than one
detector is ever in memory. :class:`MethodScore` gathers all the counts of one
method and turns them into the reported figures.

Conventions: a truth positive is a usable pixel whose persistence exceeds the
truth threshold; a ratio whose denominator is 0 is reported as 0.0 (JSON has no
NaN); a truth object is an 8-connected group of positive pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


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
    values = amplitude[positive]
    total, _ = np.histogram(values, bins=edges)
    found, _ = np.histogram(values[pred[positive]], bins=edges)
    return found.astype(np.int64), total.astype(np.int64)


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


def object_counts(pred: np.ndarray, positive: np.ndarray, hit_fraction: float) -> tuple[int, int]:
    """Truth objects found and in total.

    Parameters
    ----------
    pred
        Boolean prediction.
    positive
        Truth positives; 8-connected groups of them are the objects.
    hit_fraction
        An object is found when at least this share of its pixels is predicted.

    Returns
    -------
    found, total : int
    """
    labels, n_objects = ndimage.label(positive, structure=EIGHT_CONNECTED)
    if n_objects == 0:
        return 0, 0
    sizes = np.bincount(labels.ravel(), minlength=n_objects + 1)[1:]
    hits = np.bincount(labels[pred & positive], minlength=n_objects + 1)[1:]
    return int((hits >= hit_fraction * sizes).sum()), int(n_objects)


def pr_thresholds(n: int) -> np.ndarray:
    """``n`` probability thresholds evenly spaced over [0, 1]."""
    return np.linspace(0.0, 1.0, n)


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
    n = len(thresholds)
    index = np.searchsorted(thresholds, prob[valid], side="right") - 1
    keep = index >= 0
    is_true = truth[valid][keep]
    index = index[keep]
    positives = np.bincount(index[is_true], minlength=n)
    negatives = np.bincount(index[~is_true], minlength=n)
    return positives.astype(np.int64), negatives.astype(np.int64)


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
    tp = np.cumsum(positives[::-1])[::-1]
    predicted = tp + np.cumsum(negatives[::-1])[::-1]
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    recall = tp / total_positives if total_positives else np.zeros(len(tp))
    return precision, recall, predicted


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
    """

    edges: np.ndarray
    thresholds: np.ndarray
    hit_fraction: float
    pixels: Confusion = field(default_factory=Confusion)
    amplitude_found: np.ndarray = field(init=False)
    amplitude_total: np.ndarray = field(init=False)
    pr_positives: np.ndarray = field(init=False)
    pr_negatives: np.ndarray = field(init=False)
    cr: list[int] = field(default_factory=lambda: [0, 0])
    hot: list[int] = field(default_factory=lambda: [0, 0])
    clean: list[int] = field(default_factory=lambda: [0, 0])
    objects: list[int] = field(default_factory=lambda: [0, 0])
    detectors: int = 0

    def __post_init__(self) -> None:
        self.amplitude_found = np.zeros(len(self.edges) - 1, np.int64)
        self.amplitude_total = np.zeros(len(self.edges) - 1, np.int64)
        self.pr_positives = np.zeros(len(self.thresholds), np.int64)
        self.pr_negatives = np.zeros(len(self.thresholds), np.int64)

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
        """
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
        found_objects, n_objects = object_counts(mask, positive, self.hit_fraction)
        self.objects[0] += found_objects
        self.objects[1] += n_objects
        score = mask.astype(np.float32) if prob is None else prob
        pos, neg = probability_histograms(score, positive, valid, self.thresholds)
        self.pr_positives += pos
        self.pr_negatives += neg
        self.detectors += 1

    def pr(self) -> tuple[np.ndarray, ...]:
        """Precision, recall and predicted count per threshold (:func:`pr_curve`)."""
        total = self.pixels.tp + self.pixels.fn
        return pr_curve(self.pr_positives, self.pr_negatives, total)

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
        pairs = zip(self.amplitude_found, self.amplitude_total, strict=True)
        return np.array([safe_ratio(found, total) for found, total in pairs])

    def summary(self) -> dict[str, float | int | dict[str, float]]:
        """The figures reported in ``metrics/eval.json``."""
        p = self.pixels
        recall_bins = self.amplitude_recall()
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
            "recall_by_amplitude": {
                amplitude_label(lo, hi): float(r)
                for lo, hi, r in zip(self.edges[:-1], self.edges[1:], recall_bins, strict=True)
            },
            "detectors": self.detectors,
        }


def amplitude_label(low: float, high: float) -> str:
    """Bin name, e.g. ``3-5e`` or ``>=50e`` for an open-ended last bin (``high >= 1e6``)."""
    if high >= 1e6:
        return f">={low:g}e"
    return f"{low:g}-{high:g}e"
