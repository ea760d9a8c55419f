"""UMAP of latent vectors: fit on a subsample, transform the rest in chunks.

The reducer is fitted once on at most a few tens of thousands of latent vectors
and saved with joblib, so every other patch (and every patch of a new exposure)
is transformed into the same space without refitting (the reducer is saved with
its group's mixture, :mod:`slewdark.latent.neighbourhood`). Transforming in
chunks of a fixed size keeps memory bounded and the result reproducible: UMAP's
transform is seeded (``transform_seed``), so the same chunks give the same embedding.
"""

from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm
from umap import UMAP

from slewdark.errors import SlewdarkError

log = logging.getLogger(__name__)


def fit_reducer(
    latents: np.ndarray,
    *,
    n_components: int,
    n_neighbors: int,
    min_dist: float,
    metric: str,
    seed: int,
) -> UMAP:
    """Fit UMAP on latent vectors.

    Parameters
    ----------
    latents
        (n, D) latent vectors of the fit subsample.
    n_components
        Dimension of the embedding.
    n_neighbors
        Size of the local neighbourhood UMAP preserves (clipped to ``n - 1``).
    min_dist
        Minimum distance between embedded points; 0 packs clusters tightly.
    metric
        Distance in the latent space (``euclidean``, ``cosine``, ...).
    seed
        Random state; fixing it makes UMAP single-threaded and reproducible.

    Returns
    -------
    umap.UMAP
        The fitted reducer; ``reducer.embedding_`` holds the (n, n_components) embedding.
    """
    n = len(latents)
    if n < 3:
        raise SlewdarkError(f"UMAP needs at least 3 latent vectors to fit, got {n}")
    reducer = UMAP(
        n_components=n_components,
        n_neighbors=min(n_neighbors, n - 1),
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        transform_seed=seed,
        n_jobs=1,
    )
    log.info("fitting UMAP to %d latent vectors of dimension %d", n, latents.shape[1])
    reducer.fit(np.asarray(latents, dtype=np.float32))
    return reducer


def transform_in_chunks(
    reducer: UMAP,
    latents: np.ndarray,
    chunk_size: int,
    rows: np.ndarray | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Embed latent vectors with a fitted reducer, a chunk at a time.

    Parameters
    ----------
    reducer
        A fitted UMAP.
    latents
        (N, D) latent vectors; may be a memory map, read one chunk at a time.
    chunk_size
        Vectors per chunk; bounds memory and fixes the result for a given size.
    rows
        Indices of the vectors to embed, in output order; None embeds all.
    progress
        Show a tqdm progress bar.

    Returns
    -------
    numpy.ndarray
        float32 (len(rows), n_components).
    """
    rows = np.arange(len(latents)) if rows is None else np.asarray(rows)
    out = np.empty((len(rows), reducer.n_components), dtype=np.float32)
    starts = range(0, len(rows), chunk_size)
    for start in tqdm(starts, desc="UMAP transform", unit="chunk", disable=not progress):
        chunk = np.asarray(latents[rows[start : start + chunk_size]], dtype=np.float32)
        out[start : start + len(chunk)] = reducer.transform(chunk)
    return out


def embed_rows(
    reducer: UMAP, latents: np.ndarray, rows: np.ndarray, fitted_rows: np.ndarray, chunk_size: int
) -> np.ndarray:
    """Embedding of some rows: the fit's own embedding where the reducer was fitted, else transformed.

    Parameters
    ----------
    reducer
        A reducer fitted on ``latents[fitted_rows]``.
    latents
        (N, D) latent vectors (may be a memory map).
    rows
        Sorted rows to embed.
    fitted_rows
        Sorted rows the reducer was fitted on, in fit order; empty for new data.
    chunk_size
        Vectors transformed at a time.

    Returns
    -------
    numpy.ndarray
        float32 (len(rows), n_components).
    """
    out = np.empty((len(rows), reducer.n_components), dtype=np.float32)
    fitted = np.isin(rows, fitted_rows)
    if fitted.any():
        out[fitted] = reducer.embedding_[np.searchsorted(fitted_rows, rows[fitted])]
    out[~fitted] = transform_in_chunks(reducer, latents, chunk_size, rows=rows[~fitted])
    return out
