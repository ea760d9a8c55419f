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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from slewdark.core.scaling import Scaling, scale_detector
from slewdark.errors import ContractError
from slewdark.io.fits import DetectorImage, ExposureInfo, read_detector

log = logging.getLogger(__name__)

PREV_SOFTENING = 1000.0
"""e-: the previous exposure's log stretch is linear below this fluence."""


@dataclass(frozen=True)
class Normalisation:
    """How detectors become network input.

    Attributes
    ----------
    scaling
        The slew dark's noise scaling.
    prev_full_scale
        Previous-exposure fluence (e-) mapped to 1 (second channel only).
    """

    scaling: Scaling
    prev_full_scale: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in the checkpoint."""
        return {"scaling": self.scaling.to_dict(), "prev_full_scale": self.prev_full_scale}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalisation:
        """From the checkpoint's ``normalisation`` entry."""
        return cls(Scaling.from_dict(values["scaling"]), float(values["prev_full_scale"]))


@dataclass(frozen=True)
class BrightVeto:
    """Pixels too bright to be persistence, removed from the mask after the threshold.

    Persistence is a few to a few tens of electrons per pixel (the Fermi law of
    Sanchez et al. 2023 gives at most about 30 e- over 300 s starting 30 s after
    a saturating exposure, a few times that for the densest traps); cosmic rays,
    snowballs and hot pixels reach hundreds to tens of thousands. A pixel above
    ``sigma`` noise units, and its neighbours within ``grow`` px (inter-pixel
    capacitance, charge diffusion), is not flagged, whatever the network says.

    Attributes
    ----------
    sigma
        Noise units (of :mod:`slewdark.core.scaling`) above which a pixel is vetoed.
    grow
        px: the vetoed pixels are grown by this (8-connected).
    """

    sigma: float
    grow: int

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in the checkpoint."""
        return {"sigma": self.sigma, "grow": self.grow}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> BrightVeto | None:
        """From the checkpoint's ``veto`` entry (None: no veto, as in older checkpoints)."""
        return None if values is None else cls(float(values["sigma"]), int(values["grow"]))

    def vetoed(self, image01: np.ndarray, scaling: Scaling) -> np.ndarray:
        """Boolean map of the vetoed pixels of a scaled slew dark (channel 0 of :func:`detector_input`).

        The squashing is monotonic, so ``z > sigma`` is ``image01 > squash(sigma)``.
        """
        bright = image01 > scaling.squash(self.sigma)
        if self.grow == 0 or not bright.any():
            return bright
        return ndimage.binary_dilation(bright, structure=np.ones((3, 3), bool), iterations=self.grow)


def previous_channel(prev: DetectorImage, full_scale: float) -> np.ndarray:
    """The previous exposure on a fixed log fluence scale in [0, 1]; saturated pixels are 1."""
    fluence = np.nan_to_num(prev.data, nan=full_scale, posinf=full_scale, neginf=0.0)
    scaled = np.log1p(np.maximum(fluence, 0.0) / PREV_SOFTENING) / np.log1p(full_scale / PREV_SOFTENING)
    scaled = np.where(prev.saturated, 1.0, scaled)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def previous_exposure_path(info: ExposureInfo) -> Path:
    """The previous exposure named by ``PREVFILE`` (same folder).

    Raises
    ------
    ContractError
        When the header names none or the file is missing.
    """
    if not info.prev_file:
        raise ContractError(info.path, "the model needs the previous exposure but PREVFILE is not set")
    path = info.path.parent / info.prev_file
    if not path.exists():
        raise ContractError(info.path, f"previous exposure {info.prev_file} (PREVFILE) not found beside it")
    return path


def optional_previous_exposure(info: ExposureInfo) -> Path | None:
    """The previous exposure named by ``PREVFILE`` when it is there, else None.

    The data contract makes ``PREVFILE`` optional: without it a two-channel
    model sees an empty second channel (it is trained with such tiles, see
    ``unet.prev_dropout``). A file that is named but missing is logged once.
    """
    try:
        return previous_exposure_path(info)
    except ContractError as error:
        if info.prev_file:
            log.warning("%s; its second channel is left empty", error)
        return None


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
