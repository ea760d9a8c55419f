import glob
import os

import numpy as np
from astropy.io import fits
from scipy import ndimage

from slewdark.core.scaling import Scaling, scale_detector
from slewdark.io.fits import read_detector

s = Scaling(
    background="channel_row_block",
    block=34,
    softening=3.0,
    low_sigma=-4.0,
    high_sigma=100.0,
    source_sigma=3.0,
    source_grow=2,
)
tot = {}
for f in sorted(glob.glob("/work/main/data/heldout/sd002_000[013].fits")):
    stem = os.path.basename(f)[:-5]
    m = fits.open(f"/tmp/oldrel/predictions/{stem}.mask.fits")
    t = fits.open(f"/work/main/data/truth/heldout/{stem}.truth.fits")
    for d in ["11", "22"]:
        det = read_detector(f, d)
        sc = scale_detector(det.data, det.usable, s)
        z = (det.data - sc.background) / sc.sigma if hasattr(sc, "background") else None
        pred = m[f"DET{d}.MASK"].data.astype(bool)
        prob = m[f"DET{d}.PROB"].data
        pers = t[f"DET{d}.PERS"].data
        cr = t[f"DET{d}.CR"].data > 0
        bright = sc.image > s.squash(30.0)
        vet = ndimage.binary_dilation(bright, np.ones((3, 3), bool))
        fnp = (pers >= 27) & ~pred & (prob >= 0.5)
        c = {
            "fn_hiprob": fnp.sum(),
            "vetoed": (fnp & vet).sum(),
            "unusable": (fnp & ~det.usable).sum(),
            "vet_core": (fnp & bright).sum(),
            "vet_core_cr": (fnp & bright & cr).sum(),
            "vet_all_pos": (vet & (pers >= 9)).sum(),
            "vet_all_pos_nocr": (
                vet & (pers >= 9) & ~ndimage.binary_dilation(cr, np.ones((3, 3), bool))
            ).sum(),
        }
        for k, v in c.items():
            tot[k] = tot.get(k, 0) + int(v)
        # values of slew dark at vetoed noncr persistence
        sel = bright & (pers >= 9) & ~cr
        if sel.any():
            print(
                stem,
                d,
                "core non-CR vetoed pers",
                sel.sum(),
                "data pct",
                np.percentile(det.data[sel], [10, 50, 90]),
                "pers",
                np.percentile(pers[sel], [10, 50, 90]),
                "sigma",
                sc.sigma,
            )
print(tot)
