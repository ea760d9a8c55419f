"""Choosing the number of clusters: Gaussian mixtures scored by BIC/AIC, K-means for comparison.

A mixture is fitted for every count in a range; the count is chosen by a
documented rule:

- ``bic`` (default): the count with the minimum Bayesian information criterion;
- ``aic``: the count with the minimum Akaike information criterion;
- ``elbow``: the knee of the BIC curve, the count farthest from the straight
  line joining the curve's first and last points (both axes scaled to [0, 1]);
  it picks fewer clusters than ``bic`` when BIC keeps falling slowly.

K-means over the same counts gives inertia and a silhouette score (on a seeded
subsample), so the two clusterings can be compared as the study did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from tqdm import tqdm

from slewdark.errors import SlewdarkError

log = logging.getLogger(__name__)

CovarianceType = Literal["full", "tied", "diag", "spherical"]
SelectionRule = Literal["bic", "aic", "elbow"]


@dataclass
class MixtureSelection:
    """Scores of the mixtures over a range of counts and the chosen one.

    Attributes
    ----------
    counts
        The numbers of components fitted (a count whose fit collapses is skipped).
    bic, aic
        Information criteria, one per count (lower is better).
    chosen
        The selected number of components.
    model
        The mixture fitted with ``chosen`` components.
    """

    counts: np.ndarray
    bic: np.ndarray
    aic: np.ndarray
    chosen: int
    model: GaussianMixture


@dataclass
class KMeansScores:
    """K-means inertia and silhouette over the same counts as the mixtures."""

    counts: np.ndarray
    inertia: np.ndarray
    silhouette: np.ndarray


def usable_counts(counts: range | list[int], n_points: int) -> np.ndarray:
    """The counts that can be fitted to ``n_points`` points (at most ``n_points - 1``, at least 2).

    Raises
    ------
    SlewdarkError
        When none is left.
    """
    kept = np.array([k for k in counts if 2 <= k < n_points], dtype=int)
    if kept.size == 0:
        raise SlewdarkError(f"no cluster count in {list(counts)} can be fitted to {n_points} points")
    return kept


def elbow_index(values: np.ndarray) -> int:
    """Index of the knee of a curve: the point farthest from the chord joining its ends.

    Parameters
    ----------
    values
        Curve values at equally meaningful, increasing abscissae.

    Returns
    -------
    int
        Index into ``values``; 0 for curves of fewer than three points.
    """
    if len(values) < 3:
        return 0
    x = np.linspace(0.0, 1.0, len(values))
    span = np.ptp(values)
    y = (values - values.min()) / span if span > 0 else np.zeros_like(values, dtype=float)
    # distance of each point to the chord from (0, y0) to (1, y1)
    dx, dy = 1.0, y[-1] - y[0]
    distance = np.abs(dy * x - dx * (y - y[0])) / np.hypot(dx, dy)
    return int(np.argmax(distance))


def choose_count(counts: np.ndarray, bic: np.ndarray, aic: np.ndarray, rule: SelectionRule) -> int:
    """Apply the selection rule (see the module docstring) and return the chosen count."""
    if rule == "bic":
        return int(counts[np.argmin(bic)])
    if rule == "aic":
        return int(counts[np.argmin(aic)])
    if rule == "elbow":
        return int(counts[elbow_index(bic)])
    raise SlewdarkError(f"unknown cluster-count selection rule {rule!r} (use bic, aic or elbow)")


def fit_mixture(
    points: np.ndarray, n_components: int, covariance_type: CovarianceType, n_init: int, seed: int
) -> GaussianMixture:
    """Fit one Gaussian mixture with a fixed seed."""
    return GaussianMixture(
        n_components=n_components, covariance_type=covariance_type, n_init=n_init, random_state=seed
    ).fit(points)


def select_mixture(
    points: np.ndarray,
    counts: range | list[int],
    *,
    covariance_type: CovarianceType,
    rule: SelectionRule,
    n_init: int,
    seed: int,
    progress: bool = False,
) -> MixtureSelection:
    """Fit a mixture for every count, score it by BIC and AIC, keep the chosen one.

    Parameters
    ----------
    points
        (n, d) points of the clustering space (the UMAP embedding).
    counts
        Numbers of components to try; counts that ``n`` points cannot support are skipped, and so
        are counts whose fit fails because a component collapses onto identical points.
    covariance_type
        ``full``, ``tied``, ``diag`` or ``spherical``.
    rule
        ``bic``, ``aic`` or ``elbow`` (module docstring).
    n_init
        Initialisations per fit; the best is kept.
    seed
        Random state of every fit.
    progress
        Show a tqdm progress bar.

    Returns
    -------
    MixtureSelection
    """
    tried = usable_counts(counts, len(points))
    models: dict[int, GaussianMixture] = {}
    for k in tqdm(tried, desc="GMM counts", disable=not progress):
        try:
            models[int(k)] = fit_mixture(points, int(k), covariance_type, n_init, seed)
        except ValueError:
            log.warning("%d components: a component collapsed onto identical points; count skipped", k)
    if not models:
        raise SlewdarkError(
            f"no Gaussian mixture of {tried[0]}..{tried[-1]} components fits these {len(points)} points: "
            "components collapse onto identical points (raise umap.n_neighbors or umap.min_dist)"
        )
    fitted = np.array(list(models), dtype=int)
    bic = np.array([model.bic(points) for model in models.values()])
    aic = np.array([model.aic(points) for model in models.values()])
    chosen = choose_count(fitted, bic, aic, rule)
    log.info("chose %d components by %s among %d..%d", chosen, rule, tried[0], tried[-1])
    return MixtureSelection(counts=fitted, bic=bic, aic=aic, chosen=chosen, model=models[chosen])


def kmeans_scores(
    points: np.ndarray, counts: np.ndarray, *, silhouette_max_points: int, seed: int
) -> KMeansScores:
    """K-means inertia and silhouette for every count.

    Parameters
    ----------
    points
        (n, d) points of the clustering space.
    counts
        Numbers of clusters (as tried for the mixtures).
    silhouette_max_points
        The silhouette is computed on a seeded subsample of at most this many points.
    seed
        Random state of K-means and of the subsample.

    Returns
    -------
    KMeansScores
    """
    inertia = np.empty(len(counts))
    silhouette = np.empty(len(counts))
    sample = min(silhouette_max_points, len(points))
    for i, k in enumerate(counts):
        model = fit_kmeans(points, int(k), seed)
        inertia[i] = model.inertia_
        silhouette[i] = silhouette_score(points, model.labels_, sample_size=sample, random_state=seed)
    return KMeansScores(counts=np.asarray(counts), inertia=inertia, silhouette=silhouette)


def fit_kmeans(points: np.ndarray, n_clusters: int, seed: int) -> KMeans:
    """K-means with ``n_clusters`` on ``(n, d)`` points, seeded (one initialisation)."""
    return KMeans(n_clusters=n_clusters, n_init=1, random_state=seed).fit(points)


def _precision_cholesky(model: GaussianMixture, component: int) -> np.ndarray:
    """The (d, d) Cholesky factor of one component's precision, whatever the covariance type."""
    factor = model.precisions_cholesky_
    d = model.means_.shape[1]
    if model.covariance_type == "full":
        return factor[component]
    if model.covariance_type == "tied":
        return factor
    if model.covariance_type == "diag":
        return np.diag(factor[component])
    return factor[component] * np.eye(d)


def assign_components(
    model: GaussianMixture, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Most probable component, its posterior probability and the Mahalanobis distance to it.

    Parameters
    ----------
    model
        A fitted mixture.
    points
        (n, d) points in the mixture's space.

    Returns
    -------
    component : numpy.ndarray
        int (n,), local component index.
    probability : numpy.ndarray
        float32 (n,), posterior probability of that component.
    distance : numpy.ndarray
        float32 (n,), Mahalanobis distance to that component's mean (in standard deviations).
    """
    posterior = model.predict_proba(points)
    component = posterior.argmax(axis=1)
    probability = posterior[np.arange(len(points)), component].astype(np.float32)
    distance = np.empty(len(points), dtype=np.float32)
    for k in np.unique(component):
        rows = component == k
        distance[rows] = mahalanobis(model, points[rows], int(k))
    return component, probability, distance


def mahalanobis(model: GaussianMixture, points: np.ndarray, component: int) -> np.ndarray:
    """Mahalanobis distance (standard deviations) of ``(n, d)`` points to one component's mean."""
    whitened = (points - model.means_[component]) @ _precision_cholesky(model, component)
    return np.linalg.norm(whitened, axis=1).astype(np.float32)
