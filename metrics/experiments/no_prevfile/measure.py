"""The product when the slew dark does not name its previous exposure (no PREVFILE), or its TSINCE.

A one-off measurement (README, "What the product needs"), run from the
repository root after ``make repro``:
``.venv/bin/python metrics/experiments/no_prevfile/measure.py > metrics/experiments/no_prevfile/output.txt``.

``PREVFILE`` and ``TSINCE`` are optional in the data contract. Each set is
scored three times with ``evaluate``'s scoring: as simulated; as copies of its
exposures whose primary header has lost ``PREVFILE`` (nothing else changes:
the pixels, ``PREVGWA``, ``TSINCE`` and ``EXPTIME`` stay, the truth files are
the set's); and as copies that have lost ``TSINCE`` only (the previous
exposure copied beside them). Without ``PREVFILE`` the product's second and
third input channels are empty (20 % of its training tiles are shown that
way, ``unet.prev_dropout``); without ``TSINCE`` the third channel uses a
nominal time (:mod:`slewdark.inference.timing`). The physics mask and the law
fit read only the previous exposure and its timing, and flag nothing without
them.
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


def without_keyword(exposures: list[Path], folder: Path, keyword: str) -> list[Path]:
    """Copies of the exposures in ``folder`` without ``keyword``; with ``PREVFILE`` kept, its file too."""
    copies = []
    for path in exposures:
        copy = folder / path.name
        shutil.copy2(path, copy)
        with fits.open(copy, mode="update") as hdus:
            del hdus[0].header[keyword]
            prev = hdus[0].header.get("PREVFILE")
        if prev:
            shutil.copy2(path.parent / prev, folder / prev)
        copies.append(copy)
    return copies


def main() -> None:
    params = load_params(Path("params.yaml"))
    methods = {
        "unet": unet_method(Path(params.unet.model), params, "run make repro first"),
        "law_fit": law_fit_method(params),
        "heuristic_segmentation": heuristic_segmentation_method(params),
    }
    print("set | header | method | " + " | ".join(FIGURES))
    for name, folder, truth in SETS:
        exposures = exposure_files(folder)
        for label, keyword in (("as simulated", None), ("no PREVFILE", "PREVFILE"), ("no TSINCE", "TSINCE")):
            with tempfile.TemporaryDirectory() as scratch:
                files = exposures if keyword is None else without_keyword(exposures, Path(scratch), keyword)
                scores, _ = score_exposures(files, methods, params, truth, desc=f"{name} {label}")
                for method, score in scores.items():
                    summary = score.summary()
                    cells = " | ".join(f"{float(summary[key]):.4g}" for key in FIGURES)
                    print(f"{name} | {label} | {method} | {cells}", flush=True)


if __name__ == "__main__":
    main()
