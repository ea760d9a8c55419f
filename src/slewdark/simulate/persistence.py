"""Persistence physics: how much charge a pixel releases after bright illumination.

The signal is separable: a fluence response that rises steeply as the pixel
approaches full well and grows slowly beyond it, times a power-law decay in the
time since the end of the illuminating exposure, integrated over the slew dark.
"""

from __future__ import annotations

import numpy as np

from slewdark.config import PersistenceSim


def fluence_response(fluence: np.ndarray, full_well: float, cfg: PersistenceSim) -> np.ndarray:
    """Relative persistence amplitude of a pixel for its previous fluence (0 at 0, 1 at full well).

    A logistic in fluence / full well, centred at ``cfg.onset`` with ``cfg.steepness``,
    shifted and scaled so it is 0 for no illumination and 1 at full well; beyond full
    well it grows as ``1 + beyond_well_slope * ln(fluence / full_well)``.
    """
    x = np.asarray(fluence, dtype=np.float64) / full_well

    def logistic(v: np.ndarray | float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-cfg.steepness * (np.asarray(v) - cfg.onset)))

    low, high = logistic(0.0), logistic(1.0)
    below = (logistic(np.clip(x, 0.0, 1.0)) - low) / (high - low)
    beyond = 1.0 + cfg.beyond_well_slope * np.log(np.maximum(x, 1.0))
    return np.where(x > 1.0, beyond, below)


def decay_integral(tsince: float, exptime: float, cfg: PersistenceSim) -> float:
    """Integral of ``(t / reference_time) ** -decay_index`` over [tsince, tsince + exptime], in s."""
    t0, t1, index, ref = tsince, tsince + exptime, cfg.decay_index, cfg.reference_time
    if np.isclose(index, 1.0):
        return float(ref * np.log(t1 / t0))
    return float(ref**index * (t1 ** (1 - index) - t0 ** (1 - index)) / (1 - index))


def persistence_signal(
    fluence: np.ndarray, full_well: float, tsince: float, exptime: float, cfg: PersistenceSim
) -> np.ndarray:
    """Persistence electrons collected in a dark of ``exptime`` s starting ``tsince`` s after illumination.

    Parameters
    ----------
    fluence
        Charge each pixel collected in the previous exposure (e-), unclipped.
    full_well
        Full-well capacity (e-).
    tsince, exptime
        Seconds from the end of the previous exposure to the dark's start, and its length.
    cfg
        Amplitude (e-/s at ``reference_time`` for a full-well pixel) and shape.

    Returns
    -------
    numpy.ndarray
        float32 electrons per pixel.
    """
    rate = cfg.amplitude * fluence_response(fluence, full_well, cfg)
    return (rate * decay_integral(tsince, exptime, cfg)).astype(np.float32)
