import glob
import os

from astropy.io import fits
from scipy import ndimage

from slewdark.core.brightmap import bright_map
from slewdark.io.fits import read_detector

tot = {}
for f in sorted(glob.glob("/work/main/data/heldout/sd002_*.fits")):
    if ".prev" in f:
        continue
    stem = os.path.basename(f)[:-5]
    m = fits.open(f"/tmp/oldrel/predictions/{stem}.mask.fits")
    t = fits.open(f"/work/main/data/truth/heldout/{stem}.truth.fits")
    for d in ["11", "22"]:
        pred = m[f"DET{d}.MASK"].data.astype(bool)
        prob = m[f"DET{d}.PROB"].data
        pers = t[f"DET{d}.PERS"].data
        prev = read_detector(f.replace(".fits", ".prev.fits"), d)
        br = bright_map(prev, 10000.0, 1, 3)
        brd = ndimage.distance_transform_edt(~br)
        art = (t[f"DET{d}.CR"].data > 0) | (t[f"DET{d}.HOT"].data > 0) | (t[f"DET{d}.SNOW"].data > 0)
        strong = pers >= 27
        fn = strong & ~pred
        c = {
            "strong": strong.sum(),
            "fn": fn.sum(),
            "fn_inbright": (fn & br).sum(),
            "fn_bright_d1-5": (fn & (brd > 0) & (brd <= 5)).sum(),
            "fn_far": (fn & (brd > 5)).sum(),
            "strong_far": (strong & (brd > 5)).sum(),
            "fn_art": (fn & art).sum(),
            "fn_prob<0.1": (fn & (prob < 0.1)).sum(),
        }
        for k, v in c.items():
            tot[k] = tot.get(k, 0) + int(v)
print(tot)
