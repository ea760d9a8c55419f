"""A persistence law of another form than the one the methods assume.

Every method (the labels' bright map, the law fit, a three-channel UNet) assumes
the lab Fermi law of :mod:`slewdark.core.persistence_law`. Real detectors need
not follow it, so the simulator can also draw persistence from a law of another
functional form (``simulate.persistence.law: traps``), the trap picture behind
JWST's persistence step and the H2RG models of Smith et al. (2008) and Tulloch &
George (2019): the fluence fills traps, which saturate, and each family of traps
empties exponentially with its own time constant::

    rate(x, t) = R * f(x) / f(W) * D(t) / D(t_ref)
    f(x) = 1 - exp(-x / x_fill)
    D(t) = sum_i w_i exp(-t / tau_i) / tau_i

``R`` is the Fermi law's rate at the full well ``W`` and ``t_ref =
reference_time``, so the two laws agree there and differ in shape only: the
trap law rises at once with fluence and flattens as the traps fill (no Fermi
step; a tenth of a full well leaves twice what the Fermi law leaves), and decays
as a sum of exponentials rather than a power law, so persistence older than the
slowest family fades out.
"""

from __future__ import annotations

import numpy as np

from slewdark.config import PersistenceSim
from slewdark.core.persistence_law import fermi_response


def trap_signal(
    fluence: np.ndarray, full_well: float, tsince: float, exptime: float, cfg: PersistenceSim
) -> np.ndarray:
    """Persistence electrons (float32) of the trap law that a median pixel collects in the dark.

    Parameters, units and return value as
    :func:`slewdark.core.persistence_law.persistence_signal`; ``cfg`` also holds
    ``cfg.traps``, and the law matches the Fermi law of ``cfg`` at ``full_well``
    and ``reference_time``.
    """
    tau = np.asarray(cfg.traps.time_constants, dtype=np.float64)
    weights = np.asarray(cfg.traps.weights, dtype=np.float64)
    weights /= weights.sum()
    released = np.sum(weights * (np.exp(-tsince / tau) - np.exp(-(tsince + exptime) / tau)))
    rate_at_reference = np.sum(weights * np.exp(-cfg.reference_time / tau) / tau)
    rate_at_full_well = float(fermi_response(np.array([full_well]), full_well, cfg)[0])
    fill = cfg.traps.fill_fluence
    x = np.maximum(np.asarray(fluence, dtype=np.float32), np.float32(0.0))
    filled = -np.expm1(-x / np.float32(fill)) / np.float32(-np.expm1(-full_well / fill))
    return (filled * np.float32(rate_at_full_well * released / rate_at_reference)).astype(np.float32)
