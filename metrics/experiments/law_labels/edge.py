"""Where the product's mask and the law fit's part on the held-out set, by the law's prediction.

    python metrics/experiments/law_labels/edge.py > metrics/experiments/law_labels/edge.txt

Reads the predict stage's masks (``data/predictions``), fits the law to every held-out detector
as the ``law_fit`` baseline does, and counts the pixels the UNet flags but the law fit does not,
binned by the law's prediction in noise sigmas, with the share of them that the truth holds at
9 e- or more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slewdark.config import load_params
from slewdark.core.law_fit import fit_dark, law_fit_settings, persistence_model
from slewdark.core.scaling import Scaling
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.io.fits import iter_detectors, mask_product_path, read_info, read_mask_product
from slewdark.io.previous import previous_detector

EDGES = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])


def main() -> None:
    params = load_params("params.yaml")
    law, settings = persistence_model(params), law_fit_settings(params)
    scaling = Scaling(**params.scaling.model_dump())
    threshold = params.evaluate.truth_threshold
    counts, true_counts, law_only = np.zeros(len(EDGES) - 1), np.zeros(len(EDGES) - 1), 0
    folder = Path(params.data.heldout)
    exposures = sorted(p for p in folder.glob("*.fits") if not p.name.endswith(".prev.fits"))
    for path in exposures:
        info = read_info(path)
        for detector in iter_detectors(path):
            prev = previous_detector(info, detector.detector)
            if prev is None:
                continue
            mask, _ = read_mask_product(mask_product_path(path, Path(params.predict.out)), detector.detector)
            fit = fit_dark(detector, prev, law, (info.tsince, info.exptime), settings, scaling)
            sigmas = fit.predicted / fit.sigma
            truth_path = truth_file(path, params.data.heldout_truth)
            truth = read_truth(truth_path, detector.detector).pers >= threshold
            unet_only = mask & ~fit.mask(settings.mask_sigma) & detector.usable
            bins = np.clip(np.digitize(sigmas[unet_only], EDGES) - 1, 0, len(EDGES) - 2)
            np.add.at(counts, bins, 1)
            np.add.at(true_counts, bins, truth[unet_only])
            law_only += int((~mask & fit.mask(settings.mask_sigma) & detector.usable).sum())
    print("| law prediction (noise sigmas) | pixels flagged by the UNet only | share with truth >= 9 e- |")
    print("|---|---:|---:|")
    for low, high, count, true in zip(EDGES[:-1], EDGES[1:], counts, true_counts, strict=True):
        print(f"| {low:.1f}-{high:.1f} | {int(count)} | {true / max(count, 1):.2f} |")
    print(f"\npixels flagged by the law fit only: {law_only}")


if __name__ == "__main__":
    main()
