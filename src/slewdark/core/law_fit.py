"""The persistence law scaled to each dark: what an astronomer fits before trusting a network.

The lab law (:mod:`slewdark.core.persistence_law`) says how persistence grows
with the fluence a pixel saw and how it decays with time, but its amplitude
varies several-fold from detector to detector and from lab to sky (trap
density, temperature; Euclid's ground tests allow up to ~30 times the lab fit).
Its *shape* is what the previous exposure fixes; its *scale* the dark itself
can measure. So, for one detector of one dark:

1. the expected fluence is the previous exposure (``PREVFILE``), saturated
   pixels (SATUR bit or NaN) counted as a full well; where its pipeline
   flagged cosmic-ray hits (the COSMIC bit of its DQ layer), the flagged pixels
   take the fluence of the unflagged pixels around them (normalised
   convolution by a Gaussian of ``cosmic_fill`` px): the charge of
   a hit is real but was not the sky's, and the persistence the truth of a
   simulation and a sky-history pipeline expect is the sky's. Optionally median
   filtered over ``fluence_median`` px (which also cuts unflagged hits, and
   trace cores and stars with them);
2. the law gives the persistence a median pixel releases into this dark
   from that fluence, its ``TSINCE`` and ``EXPTIME``;
3. the scale is the slope of the dark's background-free electrons
   (:func:`slewdark.core.scaling.scale_detector`) on that prediction, over the
   pixels where the law predicts at least ``min_predicted`` e-: first through
   the medians of the electrons in ``BINS`` quantile bins of the prediction
   (robust to the cosmic rays that hit a few per cent of them), then by least
   squares, iterated ``iterations`` times without pixels further than
   ``clip_sigma`` noise sigmas from the line (cosmic rays, hot pixels, snowballs);
   the saturated pixels get a scale of their own, fitted the same way: the
   previous exposure caps them at the full well, but the light that saturated
   them may have been many times that, and the law still rises there (its
   Fermi term from 0.69 at 1e5 e- towards 1), so one scale for all would take
   the saturated cores' excess for a brighter law and over-predict the
   unsaturated pixels (on the held-out set the baseline's F1 rose from 0.745
   to 0.813 with two scales);
4. the scaled prediction is the persistence expected in every pixel, in electrons.

With fewer than ``min_pixels`` pixels to fit (a previous exposure without a
bright source, a dark a day later) a scale is the other one's, or, with
neither, the lab law's, 1: the prediction is then below the noise everywhere
anyway. Any decay of the same
shape for every pixel only rescales a dark's prediction, so the fit absorbs
a decay other than the law's ``t^-gamma`` as well as a different amplitude.

The evaluation's ``law_fit`` baseline flags where the scaled prediction
reaches ``mask_electrons`` (or, without it, ``mask_sigma`` noise sigmas): a
level in electrons holds whatever the dark's noise, as a science requirement
("mask persistence of 9 e- and more") is stated; ``pseudomask.law`` adds those pixels to
the pseudo-labels of persistence-cluster patches; a three-channel UNet sees the
scaled prediction as its third channel (:mod:`slewdark.inference.unet_input`).
The settings travel in the UNet checkpoint, so prediction needs no ``params.yaml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from slewdark.core.persistence_law import PersistenceModel
from slewdark.core.scaling import ScaledDetector, Scaling, scale_detector

if TYPE_CHECKING:
    from slewdark.config import Params
    from slewdark.io.fits import DetectorImage


BINS = 20
"""Quantile bins of the prediction whose medians give the fit's robust first slope."""


