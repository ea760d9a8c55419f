"""The ``cluster`` stage: the study's latent-space analysis, reproducible and tracked.

Reads ``data/patches/`` (index, patches, usable masks), ``data/latents/latents.npy``
and, for pictures only, ``models/ae.pt``; never the truth (the clusters' purity
against it is scored by the evaluation-only ``pseudomask_quality`` stage).
Per group (one per horizontal channel, or all patches merged) it fits UMAP and
Gaussian mixtures on a bounded seeded subsample of the fit splits, chooses the
cluster count by BIC/AIC, and assigns *every* patch (all splits) with the fitted
models. Writes (``docs/products.md``):

- ``data/clusters/assignments.csv``, ``clusters.json``, ``models/<group>.joblib``;
- ``metrics/cluster.json``: counts, scores per group, data diversity;
- ``plots/cluster/``: ``selection.csv`` (BIC/AIC/K-means per count) and the figures;

and records the same scores and figures in one MLflow run.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from tqdm import tqdm

from slewdark.config import Params
from slewdark.core.instrument import is_spectroscopic
from slewdark.errors import SlewdarkError
from slewdark.io.atomic import atomic_path, write_text_atomic
from slewdark.io.fits import read_info
from slewdark.io.patches import open_patches
from slewdark.io.tables import read_index, write_table
from slewdark.latent.channels import MERGED_GROUP, cluster_offsets, patch_groups
from slewdark.latent.diversity import distance_summary, pairwise_distances, remove_patch_backgrounds
from slewdark.latent.fitting import GroupFit, fit_groups
from slewdark.latent.mixture import fit_kmeans
from slewdark.latent.neighbourhood import GroupModel, classify_rows, load_group_models, save_group_model
from slewdark.latent.saliency import latent_saliency
from slewdark.latent.sampling import sample_rows
from slewdark.ops.tracking import flatten, stage_run
from slewdark.plots import cluster as figures
from slewdark.plots.figures import save_figure

STAGE = "cluster"
ASSIGNMENT_COLUMNS = (
    "patch", "group", "cluster", "probability", "distance", "in_neighbourhood", "umap_x", "umap_y",
)  # fmt: skip


def load_latents(latent_dir: str | Path, n_patches: int) -> np.ndarray:
    """``latents.npy`` memory-mapped, checked against the number of patches.

    Raises
    ------
    SlewdarkError
        When it is missing or its rows do not match ``index.csv``.
    """
    path = Path(latent_dir) / "latents.npy"
    try:
        latents = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise SlewdarkError(f"{path}: no latent vectors (run 'slewdark embed' first)") from None
    if latents.ndim != 2 or len(latents) != n_patches:
        raise SlewdarkError(f"{path}: shape {latents.shape} does not match {n_patches} patches in index.csv")
    return latents


def assign_all(
    models: dict[str, GroupModel],
    groups: dict[str, np.ndarray],
    latents: np.ndarray,
    threshold: float,
    chunk_size: int,
    fitted_rows: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Classify every patch with its group's model.

    Parameters
    ----------
    models
        ``{group: GroupModel}``.
    groups
        ``{group: sorted rows}``, partitioning the patches.
    latents
        (N, D) latent vectors.
    threshold
        Neighbourhood bound (Mahalanobis distance).
    chunk_size
        Vectors transformed at a time.
    fitted_rows
        ``{group: rows the models were fitted on}`` (their fitted embedding is reused); None for new data.

    Returns
    -------
    dict
        Column arrays of :data:`ASSIGNMENT_COLUMNS`, in patch order.
    """
    n = len(latents)
    table: dict[str, np.ndarray] = {
        "patch": np.arange(n),
        "group": np.empty(n, dtype=object),
        "cluster": np.empty(n, dtype=np.int64),
        "probability": np.empty(n, dtype=np.float32),
        "distance": np.empty(n, dtype=np.float32),
        "in_neighbourhood": np.empty(n, dtype=bool),
        "umap_x": np.empty(n, dtype=np.float32),
        "umap_y": np.empty(n, dtype=np.float32),
    }
    for group, rows in tqdm(groups.items(), desc="assigning groups", unit="group"):
        if group not in models:
            raise SlewdarkError(f"no fitted cluster model for group {group!r} (known: {sorted(models)})")
        fitted = None if fitted_rows is None else fitted_rows[group]
        result = classify_rows(models[group], latents, rows, threshold, chunk_size, fitted)
        table["group"][rows] = group
        for name in ("cluster", "probability", "distance", "in_neighbourhood"):
            table[name][rows] = getattr(result, name)
        table["umap_x"][rows], table["umap_y"][rows] = result.view[:, 0], result.view[:, 1]
    return table


