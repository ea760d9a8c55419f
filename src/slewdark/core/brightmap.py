"""The bright map: pixels of a previous exposure bright enough to leave persistence."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from slewdark.config import LabelParams
    from slewdark.io.fits import DetectorImage


def bright_map(prev: DetectorImage, level: float, dilation: int, median: int) -> np.ndarray:
    """Pixels of the previous exposure bright enough to leave persistence.

    Only what a pipeline has is used: the observed previous exposure (noise,
    cosmic rays, values capped at full well) and its saturation flags. A pixel
    is bright when it saturated (:attr:`DetectorImage.saturated`) or when the
    ``median`` x ``median`` median of the exposure around it reaches ``level``:
    a star core or a trace a few pixels wide passes, a cosmic-ray track one or
    two pixels wide, a lone hot pixel or noise does not. Saturated pixels enter
    the median as infinitely bright, pixels without data as infinitely faint.

    Parameters
    ----------
    prev
        The previous exposure's detector, in electrons.
    level
        Electrons at and above which the median-filtered fluence is bright.
    dilation
        Pixels by which bright regions are grown (8-connected); 0 = none.
    median
        Side of the median filter in pixels; 1 = none.

    Returns
    -------
    ndarray
        Boolean map.
    """
    filled = np.where(prev.saturated, np.inf, np.nan_to_num(prev.data, nan=-np.inf))
    if median > 1:
        filled = ndimage.median_filter(filled, size=median, mode="nearest")
    bright = prev.saturated | (filled >= level)
    if dilation > 0:
        bright = ndimage.binary_dilation(bright, np.ones((3, 3), bool), iterations=dilation)
    return bright


def label_bright_map(prev: DetectorImage, cfg: LabelParams) -> np.ndarray:
    """:func:`bright_map` with the ``label`` settings, as the label, pseudo-mask and heuristic code use it."""
    return bright_map(prev, cfg.bright_level, cfg.bright_dilation, cfg.bright_median)
