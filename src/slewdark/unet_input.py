"""What the UNet sees: a detector stretched to [0, 1], optionally with its previous exposure.

Training and prediction build their input with the same function, from the
same normalisation settings (stored in ``models/unet.pt``), so a model never
sees data scaled differently from what it was trained on.

Channel 0 is the slew dark, stretched by :func:`slewdark.patches.normalise_detector`
between two percentiles of its usable pixels. With ``in_channels == 2``, channel
1 is the previous science exposure (``PREVFILE``, same folder), stretched the
same way but up to ``prev_high_percentile``: the few pixels that saw high
fluence, where persistence is born, stay distinguishable from each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slewdark.errors import ContractError
from slewdark.io.fits import DetectorImage, ExposureInfo, read_detector
from slewdark.patches import normalise_detector


@dataclass(frozen=True)
class Normalisation:
    """Percentile stretch of the network input.

    Attributes
    ----------
    low_percentile, high_percentile
        Percentiles of the usable pixels of the slew dark mapped to 0 and 1.
    prev_high_percentile
        Percentile of the previous exposure mapped to 1 (second channel only).
    """

    low_percentile: float
    high_percentile: float
    prev_high_percentile: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict, as stored in the checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Normalisation:
        """From the checkpoint's ``normalisation`` entry."""
        return cls(**values)


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
        Stretch settings.
    in_channels
        1 or 2.
    prev_path
        Previous exposure file, required when ``in_channels == 2``.

    Returns
    -------
    ndarray
        float32 ``(in_channels, H, W)`` in [0, 1].

    Raises
    ------
    ContractError
        When the detector has no usable pixel, or the previous exposure is missing.
    """
    try:
        image01, _, _ = normalise_detector(
            detector.data, detector.usable, normalisation.low_percentile, normalisation.high_percentile
        )
    except ValueError as error:
        raise ContractError(source, f"DET{detector.detector}: {error}") from None
    if in_channels == 1:
        return image01[None]
    if prev_path is None:
        raise ContractError(
            source, f"DET{detector.detector}: the model needs the previous exposure (2 channels)"
        )
    prev = read_detector(prev_path, detector.detector)
    prev01, _, _ = normalise_detector(
        prev.data, prev.usable, normalisation.low_percentile, normalisation.prev_high_percentile
    )
    return np.stack([image01, prev01])
