"""What each part of the change does for this release's network: the veto's sparing and the fill.

    python metrics/experiments/cosmic_flags/parts.py > metrics/experiments/cosmic_flags/parts.txt

Scores ``models/unet.pt`` on the persistence_x10 and persistence_x30 stress sets (pixel F1 at
9 e-, as the robustness stage scores them) as released, without the veto's sparing by the law
(``spare_predicted`` None), without the fill of the previous exposure's COSMIC-flagged pixels in
its law channel (``cosmic_fill`` 0), and without both. The network and its threshold are the same.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from slewdark.config import load_params
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.inference.predict import autocast_dtype, load_unet, predict_probability
from slewdark.inference.unet_input import detector_input
from slewdark.io.fits import iter_detectors, read_info
from slewdark.io.previous import optional_previous_exposure
from slewdark.models.device import resolve_device

SETS = ("persistence_x10", "persistence_x30")


def main() -> None:
    params = load_params("params.yaml")
    released = load_unet(Path(params.unet.model), resolve_device("cpu"))
    no_fill = dataclasses.replace(
        released.normalisation,
        law_fit=dataclasses.replace(released.normalisation.law_fit, cosmic_fill=0.0),
    )
    no_spare = dataclasses.replace(released.veto, spare_predicted=None)
    variants = {
        "released": (released.normalisation, released.veto),
        "no spare_predicted": (released.normalisation, no_spare),
        "no cosmic_fill": (no_fill, released.veto),
        "neither": (no_fill, no_spare),
    }
    dtype = autocast_dtype(released.device, params.predict.autocast)
    network = released.inference_network()
    for name in SETS:
        counts = {variant: [0, 0, 0] for variant in variants}
        for path in sorted(Path(params.robustness.out, name).glob("*_????.fits")):
            info = read_info(path)
            truth_path = truth_file(path, Path(params.robustness.truth_out, name))
            timing = (info.tsince, info.exptime)
            for detector in iter_detectors(path):
                truth = read_truth(truth_path, detector.detector)
                positive = (truth.pers > params.evaluate.truth_threshold) & detector.usable
                for variant, (normalisation, veto) in variants.items():
                    image = detector_input(
                        path, detector, normalisation, 3, optional_previous_exposure(info), timing
                    )
                    prob = predict_probability(
                        network, image, released.tile, released.overlap, params.predict.batch_size, dtype
                    )
                    model = dataclasses.replace(released, normalisation=normalisation, veto=veto)
                    mask = model.mask(prob, image, detector.usable)
                    counts[variant][0] += int((mask & positive).sum())
                    counts[variant][1] += int((mask & ~positive).sum())
                    counts[variant][2] += int((positive & ~mask).sum())
        for variant, (tp, fp, fn) in counts.items():
            print(f"{name} {variant}: TP {tp} FP {fp} FN {fn} F1 {2 * tp / (2 * tp + fp + fn):.3f}")


if __name__ == "__main__":
    main()
