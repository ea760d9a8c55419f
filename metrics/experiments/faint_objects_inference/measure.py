"""Faint-object recall of the product under inference-side changes, and what the misses look like.

A one-off measurement (README, "Faint objects"), run from the repository root
after ``dvc repro``:
``.venv/bin/python metrics/experiments/faint_objects_inference/measure.py``.
It applies ``models/unet.pt`` to the held-out set as ``slewdark predict`` does
(same input, tiles, veto; in float32, where predict uses bfloat16 on a CPU
that has it), and also:

- ``flips8``: test-time augmentation, the mean probability over the 8
  orientations of the detector (the training augmentations);
- ``hysteresis``: the product's mask (probability >= 0.5) grown into the
  8-connected pixels whose probability is at least a lower level, as
  Canny-style double thresholds do;
- ``dilate``: the product's mask grown by 1 or 2 px.

The bright veto is applied to every variant. It then describes the truth
objects the product misses (their size, and their distance to the nearest
flagged pixel) and the footprints whose peak is faint (how many of their
pixels the truth counts as persistence).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from slewdark.core.metrics import EIGHT_CONNECTED, object_hits
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.inference.predict import load_unet, predict_probability
from slewdark.inference.unet_input import detector_input
from slewdark.io.fits import iter_detectors, read_info
from slewdark.io.previous import optional_previous_exposure

TRUTH_LEVEL = 9.0  # e-: evaluate.truth_threshold
HIT_FRACTION = 0.25  # evaluate.object_hit_fraction
FOOTPRINT_LEVEL = 3.0  # e-: a previous source's footprint in the truth (a third of the read noise)
FAINT = (9.0, 18.0)  # e-: the first amplitude bin of evaluate.amplitude_bins
SIZE_BINS = ((1, 1), (2, 3), (4, 9), (10, 10**9))
DISTANCE_EDGES = (1.5, 3.5, 10.5)  # px: bins <= 1, 2-3, 4-10, > 10 (Euclidean, to the nearest flagged pixel)
DISTANCE_LABELS = ("0-1", "2-3", "4-10", ">10")


def oriented(image: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` of 8 of the last two axes: transpose when k >= 4, then k % 4 quarter turns."""
    out = np.swapaxes(image, -1, -2) if k >= 4 else image
    return np.ascontiguousarray(np.rot90(out, k % 4, axes=(-2, -1)))


def restored(prob: np.ndarray, k: int) -> np.ndarray:
    """Undo :func:`oriented` on a 2-D map."""
    out = np.rot90(prob, -(k % 4))
    return np.ascontiguousarray(out.T if k >= 4 else out)


class Tally:
    """Pixel and object counts of one variant."""

    def __init__(self) -> None:
        self.tp = self.fp = self.found = self.faint_found = 0

    def add(self, pred: np.ndarray, truth: np.ndarray, positive: np.ndarray) -> None:
        self.tp += int((pred & positive).sum())
        self.fp += int((pred & ~positive).sum())
        hits, peak = object_hits(pred, truth, positive, HIT_FRACTION)
        self.found += int(hits.sum())
        self.faint_found += int(hits[(peak >= FAINT[0]) & (peak < FAINT[1])].sum())

    def line(self, name: str, positives: int, objects: int, faint: int) -> str:
        precision, recall = self.tp / max(self.tp + self.fp, 1), self.tp / positives
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        return (
            f"{name:22s} {precision:.3f} {recall:.3f} {f1:.3f} "
            f"{self.found / objects:.3f} {self.faint_found / faint:.3f}"
        )


def variants(prob: np.ndarray, prob8: np.ndarray, allowed: np.ndarray) -> dict[str, np.ndarray]:
    """Every variant's mask of one detector (``allowed``: usable and not vetoed)."""
    base = (prob >= 0.5) & allowed
    out = {"product (0.5)": base}
    for threshold in (0.5, 0.3, 0.1):
        out[f"flips8 >= {threshold}"] = (prob8 >= threshold) & allowed
    for low in (0.2, 0.1, 0.05):
        candidates = (prob >= low) & allowed
        labels, _ = ndimage.label(candidates, structure=EIGHT_CONNECTED)
        seeded = np.unique(labels[base])
        out[f"hysteresis 0.5/{low}"] = np.isin(labels, seeded[seeded > 0])
    for grow in (1, 2):
        out[f"dilate {grow} px"] = (
            ndimage.binary_dilation(base, structure=EIGHT_CONNECTED, iterations=grow) & allowed
        )
    return out