def write_assignments(path: str | Path, table: dict[str, np.ndarray]) -> None:
    """Write the assignment columns as CSV, row by row and atomically (``docs/products.md``)."""
    columns = [table[name] for name in ASSIGNMENT_COLUMNS]
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(ASSIGNMENT_COLUMNS)
        for p, g, c, pr, d, nb, x, y in zip(*columns, strict=True):
            writer.writerow((p, g, c, f"{pr:.6g}", f"{d:.6g}", int(nb), f"{x:.6g}", f"{y:.6g}"))


def classify_patches(
    patch_dir: str | Path, latent_dir: str | Path, model_dir: str | Path, out: str | Path, params: Params
) -> dict[str, np.ndarray]:
    """Classify the patches of exposures not used to fit, with the saved models; no refitting.

    Parameters
    ----------
    patch_dir
        Patches folder of the new exposures (its ``index.csv`` gives each patch's channel).
    latent_dir
        Their latent vectors (``latents.npy``), made by the same autoencoder.
    model_dir
        ``data/clusters/models`` of a ``cluster`` run.
    out
        CSV written with the columns of ``assignments.csv``.
    params
        Parameters (``cluster.neighbourhood_threshold``, ``umap.transform_chunk``).

    Returns
    -------
    dict
        The assignment columns.
    """
    index = read_index(patch_dir)
    latents = load_latents(latent_dir, len(index["patch"]))
    models = load_group_models(model_dir)
    mode = "merged" if MERGED_GROUP in models else "channelwise"
    groups = patch_groups(index["channel"], mode)
    table = assign_all(
        models, groups, latents, params.cluster.neighbourhood_threshold, params.umap.transform_chunk
    )
    write_assignments(out, table)
    return table


def _cluster_summary(fits: dict[str, GroupFit], models: dict[str, GroupModel], clusters: np.ndarray) -> dict:
    """``clusters.json``: per global id its group, local component, sizes and centre."""
    sizes = np.bincount(clusters, minlength=sum(m.mixture.n_components for m in models.values()))
    summary = {}
    for group, model in models.items():
        fitted = clusters[fits[group].fitted_rows]
        for component, cluster in enumerate(model.cluster_ids):
            summary[str(cluster)] = {
                "group": group,
                "component": component,
                "size": int(sizes[cluster]),
                "fit_size": int(np.sum(fitted == cluster)),
                "mean": [float(v) for v in model.mixture.means_[component]],
            }
    return summary


def _selection_rows(fits: dict[str, GroupFit]) -> list[dict[str, Any]]:
    """Rows of ``selection.csv``: per group and count, BIC, AIC and the K-means scores."""
    rows = []
    for group, fit in fits.items():
        sel = fit.selection
        for i, count in enumerate(sel.counts):
            row = {
                "group": group,
                "n_components": int(count),
                "bic": float(sel.bic[i]),
                "aic": float(sel.aic[i]),
            }
            row["chosen"] = int(count == sel.chosen)
            if fit.kmeans is not None:
                row["kmeans_inertia"] = float(fit.kmeans.inertia[i])
                row["kmeans_silhouette"] = float(fit.kmeans.silhouette[i])
            rows.append(row)
    return rows


def _group_metrics(fit: GroupFit, rows: np.ndarray) -> dict[str, float]:
    """Scores of one group at its chosen count."""
    sel = fit.selection
    chosen = int(np.flatnonzero(sel.counts == sel.chosen)[0])
    metrics = {
        "n_patches": len(rows),
        "n_fit": len(fit.fitted_rows),
        "n_clusters": sel.chosen,
        "bic": float(sel.bic[chosen]),
        "aic": float(sel.aic[chosen]),
    }
    if fit.kmeans is not None:
        metrics["kmeans_silhouette"] = float(fit.kmeans.silhouette[chosen])
    return metrics


def _highlight(requested: int | None, clusters: np.ndarray) -> int:
    """The cluster outlined on the detector maps: ``cluster.plots.highlight_cluster``, else the largest."""
    return int(np.bincount(clusters).argmax()) if requested is None else requested


