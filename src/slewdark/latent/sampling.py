"""Seeded subsamples that keep the heavy fits bounded whatever the data size."""

from __future__ import annotations

import numpy as np


def sample_rows(rows: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Sorted, seeded choice of at most ``max_rows`` of ``rows`` (all of them when fewer).

    Parameters
    ----------
    rows
        Candidate row indices.
    max_rows
        Upper bound on the size of the subsample.
    seed
        Seed of the numpy Generator.

    Returns
    -------
    numpy.ndarray
        A sorted subset of ``rows``.
    """
    rows = np.asarray(rows)
    if len(rows) <= max_rows:
        return np.sort(rows)
    return np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
