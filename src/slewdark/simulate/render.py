"""Vectorised drawing on a detector: splat weighted points, then blur.

Every extended feature of the simulator (spectral traces, point sources, cosmic-ray
tracks) is a set of weighted points; :func:`splat` accumulates them bilinearly into
an image with one ``np.bincount`` per corner, and a Gaussian blur gives them their
width. This keeps a 2040x2040 detector at well under a second per layer.
:func:`orient` maps the sky frame onto a detector mounted in one of 8 ways.
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
    near = (x > -1) & (x < cols) & (y > -1) & (y < rows)
    x, y, weight = x[near], y[near], weight[near]
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    xi = np.concatenate([x0, x0 + 1, x0, x0 + 1])
    yi = np.concatenate([y0, y0, y0 + 1, y0 + 1])
    w = np.concatenate([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]) * np.tile(weight, 4)
    inside = (xi >= 0) & (xi < cols) & (yi >= 0) & (yi < rows)
    image = np.bincount(yi[inside] * cols + xi[inside], weights=w[inside], minlength=rows * cols)
    return image.reshape(shape)


def gaussian_spots(
    shape: tuple[int, int], x: np.ndarray, y: np.ndarray, peak: np.ndarray, sigma: float
) -> np.ndarray:
    """Gaussian spots of the given peaks and sigma (px), sampled at pixel centres to 4 sigma.

    Cheaper than splatting and blurring the whole image when spots are few.
    Returns float32.
    """
    rows, cols = shape
    offsets = np.arange(-int(np.ceil(4 * sigma)), int(np.ceil(4 * sigma)) + 1)
    xi = (np.rint(x)[:, None, None] + offsets[None, None, :]).astype(np.int64)
    yi = (np.rint(y)[:, None, None] + offsets[None, :, None]).astype(np.int64)
    distance2 = (xi - x[:, None, None]) ** 2 + (yi - y[:, None, None]) ** 2
    weight = peak[:, None, None] * np.exp(-distance2 / (2 * sigma**2))
    xi, yi, weight = np.broadcast_arrays(xi, yi, weight)
    inside = (xi >= 0) & (xi < cols) & (yi >= 0) & (yi < rows)
    image = np.bincount(yi[inside] * cols + xi[inside], weights=weight[inside], minlength=rows * cols)
    return image.reshape(shape).astype(np.float32)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (constant zero beyond the edges) to float32; sigma 0 only converts."""
    if sigma <= 0:
        return image.astype(np.float32)
    return ndimage.gaussian_filter(image.astype(np.float32), sigma, mode="constant", truncate=4.0)


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


def orient(image: np.ndarray, transform: int) -> np.ndarray:
    """Apply one of the 8 transforms of the dihedral group to a square image.

    ``transform`` k in 0..3 is ``np.rot90`` by k; 4..7 is a transpose followed by
    ``np.rot90`` by k - 4. 0 is the identity. Returns a C-contiguous array.
    """
    if transform not in range(8):
        raise ValueError(f"orientation must be 0..7, got {transform}")
    turned = image.T if transform >= 4 else image
    return np.ascontiguousarray(np.rot90(turned, transform % 4))
