"""The previous exposure a slew dark names (``PREVFILE``, same folder)."""

from __future__ import annotations

import logging
from pathlib import Path

from slewdark.core.instrument import expected_dispersion
from slewdark.errors import ContractError
from slewdark.io.fits import DetectorImage, ExposureInfo, read_detector

log = logging.getLogger(__name__)


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


def previous_exposure(info: ExposureInfo) -> tuple[Path | None, float]:
    """The previous exposure named by PREVFILE (None when unnamed or missing) and the trace angle."""
    dispersion = expected_dispersion(info.prev_gwa, info.prev_tilt)
    if not info.prev_file:
        return None, dispersion
    try:
        return previous_exposure_path(info), dispersion
    except ContractError as error:
        log.warning("%s; its patches use the fallback rule", error)
        return None, dispersion


def previous_detector(info: ExposureInfo, detector: str) -> DetectorImage | None:
    """The detector of the previous exposure named by PREVFILE; None when unnamed or missing."""
    prev, _ = previous_exposure(info)
    return None if prev is None else read_detector(prev, detector)
