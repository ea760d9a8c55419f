"""Simulator speed: seconds per 2040x2040 detector on one CPU core.

Run: ``.venv/bin/python benchmarks/bench_simulate.py``. Simulates detector 11 of
eight exposures with the default parameters (``params.yaml``) in memory, with
every numerical library limited to one thread, and prints the median and mean
times (exposures differ: previous kind, sky richness, 0..N history exposures).
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = "1"

import statistics  # noqa: E402
import time  # noqa: E402

from slewdark.config import load_params  # noqa: E402
from slewdark.simulate.dataset import plan_exposure, simulate_detector  # noqa: E402

TARGET_S = 1.5
N_EXPOSURES = 8


def main() -> None:
    """Time detector 11 of several exposures; print the median, the mean and the ratio to the target."""
    cfg = load_params("params.yaml").simulate
    times = []
    for index in range(N_EXPOSURES):
        plan = plan_exposure(cfg, index)
        start = time.perf_counter()
        simulate_detector(cfg, plan, "11")
        times.append(time.perf_counter() - start)
    median, mean = statistics.median(times), statistics.mean(times)
    print(
        f"simulate: {median:.2f} s median, {mean:.2f} s mean per 2040x2040 detector on 1 core "
        f"({mean / TARGET_S:.2f} of the {TARGET_S} s target)"
    )


if __name__ == "__main__":
    main()
