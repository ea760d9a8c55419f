"""Pixel precision, recall, F1 and object recall of the product at lower decision thresholds.

A one-off measurement (README, "Faint objects"), run from the repository root
after ``dvc repro``: ``.venv/bin/python metrics/experiments/threshold_object_recall/sweep.py``.
It reads the ``predict`` stage's ``DETxy.PROB`` and ``DETxy.MASK`` of the
held-out set and the held-out truth. ``MASK`` is ``PROB >= 0.5`` outside the
bright veto, so the veto is known only where ``PROB >= 0.5``; it is applied
there at every threshold (vetoed pixels are cosmic rays and hot pixels,
which the network scores low).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from slewdark.core.metrics import object_hits
from slewdark.evaluation.truth import read_truth, truth_file

THRESHOLDS = (0.5, 0.4, 0.3, 0.2, 0.1, 0.05)
TRUTH_LEVEL = 9.0  # e-: evaluate.truth_threshold
HIT_FRACTION = 0.25  # evaluate.object_hit_fraction


def main() -> None:
    """Print one line per threshold."""
    n = len(THRESHOLDS)
    tp, fp, found = np.zeros(n), np.zeros(n), np.zeros(n)
    positives = objects = 0
    for product in sorted(Path("data/predictions").glob("*.mask.fits")):
        stem = product.name.removesuffix(".mask.fits")
        with fits.open(product) as hdus:
            for detector in ("11", "22"):
                prob = hdus[f"DET{detector}.PROB"].data.astype(np.float32)
                vetoed = (prob >= 0.5) & ~hdus[f"DET{detector}.MASK"].data.astype(bool)
                truth = read_truth(truth_file(f"data/heldout/{stem}.fits", "data/truth/heldout"), detector)
                usable = np.isfinite(prob)
                positive = (truth.pers >= TRUTH_LEVEL) & usable
                positives += int(positive.sum())
                for i, threshold in enumerate(THRESHOLDS):
                    pred = (prob >= threshold) & ~vetoed & usable
                    tp[i] += (pred & positive).sum()
                    fp[i] += (pred & ~positive).sum()
                    hits, _ = object_hits(pred, truth.pers, positive, HIT_FRACTION)
                    found[i] += hits.sum()
                objects += len(hits)
    print("threshold precision recall F1 object_recall")
    for i, threshold in enumerate(THRESHOLDS):
        precision, recall = tp[i] / (tp[i] + fp[i]), tp[i] / positives
        f1 = 2 * precision * recall / (precision + recall)
        print(f"{threshold:.2f} {precision:.3f} {recall:.3f} {f1:.3f} {found[i] / objects:.3f}")


if __name__ == "__main__":
    main()
