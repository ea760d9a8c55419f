"""Shared set-up of the single-core benchmarks (``bench_scaling``, ``bench_veto``); not a benchmark.

Import it before numpy: it pins the BLAS and OpenMP pools to one thread.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from slewdark.config import Params, load_params  # noqa: E402
from slewdark.simulate.dataset import plan_exposure, simulate_detector  # noqa: E402

REPEATS = 3


def simulated_detector() -> tuple[Params, np.ndarray, np.ndarray]:
    """``params.yaml``, and detector 11 of its first simulated exposure with its usable pixels."""
    params = load_params("params.yaml")
    image = simulate_detector(params.simulate, plan_exposure(params.simulate, 0), "11").science
    return params, image, np.isfinite(image)


def best_times(variants: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Best of :data:`REPEATS` wall times of each call, run alternately so ratios hold on a shared machine."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(REPEATS):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}
