"""What the UNet sees: a detector in noise units, optionally with its previous exposure.

Training and prediction build their input with the same function, from the
same settings (stored in ``models/unet.pt``), so a model never sees data
scaled differently from what it was trained on.

Channel 0 is the slew dark scaled by its noise (:func:`slewdark.core.scaling.scale_detector`).
With ``in_channels == 2``, channel 1 is the previous science exposure
(``PREVFILE``, same folder) on a fixed logarithmic fluence scale,
``log(1 + F / 1000 e-) / log(1 + prev_full_scale / 1000 e-)`` clipped to [0, 1],
with saturated pixels (DQ SATUR bit, or NaN) at 1: a physical scale, the same
for every exposure.

With ``in_channels == 3``, channel 2 is the persistence the law stored in the
checkpoint (:class:`slewdark.core.persistence_law.PersistenceModel`) predicts
for this dark from that exposure's fluence and the dark's ``TSINCE`` and
``EXPTIME``, scaled to the dark itself (:mod:`slewdark.core.law_fit`, settings
also stored), in units of the mask level (``law_fit.mask_electrons``: a fixed
number of electrons, so the level the network learns to mask stays in
electrons whatever the dark's noise; checkpoints without it: noise sigmas)
with the slew dark's asinh softening, 0 for none and 1 at
``scaling.high_sigma`` units (:func:`law_channel`). The same
fluence leaves fifty times more persistence in a long dark soon after the
exposure than in a short one long after, and detectors differ several-fold in
amplitude; only this channel tells the network so. Without ``PREVFILE``, or
without either time in the header, channels 1 and 2 are 0.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from slewdark.core.law_fit import scale_law
from slewdark.core.normalisation import Normalisation
from slewdark.core.scaling import ScaledDetector, scale_detector
from slewdark.errors import ContractError
from slewdark.io.fits import DetectorImage, read_detector

log = logging.getLogger(__name__)

PREV_SOFTENING = 1000.0
"""e-: the previous exposure's log stretch is linear below this fluence."""


def previous_channel(prev: DetectorImage, full_scale: float) -> np.ndarray:
    """The previous exposure on a fixed log fluence scale in [0, 1]; saturated pixels are 1."""
    fluence = np.nan_to_num(prev.data, nan=full_scale, posinf=full_scale, neginf=0.0)
    scaled = np.log1p(np.maximum(fluence, 0.0) / PREV_SOFTENING) / np.log1p(full_scale / PREV_SOFTENING)
    scaled = np.where(prev.saturated, 1.0, scaled)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def law_channel(
    scaled: ScaledDetector,
    usable: np.ndarray,
    prev: DetectorImage,
    normalisation: Normalisation,
    timing: tuple[float, float],
) -> np.ndarray:
    """The persistence the stored law, scaled to this dark, predicts for it, in [0, 1].

    ``asinh(z / softening) / asinh(high_sigma / softening)`` of the prediction ``z``
    in units of the mask level (:meth:`slewdark.core.law_fit.LawFitSettings.unit`;
    ``normalisation.scaling``), so no persistence is 0.
    """
    law, settings = normalisation.law, normalisation.law_fit
    if law is None or settings is None:
        raise ValueError("a three-channel input needs the law and its fit in the normalisation")
    fit = scale_law(scaled, usable, prev, law, timing, settings)
    return normalisation.scaling.squash_positive(fit.predicted / settings.unit(fit.sigma))


def detector_input(
    source: Path,
    detector: DetectorImage,
    normalisation: Normalisation,
    in_channels: int,
    prev_path: Path | None = None,
    timing: tuple[float | None, float | None] = (None, None),
) -> np.ndarray:
    """The network input of one detector.

    Parameters
    ----------
    source
        The exposure file (named in error messages).
    detector
        The slew-dark detector image.
    normalisation
        Scaling settings.
    in_channels
        1, 2 or 3.
    prev_path
        Previous exposure file (channels 1 and 2); None leaves them at 0.
    timing
        The dark's ``TSINCE`` and ``EXPTIME`` (s) for channel 2; 0 there where either is None.

    Returns
    -------
    ndarray
        float32 ``(in_channels, H, W)`` in [0, 1].

    Raises
    ------
    ContractError
        When the detector has no usable pixel.
    """
    try:
        scaled = scale_detector(detector.data, detector.usable, normalisation.scaling)
    except ValueError as error:
        raise ContractError(source, f"DET{detector.detector}: {error}") from None
    channels = np.zeros((in_channels, *scaled.image.shape), dtype=np.float32)
    channels[0] = scaled.image
    if in_channels == 1 or prev_path is None:
        return channels
    prev = read_detector(prev_path, detector.detector)
    channels[1] = previous_channel(prev, normalisation.prev_full_scale)
    tsince, exptime = timing
    if in_channels == 3 and tsince is not None and exptime is not None:
        usable = detector.usable & np.isfinite(detector.data)
        channels[2] = law_channel(scaled, usable, prev, normalisation, (tsince, exptime))
    return channels
