"""Noise scaling speed: seconds per 2040x2040 detector on one CPU core.

Run: ``.venv/bin/python benchmarks/bench_scaling.py``. Simulates detector 11 of
the first exposure of ``params.yaml`` in memory and times
:func:`slewdark.core.scaling.scale_detector` with the configured ``scaling``
(two estimates, the second without sources) and with one estimate
(``source_sigma: null``), alternately, best of three each, so that the ratio
holds on a shared machine.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from slewdark.config import load_params  # noqa: E402
from slewdark.core.scaling import Scaling, scale_detector  # noqa: E402
from slewdark.simulate.dataset import plan_exposure, simulate_detector  # noqa: E402

REPEATS = 3


def main() -> None:
    """Time both scalings on one simulated detector; print the best times and their ratio."""
    params = load_params("params.yaml")
    image = simulate_detector(params.simulate, plan_exposure(params.simulate, 0), "11").science
    usable = np.isfinite(image)
    configured = Scaling(**params.scaling.model_dump())
    variants = {"configured": configured, "one estimate": replace(configured, source_sigma=None)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(REPEATS):
        for name, scaling in variants.items():
            start = time.perf_counter()
            scale_detector(image, usable, scaling)
            times[name].append(time.perf_counter() - start)
    best = {name: min(values) for name, values in times.items()}
    print(
        f"scaling: {best['configured']:.2f} s per {image.shape[0]}x{image.shape[1]} detector on 1 core "
        f"(source_sigma {configured.source_sigma}); one estimate {best['one estimate']:.2f} s; "
        f"ratio {best['configured'] / best['one estimate']:.2f}"
    )


if __name__ == "__main__":
    main()
