"""Fit one group's clustering space: UMAP on a bounded subsample, then the cluster-count search.

Memory and time stay bounded whatever the data size: at most
``cluster.fit_max_patches`` latent vectors of a group (a seeded subsample of its
fit splits) are read and fitted; every other patch is later transformed with the
fitted reducer, a chunk at a time (:func:`slewdark.latent.reduce.embed_rows`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from umap import UMAP

from slewdark.config import ClusterParams, UmapParams
from slewdark.latent.mixture import KMeansScores, MixtureSelection, kmeans_scores, select_mixture
from slewdark.latent.neighbourhood import GroupModel
from slewdark.latent.reduce import fit_reducer
from slewdark.latent.sampling import sample_rows
from slewdark.ops.parallel import map_ordered

log = logging.getLogger(__name__)

VIEW_COMPONENTS = 2


@dataclass
class GroupFit:
    """Everything fitted for one group, before global cluster ids are given out.

    Attributes
    ----------
    group
        Group name.
    fitted_rows
        Sorted patch rows the reducer and mixtures were fitted on.
    reducer
        UMAP to the clustering space.
    view
        2-D UMAP for pictures when the clustering space is not 2-D, else None.
    selection
        Mixture scores over the counts and the chosen mixture.
    kmeans
        K-means scores over the same counts, or None when switched off.
    """

    group: str
    fitted_rows: np.ndarray
    reducer: UMAP
    view: UMAP | None
    selection: MixtureSelection
    kmeans: KMeansScores | None

    def model(self, first_cluster: int) -> GroupModel:
        """The group's model for classification, its clusters numbered from ``first_cluster``."""
        return GroupModel(self.group, self.reducer, self.selection.model, first_cluster, self.view)


@dataclass
class GroupJob:
    """What a worker needs to fit one group: its sampled rows and their latent vectors."""

    group: str
    fitted_rows: np.ndarray
    vectors: np.ndarray
    umap: UmapParams
    cluster: ClusterParams
    seed: int


def fit_groups(
    latents: np.ndarray,
    groups: dict[str, np.ndarray],
    umap: UmapParams,
    cluster: ClusterParams,
    seed: int,
    workers: int,
) -> dict[str, GroupFit]:
    """Fit each group's reducer, mixtures over the count range and (optionally) K-means.

    Each group is fitted on a seeded subsample of at most ``cluster.fit_max_patches``
    of its rows; the groups are fitted side by side on local Dask workers.

    Parameters
    ----------
    latents
        (N, D) latent vectors of all patches (may be a memory map).
    groups
        ``{group: sorted rows in the fit splits}``.
    umap, cluster
        The ``umap`` and ``cluster`` sections of the parameters.
    seed
        Seed of the subsamples, UMAP, the mixtures and K-means.
    workers
        Local worker processes (:func:`slewdark.ops.parallel.map_ordered`); the fits
        are the same whatever the number.

    Returns
    -------
    dict
        ``{group: GroupFit}`` in the order of ``groups``.
    """
    jobs = []
    for group, rows in groups.items():
        fitted_rows = sample_rows(rows, cluster.fit_max_patches, seed)
        log.info("group %s: fitting on %d of %d patches", group, len(fitted_rows), len(rows))
        vectors = np.asarray(latents[fitted_rows], dtype=np.float32)
        jobs.append(GroupJob(group, fitted_rows, vectors, umap, cluster, seed))
    fits = map_ordered(fit_job, jobs, workers, desc="fitting groups", unit="group")
    return {fit.group: fit for fit in fits}


def fit_job(job: GroupJob) -> GroupFit:
    """Fit one group on its sampled vectors (a task of :func:`fit_groups`)."""
    umap, cluster, seed = job.umap, job.cluster, job.seed
    settings = {
        "n_neighbors": umap.n_neighbors,
        "min_dist": umap.min_dist,
        "metric": umap.metric,
        "seed": seed,
    }
    reducer = fit_reducer(job.vectors, n_components=umap.n_components, **settings)
    view = (
        None
        if umap.n_components == VIEW_COMPONENTS
        else fit_reducer(job.vectors, n_components=VIEW_COMPONENTS, **settings)
    )
    points = reducer.embedding_
    selection = select_mixture(
        points,
        cluster.n_components.counts(),
        covariance_type=cluster.covariance_type,
        rule=cluster.selection,
        n_init=cluster.gmm_n_init,
        seed=seed,
    )
    kmeans = (
        kmeans_scores(
            points, selection.counts, silhouette_max_points=cluster.silhouette_max_patches, seed=seed
        )
        if cluster.kmeans
        else None
    )
    return GroupFit(job.group, job.fitted_rows, reducer, view, selection, kmeans)
