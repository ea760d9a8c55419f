"""Where the product and the law fit lose on one stress set, by the truth's amplitude.

    python metrics/experiments/cosmic_flags/diagnose.py persistence_x30 > .../diagnose_<release>.txt

For every detector of ``data/stress/<set>``: the UNet (``models/unet.pt``, run as the robustness
stage runs it) and the law fit against the truth at 9 e-: misses split into those the bright veto
removed and those below the threshold; recall per truth amplitude bin; false positives per truth
bin (below 1 e-: no persistence at all); the pixels above the veto level (30 sigma, outside the
previous exposure's saturation) among the truth's persistence and elsewhere, and at how many of
them the law, scaled to the dark, predicts 3 noise sigmas or more (``unet.veto.spare_predicted``:
not vetoed).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from slewdark.config import load_params
from slewdark.evaluation.baselines import law_fit_method
from slewdark.evaluation.methods import unet_method
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.inference.predict import load_unet
from slewdark.inference.unet_input import detector_input
from slewdark.io.fits import iter_detectors, read_info
from slewdark.io.previous import optional_previous_exposure
from slewdark.models.device import resolve_device

RECALL_BINS = ((9, 18), (18, 27), (27, 90), (90, np.inf))
FALSE_BINS = ((0, 1), (1, 3), (3, 6), (6, 9))


def main(name: str) -> None:
    params = load_params("params.yaml")
    model_path = Path(params.unet.model)
    model = load_unet(model_path, resolve_device("cpu"))
    unet, law_fit = unet_method(model_path, params, "run make repro"), law_fit_method(params)
    scaling = model.normalisation.scaling
    spare_level = scaling.squash_positive(3.0)
    for path in sorted(Path(params.robustness.out, name).glob("*_????.fits")):
        info = read_info(path)
        truth_path = truth_file(path, Path(params.robustness.truth_out, name))
        for detector in iter_detectors(path):
            truth = read_truth(truth_path, detector.detector)
            positive = (truth.pers > params.evaluate.truth_threshold) & detector.usable
            mask, prob = unet(path, info, detector)
            law_mask, _ = law_fit(path, info, detector)
            timing = (info.tsince, info.exptime)
            image = detector_input(
                path, detector, model.normalisation, 3, optional_previous_exposure(info), timing
            )
            vetoed = model.veto.vetoed(image[0], scaling) & ~(image[1] >= 1.0)
            above = (prob >= model.threshold) & detector.usable
            missed = positive & ~mask
            spared = vetoed & (image[2] >= spare_level)
            print(
                f"{path.name} DET{detector.detector}: positive {positive.sum()},"
                f" unet TP {(positive & mask).sum()}"
                f" FN {missed.sum()} (vetoed {(missed & vetoed & ~spared & above).sum()}, below threshold"
                f" {(missed & ~above).sum()}) FP {(mask & ~positive).sum()}; law_fit TP"
                f" {(positive & law_mask).sum()} FP {(law_mask & ~positive).sum()}"
            )
            for low, high in RECALL_BINS:
                bin_ = positive & (truth.pers >= low) & (truth.pers < high)
                n = max(int(bin_.sum()), 1)
                print(
                    f"  truth {low}-{high} e-: {bin_.sum()} px, recall unet {(bin_ & mask).sum() / n:.3f}"
                    f" law_fit {(bin_ & law_mask).sum() / n:.3f}"
                )
            for low, high in FALSE_BINS:
                bin_ = (truth.pers >= low) & (truth.pers < high)
                print(
                    f"  false positives at truth {low}-{high} e-: unet {(bin_ & mask).sum()},"
                    f" law_fit {(bin_ & law_mask).sum()}"
                )
            print(
                f"  vetoed: {(vetoed & positive).sum()} truth pixels, {(vetoed & ~positive).sum()} others;"
                f" the law predicts >= 3 sigma at {(spared & positive).sum()}"
                f" and {(spared & ~positive).sum()} of them"
            )


if __name__ == "__main__":
    main(sys.argv[1])
