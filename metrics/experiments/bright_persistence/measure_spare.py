import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage

from slewdark.config import load_params
from slewdark.core.brightmap import bright_map
from slewdark.core.normalisation import BrightVeto
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.io.fits import read_detector

SCALING = Scaling(**load_params("/work/main/params.yaml").scaling.model_dump())
K = np.ones((3, 3), bool)


def main(predictions, exposures, truth_dir):
    names = ["fill3", "fill3+ex5e4m3g1", "fill3+ex5e4m3g2", "fill3+exsat_g1", "noveto"]
    counts = {n: np.zeros(6, dtype=np.int64) for n in names}
    for exposure in sorted(p for p in exposures.glob("*.fits") if p.name.count(".") == 1):
        product = fits.open(predictions / exposure.name.replace(".fits", ".mask.fits"))
        truth = fits.open(truth_dir / exposure.name.replace(".fits", ".truth.fits"))
        prevpath = exposure.with_name(exposure.name.replace(".fits", ".prev.fits"))
        for hdu in (h for h in product if h.name.endswith(".PROB")):
            det = hdu.name[3:5]
            detector = read_detector(exposure, det)
            image01 = scale_detector(detector.data, detector.usable, SCALING).image
            prev = read_detector(prevpath, det) if prevpath.exists() else None
            pers = truth[f"DET{det}.PERS"].data
            cosmic = truth[f"DET{det}.CR"].data > 0
            art = cosmic | (truth[f"DET{det}.HOT"].data > 0)
            if f"DET{det}.SNOW" in truth:
                art |= truth[f"DET{det}.SNOW"].data > 0
            valid = detector.usable
            positive = (pers > 9.0) & valid
            clean = valid & (pers < 1.0) & ~art
            eligible = valid & ~positive
            th = (hdu.data >= 0.5) & valid
            v = BrightVeto(30.0, 1, 3)
            vetoed = v.vetoed(image01, SCALING)

            def filled(vet, th=th):
                kept = th & ~vet
                closed = ndimage.binary_closing(np.pad(kept, 3), np.ones((7, 7), bool))[3:-3, 3:-3]
                return kept | (vet & closed)

            z = np.zeros_like(th)
            ex = {"fill3": z, "noveto": None}
            if prev is not None:
                ex["fill3+ex5e4m3g1"] = bright_map(prev, 5e4, 1, 3)
                ex["fill3+ex5e4m3g2"] = bright_map(prev, 5e4, 2, 3)
                ex["fill3+exsat_g1"] = ndimage.binary_dilation(prev.saturated, K)
            else:
                for n in names[1:4]:
                    ex[n] = z
            for n in names:
                mask = th if ex[n] is None else filled(vetoed & ~ex[n]) & valid
                counts[n] += [
                    (mask & positive).sum(),
                    (mask & ~positive & valid).sum(),
                    (~mask & positive).sum(),
                    (mask & cosmic & eligible).sum(),
                    (cosmic & eligible).sum(),
                    (mask & clean).sum(),
                ]
    for n, (tp, fp, fn, crf, crt, cl) in counts.items():
        P, R = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        f1 = 2 * P * R / max(P + R, 1e-9)
        print(f"{n:20s} P {P:.3f} R {R:.3f} F1 {f1:.3f} CR {crf / max(crt, 1):.5f} clean {cl}")


main(*(Path(a) for a in sys.argv[1:4]))
