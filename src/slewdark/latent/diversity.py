"""Data diversity: the distribution of pairwise Euclidean distances between patches.

The study asked whether the large numbers of clusters it needed reflect real
diversity of the data; the distances between patches, before and after the
study's background removal, answer it. A seeded subsample keeps the number of
pairs bounded (``n (n - 1) / 2``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import pdist

from slewdark.core.background import remove_background


def pairwise_distances(patches: np.ndarray) -> np.ndarray:
    """Euclidean distance between every pair of patches.

    Parameters
    ----------
    patches
        (n, P, P) patches.

    Returns
    -------
    numpy.ndarray
        float32 (n (n - 1) / 2,), condensed pairwise distances.
    """
    stack = np.asarray(patches, dtype=np.float32)
    return pdist(stack.reshape(len(stack), -1), metric="euclidean").astype(np.float32)


def distance_summary(distances: np.ndarray) -> dict[str, float]:
    """Mean, median, 5th and 95th percentile, and coefficient of variation of distances."""
    mean = float(distances.mean())
    return {
        "mean": mean,
        "median": float(np.median(distances)),
        "p05": float(np.percentile(distances, 5)),
        "p95": float(np.percentile(distances, 95)),
        "cv": float(distances.std() / mean) if mean > 0 else 0.0,
    }


def remove_patch_backgrounds(
    patches: np.ndarray, usable: np.ndarray, threshold: float, mad_factor: float, min_neighbor: int
) -> np.ndarray:
    """The study's background removal applied to each patch on its own.

    Unlike the ``patches`` stage, which removes the background of whole
    detectors, the median and MAD here are those of each patch: a cheap
    approximation good enough for comparing distance distributions.

    Parameters
    ----------
    patches, usable
        (n, P, P) patches in [0, 1] and their usable-pixel masks.
    threshold, mad_factor, min_neighbor
        As in :func:`slewdark.core.background.remove_background`.

    Returns
    -------
    numpy.ndarray
        float32 (n, P, P).
    """
    return np.stack(
        [
            remove_background(np.asarray(patch), np.asarray(mask), threshold, mad_factor, min_neighbor)
            for patch, mask in zip(patches, usable, strict=True)
        ]
    )
