"""Simulator speed: seconds per 2040x2040 detector on one CPU core.

Run: ``.venv/bin/python benchmarks/bench_simulate.py``. Simulates detector 11 of
three exposures with the default parameters (``params.yaml``) in memory, with
every numerical library limited to one thread, and prints the median time.
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import statistics  # noqa: E402
import time  # noqa: E402

from slewdark.config import load_params  # noqa: E402
from slewdark.simulate.dataset import plan_exposure, simulate_detector  # noqa: E402

TARGET_S = 5.0


def main() -> None:
    """Time three detectors and print the median and its ratio to the 5 s target."""
    cfg = load_params("params.yaml").simulate
    times = []
    for index in range(3):
        plan = plan_exposure(cfg, index)
        start = time.perf_counter()
        simulate_detector(cfg, plan, "11")
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    share = median / TARGET_S
    print(f"simulate: {median:.2f} s per 2040x2040 detector on 1 core ({share:.2f} of the 5 s target)")


if __name__ == "__main__":
    main()
