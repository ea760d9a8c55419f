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
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from slewdark.core.normalisation import Normalisation
from slewdark.core.scaling import scale_detector
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


def detector_input(
    source: Path,
    detector: DetectorImage,
    normalisation: Normalisation,
    in_channels: int,
    prev_path: Path | None = None,
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
        1 or 2.
    prev_path
        Previous exposure file (second channel); None leaves that channel at 0.

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
        image01 = scale_detector(detector.data, detector.usable, normalisation.scaling).image
    except ValueError as error:
        raise ContractError(source, f"DET{detector.detector}: {error}") from None
    if in_channels == 1:
        return image01[None]
    if prev_path is None:
        return np.stack([image01, np.zeros_like(image01)])
    prev = read_detector(prev_path, detector.detector)
    return np.stack([image01, previous_channel(prev, normalisation.prev_full_scale)])
