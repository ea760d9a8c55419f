"""The bright veto with and without fill, on stored probability maps (this record's README).

Usage: python measure.py PREDICTIONS EXPOSURES TRUTH
PREDICTIONS holds <stem>.mask.fits with DETxy.PROB (written by `slewdark predict`),
EXPOSURES the slew darks, TRUTH their <stem>.truth.fits. Scores as `evaluate` does:
positive = truth persistence > 9 e-, clean = < 1 e- and no cosmic ray, hot pixel or
snowball, cosmic-ray pixels flagged among the non-positive ones.
"""

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

from slewdark.config import load_params
from slewdark.core.normalisation import BrightVeto
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.io.fits import read_detector

SCALING = Scaling(**load_params(Path(__file__).parents[3] / "params.yaml").scaling.model_dump())
VARIANTS = {
    "no veto": None,
    "veto, fill 0 (previous release)": BrightVeto(30.0, 1, 0),
    **{f"veto, fill {fill}": BrightVeto(30.0, 1, fill) for fill in (1, 2, 3, 4, 5)},
}


def main(predictions: Path, exposures: Path, truth_dir: Path) -> None:
    counts = {name: np.zeros(6, dtype=np.int64) for name in VARIANTS}
    for exposure in sorted(p for p in exposures.glob("*.fits") if p.name.count(".") == 1):
        product = fits.open(predictions / exposure.name.replace(".fits", ".mask.fits"))
        truth = fits.open(truth_dir / exposure.name.replace(".fits", ".truth.fits"))
        for hdu in (h for h in product if h.name.endswith(".PROB")):
            det = hdu.name[3:5]
            detector = read_detector(exposure, det)
            image01 = scale_detector(detector.data, detector.usable, SCALING).image
            pers = truth[f"DET{det}.PERS"].data
            artefact = truth[f"DET{det}.CR"].data > 0
            cosmic = artefact.copy()
            artefact |= truth[f"DET{det}.HOT"].data > 0
            if f"DET{det}.SNOW" in truth:
                artefact |= truth[f"DET{det}.SNOW"].data > 0
            valid = detector.usable
            positive = (pers > 9.0) & valid
            clean = valid & (pers < 1.0) & ~artefact
            eligible = valid & ~positive
            thresholded = (hdu.data >= 0.5) & valid
            for name, veto in VARIANTS.items():
                mask = thresholded if veto is None else veto.apply(thresholded, image01, SCALING) & valid
                counts[name] += [
                    (mask & positive).sum(),
                    (mask & ~positive & valid).sum(),
                    (~mask & positive).sum(),
                    (mask & cosmic & eligible).sum(),
                    (cosmic & eligible).sum(),
                    (mask & clean).sum(),
                ]
    print(f"{'variant':34s} precision recall F1    CR px flagged  clean px flagged")
    for name, (tp, fp, fn, cr_flagged, cr_total, clean_flagged) in counts.items():
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        f1 = 2 * precision * recall / (precision + recall)
        cr_share = cr_flagged / cr_total
        print(f"{name:34s} {precision:.3f}     {recall:.3f}  {f1:.3f}  {cr_share:.5f}        {clean_flagged}")


if __name__ == "__main__":
    main(*(Path(arg) for arg in sys.argv[1:4]))
