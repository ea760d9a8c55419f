"""What the law fit adds to a three-channel UNet input: seconds per 2040x2040 detector on one CPU core.

Run: ``.venv/bin/python benchmarks/bench_law_fit.py``. Simulates detector 11 of
the first exposure of ``params.yaml`` and its previous exposure in memory, and
times :func:`slewdark.core.scaling.scale_detector` (which every input pays) and
:func:`slewdark.core.law_fit.scale_law` on its result (the third channel's extra
cost), alternately, best of three each, so that the ratio holds on a shared machine.
"""

from __future__ import annotations

from one_detector import best_times  # isort: skip (first: it pins the BLAS and OpenMP pools to one thread)

import numpy as np
from astropy.io import fits

from slewdark.config import load_params
from slewdark.core.law_fit import law_fit_settings, persistence_model, scale_law
from slewdark.core.scaling import Scaling, forget_scaled, scale_detector
from slewdark.io.fits import DetectorImage
from slewdark.simulate.dataset import plan_exposure, simulate_detector

SATUR = 1 << 10


def main() -> None:
    """Time the scaling and the law fit on one simulated detector; print both and their ratio."""
    params = load_params("params.yaml")
    plan = plan_exposure(params.simulate, 0)
    layers = simulate_detector(params.simulate, plan, "11")
    image, usable = layers.science, np.isfinite(layers.science)
    saturated = (layers.previous.dq & SATUR) > 0
    prev = DetectorImage("11", layers.previous.science, None, ~saturated, None, fits.Header(), 10, saturated)
    scaling = Scaling(**params.scaling.model_dump())
    law, settings = persistence_model(params), law_fit_settings(params)
    timing = (plan.previous.tsince, plan.exptime)
    scaled = scale_detector(image, usable, scaling)
    best = best_times(
        {
            "scaling": lambda: (forget_scaled(), scale_detector(image, usable, scaling)),
            "law fit": lambda: scale_law(scaled, usable, prev, law, timing, settings),
        }
    )
    fit = scale_law(scaled, usable, prev, law, timing, settings)
    print(
        f"law fit: {best['law fit']:.2f} s per {image.shape[0]}x{image.shape[1]} detector on 1 core "
        f"(scale {fit.scale:.2f} on {fit.pixels} pixels; simulated amplitude factor "
        f"{layers.amplitude_factor * layers.persistence_scale:.2f}); noise scaling {best['scaling']:.2f} s; "
        f"ratio {best['law fit'] / best['scaling']:.2f}"
    )


if __name__ == "__main__":
    main()