def kmeans_clusters(
    table: dict[str, np.ndarray], fits: dict[str, GroupFit], wanted: np.ndarray, seed: int
) -> np.ndarray:
    """K-means cluster ids of the ``wanted`` patches, as the study maps them beside the GMM's.

    Per group, K-means with the mixture's chosen count is fitted on the group's
    fitted points in the 2-D UMAP space and assigns the group's wanted patches;
    ids are made global like the mixtures' (offset per group). Other patches get -1.
    """
    ids = np.full(len(table["cluster"]), -1, dtype=np.int64)
    offset = 0
    for group, fit in fits.items():
        points = np.column_stack([table["umap_x"], table["umap_y"]])
        model = fit_kmeans(points[fit.fitted_rows], fit.selection.chosen, seed)
        rows = np.flatnonzero(wanted & (table["group"] == group))
        if rows.size:
            ids[rows] = offset + model.predict(points[rows])
        offset += fit.selection.chosen
    return ids


def previous_kind_panels(
    index: dict[str, np.ndarray], clusters: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One detector's cluster map per kind of previous exposure (grism and tilt, or filter).

    The first exposure (in index order) of each ``PREVGWA`` and ``PREVTILT``,
    its first detector: what the study shows per grism and per tilt. Exposures
    whose header names no previous exposure are left out.
    """
    panels: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    seen: set[str] = set()
    for stem in dict.fromkeys(index["exposure"]):
        first = np.flatnonzero(index["exposure"] == stem)
        info = read_info(index["file"][first[0]])
        kind = previous_label(info.prev_gwa, info.prev_tilt)
        if kind is None or kind in seen:
            continue
        seen.add(kind)
        detector = index["detector"][first[0]]
        rows = first[index["detector"][first] == detector]
        panels[f"after {kind}: {stem} DET{detector}"] = (
            index["row"][rows],
            index["col"][rows],
            clusters[rows],
        )
    return panels


def previous_label(prev_gwa: str | None, prev_tilt: float | None) -> str | None:
    """``RGS000 tilt +4``, ``H``...: a previous exposure's grism and tilt, or filter; None when unknown."""
    if prev_gwa is None:
        return None
    if prev_tilt is None or not is_spectroscopic(prev_gwa):
        return prev_gwa
    return f"{prev_gwa} tilt {prev_tilt:+g}"


def _figures(
    params: Params,
    index: dict[str, np.ndarray],
    patches: np.ndarray,
    table: dict[str, np.ndarray],
    fits: dict[str, GroupFit],
    distances: dict[str, np.ndarray],
) -> dict[str, Figure]:
    """Every figure of the stage, by file name."""
    opts, seed = params.cluster.plots, params.seed
    clusters = table["cluster"]
    groups = {g: np.flatnonzero(table["group"] == g) for g in fits}
    out = {
        "umap.png": figures.umap_scatter(
            {
                g: (np.column_stack([table["umap_x"][r], table["umap_y"][r]]), clusters[r])
                for g, r in groups.items()
            },
            opts.scatter_max_points,
            seed,
        ),
        "selection.png": figures.selection_curves(
            {g: f.selection for g, f in fits.items()},
            {g: f.kmeans for g, f in fits.items() if f.kmeans is not None},
        ),
        "diversity.png": figures.distance_histograms(distances),
    }
    exposure = opts.exposure or str(index["exposure"][0])
    on_exposure = index["exposure"] == exposure
    if not on_exposure.any():
        raise SlewdarkError(f"cluster.plots.exposure: no patches of exposure {exposure!r} in index.csv")
    highlight = _highlight(opts.highlight_cluster, clusters)
    kmeans = kmeans_clusters(table, fits, on_exposure, seed)
    for detector in np.unique(index["detector"][on_exposure]):
        rows = np.flatnonzero(on_exposure & (index["detector"] == detector))
        where = index["row"][rows], index["col"][rows]
        title, name = f"{exposure} DET{detector}", f"{exposure}_DET{detector}.png"
        out[f"map_{name}"] = figures.detector_map(*where, clusters[rows], highlight, title)
        out[f"kmeans_map_{name}"] = figures.detector_map(
            *where, kmeans[rows], None, f"{title}, K-means with the mixtures' counts"
        )
    out["maps_by_previous.png"] = figures.detector_maps(previous_kind_panels(index, clusters))
    sizes = np.bincount(clusters)
    largest = [int(c) for c in np.argsort(-sizes, kind="stable")[: opts.gallery_clusters] if sizes[c] > 0]
    samples = {c: sample_rows(np.flatnonzero(clusters == c), opts.gallery_samples, seed) for c in largest}
    out["gallery.png"] = figures.cluster_gallery({c: np.asarray(patches[r]) for c, r in samples.items()})
    if opts.saliency_samples > 0:
        from slewdark.models.ae import load_autoencoder

        # the i-th sample of every gallery cluster before the (i+1)-th of any: many clusters shown
        ranked = [rows[i] for i in range(opts.gallery_samples) for rows in samples.values() if i < len(rows)]
        picked = np.sort(ranked[: opts.saliency_samples])
        model, _ = load_autoencoder(params.ae.model, "cpu")
        stack = np.asarray(patches[picked])
        maps = latent_saliency(model, stack, opts.saliency_unit)
        out["saliency.png"] = figures.saliency_figure(stack, maps, [f"cluster {c}" for c in clusters[picked]])
    return out


def run_cluster(params: Params) -> dict[str, Any]:
    """Run the ``cluster`` stage (module docstring) and return its metrics.

    Parameters
    ----------
    params
        All parameters; reads ``seed``, ``workers``, ``umap``, ``cluster``, ``patches.out``,
        ``patches.background``, ``embed.out``, ``ae.model``, ``tracking``.

    Returns
    -------
    dict
        The content of ``metrics/cluster.json``.
    """
    cfg, seed = params.cluster, params.seed
    index = read_index(params.patches.out)
    latents = load_latents(params.embed.out, len(index["patch"]))
    groups = patch_groups(index["channel"], cfg.mode)
    in_fit = np.isin(index["split"], cfg.fit_splits)
    for group, rows in groups.items():
        if not in_fit[rows].any():
            raise SlewdarkError(f"group {group}: no patches in the fit splits {cfg.fit_splits}")
    fit_rows = {group: rows[in_fit[rows]] for group, rows in groups.items()}
    fits = fit_groups(latents, fit_rows, params.umap, cfg, seed, params.workers)
    offsets = cluster_offsets({g: f.selection.chosen for g, f in fits.items()})
    models = {g: f.model(offsets[g]) for g, f in fits.items()}
    table = assign_all(
        models,
        groups,
        latents,
        cfg.neighbourhood_threshold,
        params.umap.transform_chunk,
        {g: f.fitted_rows for g, f in fits.items()},
    )

    out_dir, plot_dir = Path(cfg.out), Path(cfg.plots.out)
    for model in models.values():
        save_group_model(model, out_dir / "models")
    write_assignments(out_dir / "assignments.csv", table)
    summary = _cluster_summary(fits, models, table["cluster"])
    write_text_atomic(out_dir / "clusters.json", json.dumps(summary, indent=1) + "\n")
    selection = _selection_rows(fits)
    write_table(plot_dir / "selection.csv", selection, list(selection[0]))

    patches, usable = open_patches(params.patches.out)
    sampled = sample_rows(np.arange(len(latents)), cfg.diversity_max_patches, seed)
    bg = params.patches.background
    distances = {
        "as patched": pairwise_distances(patches[sampled]),
        "background removed": pairwise_distances(
            remove_patch_backgrounds(
                patches[sampled], usable[sampled], bg.threshold, bg.mad_factor, bg.min_neighbor
            )
        ),
    }
    metrics: dict[str, Any] = {
        "mode": cfg.mode,
        "n_patches": len(latents),
        "n_groups": len(groups),
        "n_clusters": len(summary),
        "in_neighbourhood_fraction": float(table["in_neighbourhood"].mean()),
        "groups": {g: _group_metrics(fits[g], groups[g]) for g in fits},
        "diversity": {
            "raw": distance_summary(distances["as patched"]),
            "background_removed": distance_summary(distances["background removed"]),
        },
    }
    write_text_atomic(cfg.metrics, json.dumps(metrics, indent=1) + "\n")

    run_params = {
        "seed": seed,
        "umap": params.umap.model_dump(mode="json"),
        "cluster": cfg.model_dump(mode="json"),
    }
    with stage_run(STAGE, params.tracking.uri, params.tracking.experiment, params=run_params) as run:
        run.log_metrics(
            {
                k: v
                for k, v in flatten(metrics).items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        )
        for group, fit in fits.items():
            for count, bic, aic in zip(
                fit.selection.counts, fit.selection.bic, fit.selection.aic, strict=True
            ):
                run.log_metrics({f"bic.{group}": bic, f"aic.{group}": aic}, step=int(count))
        pictures = _figures(params, index, patches, table, fits, distances)
        for name, figure in pictures.items():
            save_figure(figure, plot_dir / name)
            run.log_artifact(plot_dir / name, "plots")
        for path in (cfg.metrics, plot_dir / "selection.csv", out_dir / "clusters.json"):
            run.log_artifact(path)
        metrics["mlflow_run_id"] = run.run_id
    return metrics
