"""Noise scaling speed: seconds per 2040x2040 detector on one CPU core.

Run: ``.venv/bin/python benchmarks/bench_scaling.py``. Simulates detector 11 of
the first exposure of ``params.yaml`` in memory and times
:func:`slewdark.core.scaling.scale_detector` with the configured ``scaling``
(two estimates, the second without sources) and with one estimate
(``source_sigma: null``), alternately, best of three each, so that the ratio
holds on a shared machine; each after :func:`~slewdark.core.scaling.forget_scaled`,
so the work is timed. Then the same detector scaled again, as the evaluation's
second method on a detector scales it: the kept result, found by its digest.
"""

from __future__ import annotations

from dataclasses import replace

from one_detector import best_times, simulated_detector
from slewdark.core.scaling import Scaling, forget_scaled, scale_detector


def main() -> None:
    """Time both scalings on one simulated detector; print the best times and their ratio."""
    params, image, usable = simulated_detector()
    configured = Scaling(**params.scaling.model_dump())
    one_estimate = replace(configured, source_sigma=None)
    best = best_times(
        {
            "configured": lambda: (forget_scaled(), scale_detector(image, usable, configured)),
            "again": lambda: scale_detector(image, usable, configured),
            "one estimate": lambda: (forget_scaled(), scale_detector(image, usable, one_estimate)),
        }
    )
    print(
        f"scaling: {best['configured']:.2f} s per {image.shape[0]}x{image.shape[1]} detector on 1 core "
        f"(source_sigma {configured.source_sigma}); one estimate {best['one estimate']:.2f} s; "
        f"ratio {best['configured'] / best['one estimate']:.2f}; the same detector again "
        f"{best['again']:.3f} s ({best['again'] / best['configured']:.3f}x)"
    )


if __name__ == "__main__":
    main()