def describe_misses(base: np.ndarray, truth: np.ndarray, positive: np.ndarray, counts: np.ndarray) -> None:
    """Add the missed faint objects of one detector to ``counts[size bin, distance bin]``."""
    labels, n = ndimage.label(positive, structure=EIGHT_CONNECTED)
    if n == 0:
        return
    hits, peak = object_hits(base, truth, positive, HIT_FRACTION)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    distance = ndimage.distance_transform_edt(~base) if base.any() else np.full(base.shape, 1e9)
    nearest = ndimage.minimum(distance, labels, index=np.arange(1, n + 1))
    missed = ~hits & (peak >= FAINT[0]) & (peak < FAINT[1])
    for size, near in zip(sizes[missed], np.asarray(nearest)[missed], strict=True):
        i = next(j for j, (lo, hi) in enumerate(SIZE_BINS) if lo <= size <= hi)
        k = int(np.digitize(near, DISTANCE_EDGES))
        counts[i, k] += 1


def faint_footprints(truth: np.ndarray, usable: np.ndarray, counts: np.ndarray) -> None:
    """Add ``[pixels, pixels >= TRUTH_LEVEL]`` of the footprints whose peak is faint to ``counts``.

    A footprint is an 8-connected region of true persistence >= ``FOOTPRINT_LEVEL``; a
    detector that flags it whole finds its faint objects at this pixel precision.
    """
    labels, n = ndimage.label((truth >= FOOTPRINT_LEVEL) & usable, structure=EIGHT_CONNECTED)
    if n == 0:
        return
    index = np.arange(1, n + 1)
    peak = np.asarray(ndimage.maximum(truth, labels, index))
    faint = np.flatnonzero((peak >= FAINT[0]) & (peak < FAINT[1])) + 1
    inside = np.isin(labels, faint)
    counts += [int(inside.sum()), int((inside & (truth >= TRUTH_LEVEL)).sum())]


def main() -> None:
    """Print one line per variant, then the table of missed faint objects."""
    torch.set_num_threads(2)
    model = load_unet("models/unet.pt", torch.device("cpu"))
    network = model.inference_network()
    tallies: dict[str, Tally] = {}
    positives = objects = faint = 0
    misses = np.zeros((len(SIZE_BINS), len(DISTANCE_LABELS)), np.int64)
    footprints = np.zeros(2, np.int64)
    for path in sorted(Path("data/heldout").glob("*.fits")):
        if path.name.endswith(".prev.fits"):
            continue
        info = read_info(path)
        prev = optional_previous_exposure(info)
        for detector in iter_detectors(path):
            image = detector_input(path, detector, model.normalisation, model.in_channels, prev)
            probs = [
                restored(predict_probability(network, oriented(image, k), model.tile, model.overlap, 2), k)
                for k in range(8)
            ]
            prob, prob8 = probs[0], np.mean(probs, axis=0)
            allowed = model.mask(np.ones_like(prob), image, detector.usable)
            truth = read_truth(truth_file(path, "data/truth/heldout"), detector.detector).pers
            positive = (truth >= TRUTH_LEVEL) & detector.usable
            positives += int(positive.sum())
            _, peak = object_hits(positive, truth, positive, HIT_FRACTION)
            objects += peak.size
            faint += int(((peak >= FAINT[0]) & (peak < FAINT[1])).sum())
            for name, pred in variants(prob, prob8, allowed).items():
                tallies.setdefault(name, Tally()).add(pred, truth, positive)
            describe_misses((prob >= 0.5) & allowed, truth, positive, misses)
            faint_footprints(truth, detector.usable, footprints)
            print(f"{path.name} DET{detector.detector} done", flush=True)
    print("variant                precision recall F1 object_recall faint_object_recall")
    for name, tally in tallies.items():
        print(tally.line(name, positives, objects, faint))
    print(
        f"\nmissed faint objects ({FAINT[0]:g}-{FAINT[1]:g} e- peak): size (px) x distance to the mask (px)"
    )
    print("size \\ distance " + " ".join(DISTANCE_LABELS))
    for (lo, hi), row in zip(SIZE_BINS, misses, strict=True):
        print(f"{lo}-{hi if hi < 10**9 else 'inf'} " + " ".join(str(v) for v in row))
    print(
        f"\nfootprints (>= {FOOTPRINT_LEVEL:g} e-) with a faint peak: {footprints[0]} px, "
        f"{footprints[1]} of them >= {TRUTH_LEVEL:g} e- (precision if flagged whole: "
        f"{footprints[1] / max(footprints[0], 1):.3f})"
    )


if __name__ == "__main__":
    main()
