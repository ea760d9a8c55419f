"""Evaluation only: the labels and pseudo-masks against the simulator's truth (``pseudomask_quality`` stage).

Nothing here feeds a decision: the ``embed``, ``cluster``, ``label`` and
``pseudomask`` stages never import this module or read truth (their DVC stages
do not depend on any truth path).

- Clusters (``pseudomask.quality.metrics_cluster``): the clustering against the
  patch truth (adjusted Rand index, purity, :func:`slewdark.evaluation.diagnostics.clustering_scores`),
  with the composition of every cluster in ``<plots>/purity.csv``, and the
  median reconstruction loss of the autoencoder per true patch class.

- Labels (``pseudomask.quality.metrics_label``): a cluster truly holds
  persistence when at least ``cluster_truth_fraction`` of its patches are
  ``persistence`` in ``data/truth/patch_truth.csv``; cluster-level precision and
  recall of the ``persistence`` decisions, and patch-level precision and recall
  of "in a persistence cluster" against the patch truth.
- Pseudo-masks (``pseudomask.quality.metrics``): pixel precision, recall, F1 and
  IoU, object recall and recall per persistence-amplitude bin, with the
  ``evaluate`` stage's definitions (:class:`slewdark.core.metrics.MethodScore`,
  ``evaluate.truth_threshold``, ``evaluate.amplitude_bins``), over the usable
  pixels; the same over the confident pixels only (``WEIGHT`` = 1), which is
  what the UNet loss trusts most. Truth files are read from ``data.train_truth``
  (beside the exposures when null).
- Pictures: slew dark | pseudo-mask | truth for the first
  ``sample_detectors`` detectors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from slewdark.config import Params
from slewdark.core.metrics import MethodScore, pr_thresholds, safe_ratio
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.errors import SlewdarkError
from slewdark.evaluation.diagnostics import cluster_composition, clustering_scores
from slewdark.evaluation.truth import TRUTH_CLASSES, read_truth, read_truth_classes, truth_file
from slewdark.io.atomic import write_text_atomic
from slewdark.io.clusters import read_assignments, read_labels
from slewdark.io.fits import read_detector
from slewdark.io.pseudomasks import pseudo_mask_path, read_pseudo_mask
from slewdark.io.tables import read_index, write_table
from slewdark.plots.figures import save_figure
from slewdark.plots.pseudomask import side_by_side

log = logging.getLogger(__name__)

STAGE = "pseudomask_quality"
PICTURE_BINNING = 4
PURITY_TABLE = "purity.csv"
PURITY_COLUMNS = ("cluster", "size", *TRUTH_CLASSES, "majority", "purity")


def read_patch_truth(path: str | Path, n_patches: int) -> np.ndarray:
    """The ``truth`` class of every patch, in patch order.

    Raises
    ------
    SlewdarkError
        When the table is missing, empty (real data) or does not match the patch index.
    """
    classes = read_truth_classes(path, n_patches)
    if classes is None:
        raise SlewdarkError(
            f"{path}: no patch truth for the {n_patches} patches (run 'slewdark patch-truth'; "
            "real data have none)"
        )
    return classes.astype(str)


def read_recon_loss(latent_dir: str | Path, n_patches: int) -> np.ndarray:
    """The ``embed`` stage's ``recon_loss.npy``, checked against the number of patches.

    Raises
    ------
    SlewdarkError
        When it is missing or does not match the patch index.
    """
    path = Path(latent_dir) / "recon_loss.npy"
    if not path.is_file():
        raise SlewdarkError(f"{path}: no reconstruction losses (run 'slewdark embed')")
    recon_loss = np.load(path)
    if recon_loss.shape != (n_patches,):
        raise SlewdarkError(
            f"{path}: shape {recon_loss.shape} does not match {n_patches} patches in index.csv"
        )
    return recon_loss


def cluster_quality(
    clusters: np.ndarray, patch_truth: np.ndarray, recon_loss: np.ndarray
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The clustering and the autoencoder's reconstruction loss against the patch truth.

    Parameters
    ----------
    clusters
        Cluster id of every patch.
    patch_truth
        Truth class of every patch.
    recon_loss
        Reconstruction loss of every patch.

    Returns
    -------
    metrics : dict
        ``clustering`` (:func:`~slewdark.evaluation.diagnostics.clustering_scores`) and
        ``recon_loss_median`` (per true class present).
    purity : list of dict
        One row of :data:`PURITY_COLUMNS` per cluster.
    """
    composition = cluster_composition(clusters, patch_truth)
    medians = {
        name: float(np.median(recon_loss[patch_truth == name]))
        for name in TRUTH_CLASSES
        if np.any(patch_truth == name)
    }
    metrics = {"clustering": clustering_scores(clusters, patch_truth), "recon_loss_median": medians}
    return metrics, [{"cluster": c, **v} for c, v in composition.items()]


def label_quality(
    clusters: np.ndarray, decisions: list[dict[str, Any]], patch_truth: np.ndarray, truth_fraction: float
) -> dict[str, Any]:
    """Cluster- and patch-level precision and recall of the persistence decisions.

    Parameters
    ----------
    clusters
        Cluster id of every patch.
    decisions
        Entries of ``clusters.yaml``.
    patch_truth
        Truth class of every patch.
    truth_fraction
        Share of persistence patches that makes a cluster truly persistence.

    Returns
    -------
    dict
        ``clusters`` and ``patches`` blocks with precision, recall, F1 and counts.
    """
    is_pers = patch_truth == "persistence"
    labelled = {d["cluster"] for d in decisions if d["persistence"]}
    tp = fp = fn = 0
    for decision in decisions:
        members = clusters == decision["cluster"]
        truly = bool(members.any()) and float(is_pers[members].mean()) >= truth_fraction
        tp += int(decision["persistence"] and truly)
        fp += int(decision["persistence"] and not truly)
        fn += int(not decision["persistence"] and truly)
    in_labelled = np.isin(clusters, list(labelled))
    ptp = int((in_labelled & is_pers).sum())
    n_pred, n_true = int(in_labelled.sum()), int(is_pers.sum())
    return {
        "clusters": _scores(tp, tp + fp, tp + fn) | {"n_clusters": len(decisions)},
        "patches": _scores(ptp, n_pred, n_true) | {"n_patches": len(clusters)},
    }


