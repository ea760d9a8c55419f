"""The patch grid of a detector: where patches sit, their channel band, and cutting them out."""

from __future__ import annotations

import numpy as np


def patch_origins(height: int, width: int, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left pixel positions of the patches covering an image, row-major.

    Parameters
    ----------
    height, width
        Image shape.
    size, stride
        Patch side and step in pixels; patches that would cross the edge are not cut.

    Returns
    -------
    rows, cols : ndarray
        int64 arrays of equal length.
    """
    if size < 1 or stride < 1 or size > min(height, width):
        raise ValueError(f"patch size {size} and stride {stride} do not fit a {height}x{width} image")
    grid_rows, grid_cols = np.meshgrid(
        np.arange(0, height - size + 1, stride), np.arange(0, width - size + 1, stride), indexing="ij"
    )
    return grid_rows.ravel().astype(np.int64), grid_cols.ravel().astype(np.int64)


def patch_channels(rows: np.ndarray, size: int, height: int, n_channels: int) -> np.ndarray:
    """Horizontal band (channel) of each patch centre: ``floor(centre_row / (height / n_channels))``."""
    centre = np.asarray(rows, dtype=np.float64) + size / 2.0
    return np.minimum((centre * n_channels / height).astype(np.int64), n_channels - 1)


def cut_patches(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Copy the ``size`` x ``size`` patches with top-left corners ``(rows, cols)``: (n, size, size)."""
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return windows[rows, cols]