@dataclass(frozen=True)
class LawFitSettings:
    """How the law is scaled to a dark (``law_fit`` in ``params.yaml``; see the module docstring)."""

    fluence_median: int
    min_predicted: float
    clip_sigma: float
    iterations: int
    min_pixels: int
    mask_sigma: float
    cosmic_fill: float = 0.0
    """px: Gaussian of the fill of COSMIC-flagged pixels; 0 ignores the flags (checkpoints before it)."""
    mask_electrons: float | None = None
    """e-: mask level and the UNet's law-channel unit; None: ``mask_sigma`` sigmas (older checkpoints)."""

    def unit(self, sigma: float) -> float:
        """Electrons of prediction at the mask level: ``mask_electrons``, else ``mask_sigma`` x ``sigma``."""
        return self.mask_electrons if self.mask_electrons is not None else self.mask_sigma * sigma

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in the checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LawFitSettings:
        """From a checkpoint's ``law_fit`` entry."""
        return cls(**values)


@dataclass(frozen=True)
class ScaledLaw:
    """The law scaled to one detector of one dark.

    Attributes
    ----------
    predicted
        float32 electrons of persistence expected in each pixel (scale applied).
    scale, saturated_scale
        The fitted factors on the lab law, of the unsaturated and of the
        saturated pixels (one stands for the other with too few pixels to fit;
        1 with neither).
    pixels
        Pixels the fits used; 0 when both scales are the lab law's.
    sigma
        The dark's noise (e-).
    """

    predicted: np.ndarray
    scale: float
    saturated_scale: float
    pixels: int
    sigma: float

    def mask(self, settings: LawFitSettings) -> np.ndarray:
        """Pixels where the scaled law predicts at least the mask level (:meth:`LawFitSettings.unit`)."""
        return self.predicted >= settings.unit(self.sigma)


def expected_fluence(
    prev: DetectorImage, full_well: float, median: int, cosmic_fill: float = 0.0
) -> np.ndarray:
    """The previous exposure's fluence (e-) as the law reads it.

    Saturated pixels count as a full well, pixels without data as 0; with
    ``cosmic_fill`` > 0, COSMIC-flagged pixels are filled from their
    surroundings (:func:`fill_flagged`); with ``median`` > 1 the result is
    median filtered.
    """
    fluence = np.nan_to_num(prev.data, nan=0.0, posinf=full_well, neginf=0.0)
    fluence = np.where(prev.saturated, full_well, fluence).astype(np.float32)
    if cosmic_fill > 0 and prev.cosmic is not None and prev.cosmic.any():
        fluence = fill_flagged(fluence, prev.cosmic & ~prev.saturated, cosmic_fill)
    return ndimage.median_filter(fluence, size=median) if median > 1 else fluence


