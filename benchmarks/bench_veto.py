"""Bright-veto speed: seconds per 2040x2040 detector on one CPU core, with and without fill.

Run: ``.venv/bin/python benchmarks/bench_veto.py``. Simulates detector 11 of the
first exposure of ``params.yaml`` in memory, scales it with the configured
``scaling``, stands in for the network's mask with the pixels above 1 noise
sigma (about 16 % of the detector, a denser mask than any real one), and times
:meth:`slewdark.core.normalisation.BrightVeto.apply` with the configured
``unet.veto`` and with ``fill: 0`` beside the scaling itself, alternately, best
of three each, so that the ratios hold on a shared machine.
"""

from __future__ import annotations

from dataclasses import replace

from one_detector import best_times, simulated_detector
from slewdark.core.normalisation import BrightVeto
from slewdark.core.scaling import Scaling, forget_scaled, scale_detector


def main() -> None:
    """Time the veto with and without fill on one simulated detector; print the best times and ratios."""
    params, image, usable = simulated_detector()
    scaling = Scaling(**params.scaling.model_dump())
    image01 = scale_detector(image, usable, scaling).image
    mask = image01 > scaling.squash(1.0)
    configured = BrightVeto(**params.unet.veto.model_dump())
    without_fill = replace(configured, fill=0)
    best = best_times(
        {
            "configured": lambda: configured.apply(mask, image01, scaling),
            "fill 0": lambda: without_fill.apply(mask, image01, scaling),
            "scaling": lambda: (forget_scaled(), scale_detector(image, usable, scaling)),
        }
    )
    print(
        f"veto: {best['configured']:.3f} s per {image.shape[0]}x{image.shape[1]} detector on 1 core "
        f"(fill {configured.fill}); fill 0 {best['fill 0']:.3f} s; "
        f"ratio {best['configured'] / best['fill 0']:.2f}; "
        f"{best['configured'] / best['scaling']:.3f} of the scaling's {best['scaling']:.2f} s"
    )


if __name__ == "__main__":
    main()
