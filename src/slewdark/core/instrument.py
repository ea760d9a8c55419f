"""NISP instrument facts as data: grism dispersion directions and the active detector size."""

from __future__ import annotations

import numpy as np

ACTIVE_SIZE = 2040
"""Light-sensitive pixels per detector side (the reader strips the reference border)."""
FULL_SIZE = 2048
"""Pixels per detector side with the reference border."""
REFERENCE_BORDER = (FULL_SIZE - ACTIVE_SIZE) // 2
"""Reference pixels on each edge of a full frame."""

DISPERSION_ANGLE = {"RGS000": 90.0, "RGS180": 270.0, "BGS000": 90.0}
"""Dispersion direction of each grism on the detector, degrees from +x (columns).

RGS000 and RGS180 disperse in opposite directions; the blue grism like RGS000."""


def is_spectroscopic(kind: str) -> bool:
    """True for a grism (RGS000, RGS180, BGS000), False for a filter (Y, J, H)."""
    return kind in DISPERSION_ANGLE


def previous_kind(prev_gwa: str | None) -> str:
    """``grism``, ``photometric`` or ``unknown``: a slew dark's previous exposure, from ``PREVGWA``."""
    if prev_gwa is None:
        return "unknown"
    return "grism" if is_spectroscopic(prev_gwa) else "photometric"


def expected_dispersion(gwa: str | None, tilt: float | None) -> float:
    """Trace angle (deg, mod 180) expected after a grism exposure; NaN otherwise."""
    if gwa not in DISPERSION_ANGLE:
        return np.nan
    return float((DISPERSION_ANGLE[gwa] + (tilt or 0.0)) % 180.0)
