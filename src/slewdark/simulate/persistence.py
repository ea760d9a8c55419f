"""Persistence's variation between pixels and detectors (:func:`trap_factor`).

The law itself (Fermi model, Sanchez et al. 2023) is in
:mod:`slewdark.core.persistence_law`, shared with the labels' bright map;
trap density and detector scale multiply it.
"""

from __future__ import annotations

import numpy as np

from slewdark.config import PersistenceSim


def trap_factor(
    shape: tuple[int, int], cfg: PersistenceSim, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Per-pixel trap density times the detector's amplitude scale, both lognormal with median 1.

    Drawn from the detector's own generator, so a detector keeps its trap map and
    scale in every exposure of a seed family.

    Returns
    -------
    factor, scale
        float32 per-pixel factor (scale included) and the detector scale alone.
    """
    scale = float(np.exp(cfg.detector_scale_sigma * rng.standard_normal()))
    factor = rng.standard_normal(shape, dtype=np.float32)
    factor *= np.float32(cfg.trap_sigma)
    np.exp(factor, out=factor)
    factor *= np.float32(scale)
    return factor, scale
