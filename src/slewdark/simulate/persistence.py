"""The simulated persistence: the law drawn from (:func:`law_signal`) and its variation (:func:`trap_factor`).

The lab law (Fermi model, Sanchez et al. 2023) is in
:mod:`slewdark.core.persistence_law`, shared with the methods; the law of
another form is in :mod:`slewdark.simulate.trap_law`. Trap density and detector
scale multiply either.
"""

from __future__ import annotations

import numpy as np

from slewdark.config import PersistenceSim
from slewdark.core.persistence_law import persistence_signal
from slewdark.simulate.trap_law import trap_signal


def law_signal(
    fluence: np.ndarray, full_well: float, tsince: float, exptime: float, law: PersistenceSim
) -> np.ndarray:
    """Persistence electrons (float32) a median pixel collects in the dark, by the law ``law.law`` names.

    Parameters and units as :func:`slewdark.core.persistence_law.persistence_signal`.
    """
    signal = trap_signal if law.law == "traps" else persistence_signal
    return signal(fluence, full_well, tsince, exptime, law)


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
