"""Diagnostics against simulation truth: evaluation only, never used to fit or label.

Each patch has a true class (``data/truth/patch_truth.csv``): ``persistence``,
``cosmic_ray``, ``hot_pixel`` or ``clean``. The purity of a cluster is the share
of its patches in its majority class; the adjusted Rand index compares the whole
clustering with the true classes (1 = identical partitions, about 0 = chance).
Together they tell whether the latent space separates persistence. Scored by
the evaluation-only ``pseudomask_quality`` stage, never by ``cluster``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import adjusted_rand_score

from slewdark.evaluation.truth import TRUTH_CLASSES


def cluster_composition(clusters: np.ndarray, truth: np.ndarray) -> dict[int, dict[str, float]]:
    """Size, class fractions, majority class and purity of each cluster.

    Parameters
    ----------
    clusters
        int (N,), cluster id of each patch.
    truth
        str (N,), true class of each patch (one of :data:`slewdark.evaluation.truth.TRUTH_CLASSES`).

    Returns
    -------
    dict
        ``{cluster: {"size", "<class>" fraction for each class, "majority", "purity"}}``.
    """
    clusters, truth = np.asarray(clusters), np.asarray(truth)
    composition: dict[int, dict[str, float]] = {}
    for cluster in np.unique(clusters):
        members = truth[clusters == cluster]
        fractions = {name: float(np.mean(members == name)) for name in TRUTH_CLASSES}
        majority = max(fractions, key=fractions.__getitem__)
        composition[int(cluster)] = {
            "size": int(members.size),
            **fractions,
            "majority": majority,
            "purity": fractions[majority],
        }
    return composition


def clustering_scores(clusters: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Whole-clustering scores against truth.

    Returns
    -------
    dict
        ``ari`` (adjusted Rand index), ``purity`` (size-weighted mean purity),
        ``persistence_purity_max`` (highest share of persistence in any cluster) and
        ``persistence_recall`` (share of persistence patches that sit in clusters
        whose majority is persistence).
    """
    composition = cluster_composition(clusters, truth)
    truth = np.asarray(truth)
    sizes = np.array([c["size"] for c in composition.values()])
    purities = np.array([c["purity"] for c in composition.values()])
    persistent = [k for k, c in composition.items() if c["majority"] == "persistence"]
    is_persistence = truth == "persistence"
    recall = np.mean(np.isin(clusters, persistent)[is_persistence]) if is_persistence.any() else 0.0
    return {
        "ari": float(adjusted_rand_score(truth, clusters)),
        "purity": float(np.sum(sizes * purities) / sizes.sum()),
        "persistence_purity_max": max(c["persistence"] for c in composition.values()),
        "persistence_recall": float(recall),
    }