def _scores(tp: int, n_pred: int, n_true: int) -> dict[str, float | int]:
    """Precision, recall and F1 from true positives, predicted and true counts."""
    return {
        "precision": safe_ratio(tp, n_pred),
        "recall": safe_ratio(tp, n_true),
        "f1": safe_ratio(2 * tp, n_pred + n_true),
        "labelled": n_pred,
        "true": n_true,
    }


def mask_quality(params: Params) -> tuple[dict[str, Any], list[Path]]:
    """Pixel metrics of every pseudo-mask against truth, and the side-by-side pictures.

    Returns
    -------
    metrics : dict
        ``pixels`` (all usable pixels) and ``confident_pixels`` (WEIGHT = 1) summaries.
    pictures : list of Path
        PNG files written.
    """
    cfg, ev = params.pseudomask.quality, params.evaluate
    index = read_index(params.patches.out)
    edges = np.asarray(ev.amplitude_bins, dtype=np.float64)
    scores = {
        name: MethodScore(edges, pr_thresholds(ev.pr_thresholds), ev.object_hit_fraction)
        for name in ("pixels", "confident_pixels")
    }
    pictures: list[Path] = []
    pairs = list(dict.fromkeys(zip(index["exposure"], index["file"], index["detector"], strict=True)))
    for stem, file, detector in tqdm(pairs, desc="pseudomask quality", unit="detector"):
        mask, weight = read_pseudo_mask(pseudo_mask_path(params.pseudomask.out, stem), detector)
        image = read_detector(file, detector)
        truth = read_truth(truth_file(file, params.data.train_truth), detector)
        positive = image.usable & (truth.pers > ev.truth_threshold)
        for name, valid in (("pixels", image.usable), ("confident_pixels", image.usable & (weight >= 1.0))):
            scores[name].add(mask, None, truth.pers, positive & valid, truth.cr, truth.hot, valid)
        if len(pictures) < cfg.sample_detectors:
            stretched = scale_detector(image.data, image.usable, Scaling(**params.scaling.model_dump())).image
            figure = side_by_side(stretched, mask, positive, f"{stem} DET{detector}", PICTURE_BINNING)
            path = Path(cfg.plots) / f"{stem}_DET{detector}.png"
            save_figure(figure, path)
            pictures.append(path)
    metrics = {}
    for name, score in scores.items():
        summary = score.summary()
        metrics[name] = {k: v for k, v in summary.items() if k != "detectors"}
    metrics["detectors"] = len(pairs)
    metrics["truth_threshold"] = ev.truth_threshold
    return metrics, pictures


def run_quality(params: Params) -> dict[str, Any]:
    """Run the ``pseudomask_quality`` stage: write the three metrics files, the pictures, log to MLflow.

    Returns
    -------
    dict
        The pseudo-mask metrics (``pixels``, ``confident_pixels``, ...), with the
        label metrics under ``labels`` and the cluster metrics under ``clusters``.
    """
    from slewdark.ops.tracking import flatten, stage_run

    cfg = params.pseudomask.quality
    index = read_index(params.patches.out)
    n = len(index["patch"])
    clusters = read_assignments(params.cluster.out, n)["cluster"]
    patch_truth = read_patch_truth(params.patch_truth.out, n)
    labels = label_quality(clusters, read_labels(params.label.out), patch_truth, cfg.cluster_truth_fraction)
    write_text_atomic(cfg.metrics_label, json.dumps(labels, indent=1) + "\n")
    cluster_metrics, purity = cluster_quality(clusters, patch_truth, read_recon_loss(params.embed.out, n))
    write_text_atomic(cfg.metrics_cluster, json.dumps(cluster_metrics, indent=1) + "\n")
    purity_table = Path(cfg.plots) / PURITY_TABLE
    write_table(purity_table, purity, PURITY_COLUMNS)
    masks, pictures = mask_quality(params)
    write_text_atomic(cfg.metrics, json.dumps(masks, indent=1) + "\n")
    logged = {"quality": cfg.model_dump(), "evaluate.truth_threshold": params.evaluate.truth_threshold}
    with stage_run(STAGE, params.tracking.uri, params.tracking.experiment, logged) as run:
        for level in ("clusters", "patches"):
            run.log_metrics({f"label.{level}.{k}": v for k, v in labels[level].items()})
        run.log_metrics(flatten(cluster_metrics, "cluster_truth."))
        for level in ("pixels", "confident_pixels"):
            flat = {k: v for k, v in masks[level].items() if isinstance(v, int | float)}
            flat |= {f"recall_{k}": v for k, v in masks[level]["recall_by_amplitude"].items()}
            run.log_metrics({f"pseudomask.{level}.{k}".replace(">=", "ge"): v for k, v in flat.items()})
        for path in (cfg.metrics_label, cfg.metrics, cfg.metrics_cluster, purity_table, *pictures):
            run.log_artifact(path)
    log.info("labels: %s", json.dumps(labels["clusters"]))
    log.info("clusters against truth: %s", json.dumps(cluster_metrics["clustering"]))
    return masks | {"labels": labels, "clusters": cluster_metrics}
