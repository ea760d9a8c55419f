"""Vectorised drawing on a detector: splat weighted points, then blur.

Every extended feature of the simulator (spectral traces, point sources, cosmic-ray
tracks) is a set of weighted points; :func:`splat` accumulates them bilinearly into
an image with one ``np.bincount`` per corner, and a Gaussian blur gives them their
width. This keeps a 2040x2040 detector at well under a second per layer.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def splat(shape: tuple[int, int], x: np.ndarray, y: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Accumulate weighted points into an image with bilinear interpolation.

    Parameters
    ----------
    shape
        (rows, cols) of the image.
    x, y
        Column and row coordinates (pixel centres at integers); points outside
        the image are dropped.
    weight
        Amount each point adds (its total is preserved for points inside).

    Returns
    -------
    numpy.ndarray
        float64 image.
    """
    rows, cols = shape
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    image = np.zeros(rows * cols)
    for dx, dy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0 + dx, y0 + dy
        inside = (xi >= 0) & (xi < cols) & (yi >= 0) & (yi < rows)
        image += np.bincount(
            yi[inside] * cols + xi[inside], weights=(weight * w)[inside], minlength=rows * cols
        )
    return image.reshape(shape)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (constant zero beyond the edges); sigma 0 returns the image."""
    if sigma <= 0:
        return image
    return ndimage.gaussian_filter(image, sigma, mode="constant", truncate=4.0)


def line_points(
    x0: np.ndarray, y0: np.ndarray, angle: np.ndarray, length: np.ndarray, step: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points every ``step`` pixels along straight segments, for many segments at once.

    Parameters
    ----------
    x0, y0
        Start of each segment.
    angle
        Direction of each segment in radians (0 = +x, counter-clockwise).
    length
        Length of each segment in pixels.
    step
        Spacing of the points.

    Returns
    -------
    x, y, owner, t
        Point coordinates, the index of the segment each belongs to, and the
        fractional position along its segment in [0, 1].
    """
    counts = np.maximum(np.ceil(length / step).astype(np.int64), 1)
    owner = np.repeat(np.arange(len(length)), counts)
    first = np.cumsum(counts) - counts
    k = np.arange(owner.size) - first[owner]
    t = (k + 0.5) / counts[owner]
    distance = t * length[owner]
    x = x0[owner] + distance * np.cos(angle[owner])
    y = y0[owner] + distance * np.sin(angle[owner])
    return x, y, owner, t
