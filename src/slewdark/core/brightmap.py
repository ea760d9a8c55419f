"""The bright map: pixels of a previous exposure bright enough to leave persistence.

How bright is bright enough depends on the dark: the same fluence leaves fifty
times more persistence in a 300 s dark taken 30 s after the exposure than in a
50 s dark taken 1000 s after it (the law's ``t^-gamma`` decay). With
``label.bright_law`` the level is therefore set per dark, from its ``TSINCE``
and ``EXPTIME``: the fluence at which the assumed law
(``simulate.persistence``, its amplitude times ``bright_law.amplitude_factor``,
the brightest law the labels allow for) leaves ``bright_law.electrons``
(:func:`slewdark.core.persistence_law.fluence_leaving`). Without it, or for a
dark whose header lacks either time, the level is ``label.bright_level``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from slewdark.core.persistence_law import fluence_leaving

if TYPE_CHECKING:
    from slewdark.config import Params
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


def label_bright_level(params: Params, tsince: float | None, exptime: float | None) -> float:
    """The fluence (e-) from which the labels count a previous exposure as bright, for one dark.

    Parameters
    ----------
    params
        Validated params: ``label.bright_level`` and ``label.bright_law``, and the
        law (``simulate.persistence``) and full well (``simulate.detector.full_well``).
    tsince, exptime
        The dark's ``TSINCE`` and ``EXPTIME`` (s), None where its header lacks them.

    Returns
    -------
    float
        Electrons; ``inf`` when even a full well cannot leave ``bright_law.electrons``
        (then only saturated pixels are bright).
    """
    rule = params.label.bright_law
    if rule is None or tsince is None or exptime is None:
        return params.label.bright_level
    law = params.simulate.persistence
    brightest = law.model_copy(update={"amplitude": law.amplitude * rule.amplitude_factor})
    return fluence_leaving(rule.electrons, params.simulate.detector.full_well, tsince, exptime, brightest)


def label_bright_map(
    prev: DetectorImage, params: Params, tsince: float | None, exptime: float | None
) -> np.ndarray:
    """:func:`bright_map` with the ``label`` settings for a dark of this timing (:func:`label_bright_level`).

    The label, pseudo-mask and heuristic code all use it, so their bright maps agree.
    """
    cfg = params.label
    level = label_bright_level(params, tsince, exptime)
    return bright_map(prev, level, cfg.bright_dilation, cfg.bright_median)
