"""The persistence law: how much charge a pixel releases after bright illumination.

The law is the Fermi model fitted to H2RG/H4RG lab data (Sanchez et al. 2023, as
implemented in STScI's romanisim and GalSim's ``roman`` module)::

    rate(x, t) = A (x / x0) ** alpha (t / t_ref) ** -gamma / (1 + exp(-(x - x0) / dx))

for a pixel that saw fluence ``x`` (e-) at a time ``t`` (s) after the end of its
exposure, linear in ``x`` below half well. It is separable in ``x`` and ``t``, so the
charge collected over a dark is the fluence response times the analytic integral
of the power-law decay.

Three users: the simulator draws persistence from it (:mod:`slewdark.simulate`);
the labels may ask it from which fluence a given dark can hold persistence at
all (:func:`fluence_leaving`, :mod:`slewdark.core.brightmap`); and a
three-channel UNet sees the persistence it predicts for each dark
(:class:`PersistenceModel`, stored in the checkpoint,
:mod:`slewdark.inference.unet_input`). The functions take any object with the
law's six parameters (``simulate.persistence`` or a :class:`PersistenceModel`),
so prediction needs no ``params.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from scipy import optimize


class FermiParameters(Protocol):
    """The law's parameters (``simulate.persistence`` has them, and so has :class:`PersistenceModel`)."""

    amplitude: float
    x0: float
    dx: float
    alpha: float
    gamma: float
    reference_time: float


@dataclass(frozen=True)
class PersistenceModel:
    """The law and the full well, as a checkpoint stores them to predict each dark's persistence.

    Attributes
    ----------
    amplitude, x0, dx, alpha, gamma, reference_time
        The law's parameters (``simulate.persistence``).
    full_well
        e-: the law is linear below half of it, and a saturated pixel counts as this.
    """

    amplitude: float
    x0: float
    dx: float
    alpha: float
    gamma: float
    reference_time: float
    full_well: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict, as stored in the checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PersistenceModel:
        """From a checkpoint's ``law`` entry."""
        return cls(**{key: float(value) for key, value in values.items()})

    def predict(self, fluence: np.ndarray, tsince: float, exptime: float) -> np.ndarray:
        """Electrons (float32) a median pixel releases into the dark, from the fluence it saw.

        Fluence is capped at the full well: an observed previous exposure holds no more.
        """
        capped = np.clip(np.asarray(fluence, dtype=np.float32), 0.0, self.full_well)
        return persistence_signal(capped, self.full_well, tsince, exptime, self)


def fermi_response(fluence: np.ndarray, full_well: float, cfg: FermiParameters) -> np.ndarray:
    """Persistence rate (e-/s, float32) at ``t = reference_time`` of pixels that saw ``fluence`` e-.

    Above half well: ``A (x/x0)**alpha / (1 + exp(-(x - x0)/dx))``; below it the rate
    at half well scaled linearly with ``x``, so no illumination gives none. Only the
    (few) pixels above half well pay for the transcendental functions.
    """
    x = np.maximum(np.asarray(fluence, dtype=np.float32), np.float32(0.0))
    half = 0.5 * full_well

    def fermi(v: np.ndarray | float) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)
        return cfg.amplitude * (v / cfg.x0) ** cfg.alpha / (1.0 + np.exp(-(v - cfg.x0) / cfg.dx))

    rate = x * np.float32(fermi(half) / half)
    above = x > half
    rate[above] = fermi(x[above])
    return rate


def decay_integral(tsince: float, exptime: float, cfg: FermiParameters) -> float:
    """Integral of ``(t / reference_time) ** -gamma`` over [tsince, tsince + exptime], in s."""
    t0, t1, index, ref = tsince, tsince + exptime, cfg.gamma, cfg.reference_time
    if np.isclose(index, 1.0):
        return float(ref * np.log(t1 / t0))
    return float(ref**index * (t1 ** (1 - index) - t0 ** (1 - index)) / (1 - index))


def persistence_signal(
    fluence: np.ndarray, full_well: float, tsince: float, exptime: float, cfg: FermiParameters
) -> np.ndarray:
    """Persistence electrons collected in a dark of ``exptime`` s starting ``tsince`` s after illumination.

    Parameters
    ----------
    fluence
        Charge each pixel collected in the illuminating exposure (e-), unclipped.
    full_well
        Full-well capacity (e-); the law is linear below half of it.
    tsince, exptime
        Seconds from the end of the illuminating exposure to the dark's start, and its length.
    cfg
        The law's parameters.

    Returns
    -------
    numpy.ndarray
        float32 electrons per pixel, for a median pixel of a median detector.
    """
    return fermi_response(fluence, full_well, cfg) * np.float32(decay_integral(tsince, exptime, cfg))


def fluence_leaving(
    electrons: float, full_well: float, tsince: float, exptime: float, cfg: FermiParameters
) -> float:
    """The fluence (e-) from which a dark collects at least ``electrons`` of persistence.

    The inverse of :func:`persistence_signal` in the fluence: the law rises with
    fluence, so every pixel that saw at least this much leaves at least
    ``electrons`` in a dark of ``exptime`` s starting ``tsince`` s after the
    illumination.

    Parameters
    ----------
    electrons
        Persistence (e-) collected over the dark.
    full_well
        Full-well capacity (e-): an observed previous exposure holds no larger value.
    tsince, exptime
        Seconds from the end of the illuminating exposure to the dark's start, and its length.
    cfg
        The law's parameters (``amplitude`` included: scale it for a brighter law).

    Returns
    -------
    float
        Electrons of fluence; ``inf`` when even a full well leaves less.
    """

    def excess(x: float) -> float:
        return float(persistence_signal(np.array([x]), full_well, tsince, exptime, cfg)[0]) - electrons

    if excess(full_well) < 0:
        return math.inf
    return float(optimize.brentq(excess, 0.0, full_well, xtol=1.0, rtol=1e-6))
