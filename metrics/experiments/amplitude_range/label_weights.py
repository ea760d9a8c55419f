"""What the product's pseudo-masks teach about truly persistent pixels, before and after.

Reads the training truth (``data/truth/raw``) and the pseudo-masks (``data/masks``)
of each run from the DVC cache, by the hashes in ``before_dvc.lock`` (the law
alone) and ``after_dvc.lock`` (``amplitude_factor`` [0.5, 30]). A truth pixel
(persistence >= 9 e-) is *labelled* when its MASK is 1 with WEIGHT > 0, *taught
clean* when its MASK is 0 with WEIGHT > 0, and *ignored* when its WEIGHT is 0.
Run from the repository root:

    python metrics/experiments/amplitude_range/label_weights.py
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits

HERE = Path(__file__).resolve().parent
CACHE = HERE.parents[2] / ".dvc" / "cache" / "files" / "md5"
TRUTH_LEVEL = 9.0
BINS = (9.0, 18.0, 45.0, np.inf)


def cached(md5: str) -> Path:
    return CACHE / md5[:2] / md5[2:]


def folder(lock: dict, stage: str, path: str) -> dict[str, Path]:
    """File name -> cache path of a DVC-tracked folder output of ``stage``."""
    [entry] = [out for out in lock["stages"][stage]["outs"] if out["path"] == path]
    listing = json.loads(cached(entry["md5"]).read_text())
    return {item["relpath"]: cached(item["md5"]) for item in listing}


def counts(lock_file: Path) -> dict[str, np.ndarray]:
    lock = yaml.safe_load(lock_file.read_text())
    truths = folder(lock, "simulate", "data/truth/raw")
    masks = folder(lock, "pseudomask", "data/masks")
    totals = {
        kind: np.zeros(len(BINS) - 1, dtype=np.int64) for kind in ("labelled", "taught_clean", "ignored")
    }
    for name, mask_path in sorted(masks.items()):
        truth_path = truths[name.replace(".pseudo.fits", ".truth.fits")]
        with fits.open(mask_path) as mask_file, fits.open(truth_path) as truth_file:
            for hdu in mask_file:
                if not hdu.name.endswith(".MASK"):
                    continue
                det = hdu.name.split(".")[0]
                pers = truth_file[f"{det}.PERS"].data
                weight = mask_file[f"{det}.WEIGHT"].data
                bins = np.digitize(pers, BINS) - 1
                for kind, where in (
                    ("labelled", (hdu.data == 1) & (weight > 0)),
                    ("taught_clean", (hdu.data == 0) & (weight > 0)),
                    ("ignored", weight == 0),
                ):
                    chosen = bins[where & (pers >= TRUTH_LEVEL)]
                    totals[kind] += np.bincount(chosen, minlength=len(BINS) - 1)[: len(BINS) - 1]
    return totals


def main() -> None:
    labels = [f"{lo:g}-{hi:g} e-" for lo, hi in itertools.pairwise(BINS)]
    print("| run | truth bin | pixels | labelled | taught clean | ignored |")
    print("|---|---|---:|---:|---:|---:|")
    for run in ("before", "after"):
        totals = counts(HERE / f"{run}_dvc.lock")
        for i, label in enumerate(labels):
            n = sum(int(t[i]) for t in totals.values())
            shares = [f"{t[i] / max(n, 1):.3f}" for t in totals.values()]
            print(f"| {run} | {label} | {n} | " + " | ".join(shares) + " |")


if __name__ == "__main__":
    main()
