"""The product when the slew dark does not name its previous exposure (no PREVFILE).

A one-off measurement (README, "What the product needs"), run from the
repository root after ``make repro``:
``.venv/bin/python metrics/experiments/no_prevfile/measure.py > metrics/experiments/no_prevfile/output.txt``.

``PREVFILE`` is optional in the data contract. Each set is scored twice with
``evaluate``'s scoring: as simulated, and as copies of its exposures whose
primary header has lost ``PREVFILE`` (nothing else changes: the pixels,
``PREVGWA``, ``TSINCE`` and ``EXPTIME`` stay, the truth files are the set's).
Without it the product's second and third input channels are empty (20 % of
its training tiles are shown that way, ``unet.prev_dropout``); the physics
mask and the law fit, which read only the previous exposure, flag nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from astropy.io import fits

from slewdark.config import load_params
from slewdark.evaluation.baselines import heuristic_segmentation_method, law_fit_method
from slewdark.evaluation.methods import unet_method
from slewdark.evaluation.scoring import score_exposures
from slewdark.io.exposures import exposure_files

SETS = (
    ("heldout", "data/heldout", "data/truth/heldout"),
    ("stress nominal", "data/stress/nominal", "data/truth/stress/nominal"),
    ("stress persistence_free", "data/stress/persistence_free", "data/truth/stress/persistence_free"),
    ("stress exptime_50", "data/stress/exptime_50", "data/truth/stress/exptime_50"),
    ("stress cosmic_rays_x3", "data/stress/cosmic_rays_x3", "data/truth/stress/cosmic_rays_x3"),
)
FIGURES = ("precision", "recall", "f1", "clean_flagged_fraction", "cosmic_ray_flagged_fraction")


def without_prevfile(exposures: list[Path], folder: Path) -> list[Path]:
    """Copies of the exposures in ``folder`` without the PREVFILE keyword (and no companion)."""
    copies = []
    for path in exposures:
        copy = folder / path.name
        shutil.copy2(path, copy)
        with fits.open(copy, mode="update") as hdus:
            del hdus[0].header["PREVFILE"]
        copies.append(copy)
    return copies


def main() -> None:
    params = load_params(Path("params.yaml"))
    methods = {
        "unet": unet_method(Path(params.unet.model), params, "run make repro first"),
        "law_fit": law_fit_method(params),
        "heuristic_segmentation": heuristic_segmentation_method(params),
    }
    print("set | PREVFILE | method | " + " | ".join(FIGURES))
    for name, folder, truth in SETS:
        exposures = exposure_files(folder)
        with tempfile.TemporaryDirectory() as scratch:
            stripped = without_prevfile(exposures, Path(scratch))
            for label, files in (("named", exposures), ("absent", stripped)):
                scores, _ = score_exposures(files, methods, params, truth, desc=f"{name} {label}")
                for method, score in scores.items():
                    summary = score.summary()
                    cells = " | ".join(f"{float(summary[key]):.4g}" for key in FIGURES)
                    print(f"{name} | {label} | {method} | {cells}", flush=True)


if __name__ == "__main__":
    main()
