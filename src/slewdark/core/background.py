"""The study's Solution 1 to its cluster diversity: remove the background before tiling.

On a detector already stretched to [0, 1], a pixel is kept only when it is
bright in absolute terms (at least ``threshold``) and bright relative to the
detector (above ``median + mad_factor * MAD / 0.6745``, the MAD scaled to a
Gaussian sigma); kept pixels that form connected regions (8-connectivity)
smaller than ``min_neighbor`` pixels are dropped as isolated noise. Everything
else, unusable pixels included, becomes 0. Working on the whole detector
rather than on each patch keeps regions that cross a patch border intact.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MAD_TO_SIGMA = 0.6745


def remove_background(
    image: np.ndarray, usable: np.ndarray, threshold: float, mad_factor: float, min_neighbor: int
) -> np.ndarray:
    """Zero the background of a normalised detector image.

    Parameters
    ----------
    image
        float image in [0, 1] (see :func:`slewdark.core.scaling.scale_detector`).
    usable
        Pixels with data; the others are background.
    threshold
        Absolute level in [0, 1] below which a pixel is background (study: 0.95).
    mad_factor
        Pixels must exceed ``median + mad_factor * MAD / 0.6745`` of the usable
        pixels (study: 0.5).
    min_neighbor
        Connected regions with fewer pixels are removed (study: 2).

    Returns
    -------
    ndarray
        float32 image of the same shape: kept pixels unchanged, the rest 0.
    """
    values = image[usable]
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    keep = usable & (image >= threshold) & (image > median + mad_factor * mad / MAD_TO_SIGMA)
    labels, n_regions = ndimage.label(keep, structure=np.ones((3, 3), dtype=bool))
    if n_regions:
        sizes = np.bincount(labels.ravel(), minlength=n_regions + 1)
        small = sizes < min_neighbor
        small[0] = True
        keep &= ~small[labels]
    return np.where(keep, image, 0.0).astype(np.float32)
