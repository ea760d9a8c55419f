"""Classify patches without refitting: the fitted space of each group and its neighbourhoods.

A :class:`GroupModel` holds what the ``cluster`` stage fitted for one group
(UMAP reducer, chosen Gaussian mixture, the global id of its first cluster).
Patches of exposures not used to fit are transformed with the saved reducer and
assigned to the most probable mixture component, with its posterior probability
and the Mahalanobis distance to the component centre.

Neighbourhood rule: a patch is *in the neighbourhood* of its cluster when that
distance is at most ``threshold`` standard deviations. In a 2-D clustering space a
Gaussian component holds ``1 - exp(-t^2 / 2)`` of its own points within
distance ``t`` (98.9 % for ``t = 3``), so points beyond the threshold are ones the
clusters of the training data do not explain.

The study's next steps 2-3 (:func:`in_labelled_neighbourhood`): once clusters
are labelled, a patch is persistence when it falls inside the neighbourhood of
*any* persistence cluster of its group, not only when its most probable cluster
is one: patches on the edge between a persistence cluster and a background one
are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.mixture import GaussianMixture
from umap import UMAP

from slewdark.errors import SlewdarkError
from slewdark.io.atomic import atomic_path
from slewdark.latent.mixture import assign_components, mahalanobis
from slewdark.latent.reduce import embed_rows

MODEL_SUFFIX = ".joblib"


@dataclass
class GroupModel:
    """The fitted clustering space of one group.

    Attributes
    ----------
    group
        Group name (channel number, or ``all``).
    reducer
        UMAP from latent space to the clustering space.
    mixture
        The chosen Gaussian mixture in that space.
    first_cluster
        Global cluster id of local component 0.
    view
        A 2-D UMAP for pictures when the clustering space is not 2-D, else None.
    """

    group: str
    reducer: UMAP
    mixture: GaussianMixture
    first_cluster: int
    view: UMAP | None = None

    @property
    def cluster_ids(self) -> np.ndarray:
        """Global ids of this group's clusters, in local component order."""
        return self.first_cluster + np.arange(self.mixture.n_components)


@dataclass
class Classification:
    """Cluster of each patch in one group, and how well its cluster explains it.

    Attributes
    ----------
    embedding
        (n, k) points in the clustering space.
    view
        (n, 2) points in the 2-D picture space.
    cluster
        Global cluster id.
    probability
        Posterior probability of that cluster.
    distance
        Mahalanobis distance to its centre (standard deviations).
    in_neighbourhood
        ``distance <= threshold``.
    """

    embedding: np.ndarray
    view: np.ndarray
    cluster: np.ndarray
    probability: np.ndarray
    distance: np.ndarray
    in_neighbourhood: np.ndarray


def classify_rows(
    model: GroupModel,
    latents: np.ndarray,
    rows: np.ndarray,
    threshold: float,
    chunk_size: int,
    fitted_rows: np.ndarray | None = None,
) -> Classification:
    """Embed latent vectors with the group's saved reducer and assign them to its clusters.

    Parameters
    ----------
    model
        The group's fitted model.
    latents
        (N, D) latent vectors (may be a memory map, read in chunks).
    rows
        Sorted rows of this group to classify.
    threshold
        Mahalanobis distance (standard deviations) bounding a cluster's neighbourhood.
    chunk_size
        Vectors transformed at a time.
    fitted_rows
        Rows the reducer was fitted on (their fitted embedding is reused); None for new data.

    Returns
    -------
    Classification
    """
    fitted = np.empty(0, dtype=int) if fitted_rows is None else fitted_rows
    embedding = embed_rows(model.reducer, latents, rows, fitted, chunk_size)
    view = (
        embedding[:, :2] if model.view is None else embed_rows(model.view, latents, rows, fitted, chunk_size)
    )
    component, probability, distance = assign_components(model.mixture, embedding)
    return Classification(
        embedding=embedding,
        view=view,
        cluster=model.first_cluster + component,
        probability=probability,
        distance=distance,
        in_neighbourhood=distance <= threshold,
    )


def save_group_model(model: GroupModel, folder: str | Path) -> Path:
    """Write ``folder/<group>.joblib`` atomically and return its path."""
    path = Path(folder) / f"{model.group}{MODEL_SUFFIX}"
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)
    return path


def load_group_models(folder: str | Path) -> dict[str, GroupModel]:
    """Read every group model written by :func:`save_group_model` in ``folder``.

    Raises
    ------
    SlewdarkError
        When the folder holds none, or a file is not a group model.
    """
    paths = sorted(Path(folder).glob(f"*{MODEL_SUFFIX}"))
    if not paths:
        raise SlewdarkError(f"{folder}: no fitted cluster models (run `slewdark cluster` first)")
    models = {}
    for path in paths:
        model = joblib.load(path)
        if not isinstance(model, GroupModel):
            raise SlewdarkError(f"{path}: not a cluster model written by slewdark cluster")
        models[model.group] = model
    return models


def in_labelled_neighbourhood(
    models: dict[str, GroupModel],
    groups: np.ndarray,
    embedding: np.ndarray,
    labelled: set[int],
    threshold: float,
) -> np.ndarray:
    """Per patch: within ``threshold`` standard deviations of a labelled cluster of its group.

    Parameters
    ----------
    models
        Group models (:func:`load_group_models`).
    groups
        Group name of every patch.
    embedding
        (n, k) points of the patches in their group's clustering space.
    labelled
        Global ids of the labelled (persistence) clusters.
    threshold
        Mahalanobis distance bounding a neighbourhood.

    Returns
    -------
    ndarray
        bool (n,).

    Raises
    ------
    SlewdarkError
        When a patch's group has no model.
    """
    inside = np.zeros(len(groups), dtype=bool)
    for group in np.unique(groups):
        if str(group) not in models:
            raise SlewdarkError(f"group {group}: no fitted cluster model (run `slewdark cluster` again)")
        model = models[str(group)]
        rows = np.flatnonzero(groups == group)
        for local, cluster in enumerate(model.cluster_ids):
            if int(cluster) in labelled:
                inside[rows] |= mahalanobis(model.mixture, embedding[rows], local) <= threshold
    return inside