def fill_flagged(image: np.ndarray, flagged: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` with the flagged pixels filled from the unflagged pixels around them.

    Normalised convolution: the Gaussian (``sigma`` px) weighted mean of the
    unflagged pixels; 0 where none lies within reach (4 ``sigma``).
    """
    weight = (~flagged).astype(np.float32)
    numerator = ndimage.gaussian_filter(image * weight, sigma)
    denominator = ndimage.gaussian_filter(weight, sigma)
    mean = np.divide(numerator, denominator, out=np.zeros_like(image), where=denominator > 1e-6)
    return np.where(flagged, mean, image).astype(np.float32)


def fit_scale(
    residual: np.ndarray, predicted: np.ndarray, usable: np.ndarray, sigma: float, settings: LawFitSettings
) -> tuple[float | None, int]:
    """Clipped least-squares slope of the dark's electrons on the law's prediction.

    Parameters
    ----------
    residual
        Background-free electrons of the dark.
    predicted
        The lab law's persistence (e-) for the dark.
    usable
        Pixels with data.
    sigma
        The dark's noise (e-).
    settings
        ``min_predicted``, ``clip_sigma``, ``iterations``, ``min_pixels``.

    Returns
    -------
    scale : float or None
        At least 0; None when fewer than ``min_pixels`` pixels qualify.
    pixels : int
        Pixels within ``clip_sigma`` of the last line; 0 without a scale.
    """
    selected = usable & (predicted >= settings.min_predicted)
    if int(selected.sum()) < settings.min_pixels:
        return None, 0
    y = residual[selected].astype(np.float64)
    x = predicted[selected].astype(np.float64)
    scale = median_slope(x, y)
    pixels = 0
    for _ in range(settings.iterations):
        keep = np.abs(y - scale * x) <= settings.clip_sigma * sigma
        pixels = int(keep.sum())
        if pixels < settings.min_pixels:
            break
        scale = max(float((x[keep] * y[keep]).sum() / (x[keep] ** 2).sum()), 0.0)
    return scale, pixels


def median_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Slope through the origin of the medians of ``y`` in quantile bins of ``x``, weighted by count; >= 0."""
    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, BINS + 1)))
    bins = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, max(len(edges) - 2, 0))
    xs, ys, counts = [], [], []
    for b in np.unique(bins):
        members = bins == b
        xs.append(np.median(x[members]))
        ys.append(np.median(y[members]))
        counts.append(members.sum())
    xs_, ys_, counts_ = np.array(xs), np.array(ys), np.array(counts, dtype=np.float64)
    return max(float((counts_ * xs_ * ys_).sum() / (counts_ * xs_**2).sum()), 0.0)


def scale_law(
    scaled: ScaledDetector,
    usable: np.ndarray,
    prev: DetectorImage,
    law: PersistenceModel,
    timing: tuple[float, float],
    settings: LawFitSettings,
) -> ScaledLaw:
    """The law fitted to one detector of a dark (see the module docstring).

    Parameters
    ----------
    scaled
        The dark's detector after :func:`slewdark.core.scaling.scale_detector`.
    usable
        Its pixels with data.
    prev
        The same detector in the previous exposure.
    law
        The lab law and full well.
    timing
        The dark's ``TSINCE`` and ``EXPTIME`` (s).
    settings
        How to fit.

    Returns
    -------
    ScaledLaw
    """
    fluence = expected_fluence(prev, law.full_well, settings.fluence_median, settings.cosmic_fill)
    predicted = law.predict(fluence, *timing)
    saturated = fluence >= law.full_well
    residual, sigma = scaled.residual, scaled.sigma
    scale, pixels = fit_scale(residual, predicted, usable & ~saturated, sigma, settings)
    saturated_scale, saturated_pixels = fit_scale(residual, predicted, usable & saturated, sigma, settings)
    scale = saturated_scale if scale is None else scale
    scale = 1.0 if scale is None else scale
    saturated_scale = scale if saturated_scale is None else saturated_scale
    factor = np.where(saturated, np.float32(saturated_scale), np.float32(scale))
    return ScaledLaw(predicted * factor, scale, saturated_scale, pixels + saturated_pixels, sigma)


def fit_dark(
    detector: DetectorImage,
    prev: DetectorImage,
    law: PersistenceModel,
    timing: tuple[float, float],
    settings: LawFitSettings,
    scaling: Scaling,
) -> ScaledLaw:
    """:func:`scale_law` for a detector in electrons, scaled first with ``scaling``.

    Raises
    ------
    ValueError
        When the detector has no usable pixel.
    """
    usable = detector.usable & np.isfinite(detector.data)
    scaled = scale_detector(detector.data, usable, scaling)
    return scale_law(scaled, usable, prev, law, timing, settings)


def persistence_model(params: Params) -> PersistenceModel:
    """The lab law of ``simulate.persistence`` with ``simulate.detector.full_well``."""
    law = params.simulate.persistence
    return PersistenceModel(
        amplitude=law.amplitude,
        x0=law.x0,
        dx=law.dx,
        alpha=law.alpha,
        gamma=law.gamma,
        reference_time=law.reference_time,
        full_well=params.simulate.detector.full_well,
    )


def law_fit_settings(params: Params) -> LawFitSettings:
    """The ``law_fit`` section as the settings a checkpoint stores."""
    return LawFitSettings(**params.law_fit.model_dump())
