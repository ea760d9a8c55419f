"""Figures of the ``cluster`` stage: what a scientist looks at to judge the latent space.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot,
so figures can be made in worker processes and on machines without a display.
Cluster ids are coloured with a cyclic 20-colour map (``tab20``): neighbouring
ids differ in colour, and ids 20 apart share one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from slewdark.latent.mixture import KMeansScores, MixtureSelection
from slewdark.latent.sampling import sample_rows

CLUSTER_CMAP = "tab20"
N_COLOURS = 20


def _grid(n_panels: int, max_cols: int, panel_size: float) -> tuple[Figure, np.ndarray]:
    """A figure with ``n_panels`` axes in rows of at most ``max_cols``; unused axes hidden."""
    n_cols = min(n_panels, max_cols)
    n_rows = -(-n_panels // n_cols)
    fig = Figure(figsize=(panel_size * n_cols, panel_size * n_rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    return fig, axes[:n_panels]


def umap_scatter(views: Mapping[str, tuple[np.ndarray, np.ndarray]], max_points: int, seed: int) -> Figure:
    """UMAP scatter of each group, coloured by cluster, ids written at cluster medians.

    Parameters
    ----------
    views
        ``{group: (xy (n, 2), cluster ids (n,))}``.
    max_points
        Points drawn in all panels together (a seeded subsample).
    seed
        Seed of the subsample.
    """
    fig, axes = _grid(len(views), max_cols=5, panel_size=3.2)
    per_group = max(1, max_points // len(views))
    for ax, (group, (xy, clusters)) in zip(axes, views.items(), strict=True):
        shown = sample_rows(np.arange(len(xy)), per_group, seed)
        ax.scatter(
            xy[shown, 0], xy[shown, 1], c=clusters[shown] % N_COLOURS, cmap=CLUSTER_CMAP,
            vmin=0, vmax=N_COLOURS - 1, s=2, linewidths=0, rasterized=True,
        )  # fmt: skip
        for cluster in np.unique(clusters):
            centre = np.median(xy[clusters == cluster], axis=0)
            ax.text(*centre, str(cluster), fontsize=6, ha="center", va="center")
        ax.set_title(f"group {group}: {len(np.unique(clusters))} clusters", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("UMAP of the latent space, coloured by cluster")
    return fig


def selection_curves(
    selections: Mapping[str, MixtureSelection], kmeans: Mapping[str, KMeansScores]
) -> Figure:
    """BIC and AIC of the mixtures per group (chosen count marked), K-means inertia and silhouette.

    Parameters
    ----------
    selections
        ``{group: MixtureSelection}``.
    kmeans
        ``{group: KMeansScores}``; empty when K-means was not run (its panels then say so).
    """
    fig = Figure(figsize=(11, 8), layout="constrained")
    (ax_bic, ax_aic), (ax_inertia, ax_silhouette) = fig.subplots(2, 2)
    for group, sel in selections.items():
        chosen = int(np.flatnonzero(sel.counts == sel.chosen)[0])
        for ax, values in ((ax_bic, sel.bic), (ax_aic, sel.aic)):
            (line,) = ax.plot(sel.counts, values, lw=1, label=group)
            ax.plot(sel.counts[chosen], values[chosen], "o", color=line.get_color())
    for group, scores in kmeans.items():
        ax_inertia.plot(scores.counts, scores.inertia, lw=1, label=group)
        ax_silhouette.plot(scores.counts, scores.silhouette, lw=1, label=group)
    for ax, name in (
        (ax_bic, "BIC (dot: chosen count)"),
        (ax_aic, "AIC"),
        (ax_inertia, "K-means inertia"),
        (ax_silhouette, "K-means silhouette"),
    ):
        ax.set_xlabel("number of clusters")
        ax.set_title(name, fontsize=10)
        if ax.lines:
            ax.legend(title="group", fontsize=7, ncols=2)
        else:
            ax.text(0.5, 0.5, "K-means not run", ha="center", transform=ax.transAxes)
    return fig


def detector_map(
    rows: np.ndarray,
    cols: np.ndarray,
    clusters: np.ndarray,
    highlight: int | None,
    title: str,
) -> Figure:
    """Map of cluster ids over a detector's patch grid, one cluster's patches outlined in red.

    Parameters
    ----------
    rows, cols
        Top-left pixel of each patch of the detector.
    clusters
        Cluster id of each patch.
    highlight
        Cluster whose patches are outlined; None outlines none.
    title
        Figure title (exposure and detector).
    """
    fig = Figure(figsize=(8, 8), layout="constrained")
    _draw_map(fig.subplots(), rows, cols, clusters, highlight, title, labels=True)
    return fig


def detector_maps(panels: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Figure:
    """Cluster maps of several detectors side by side (e.g. one per kind of previous exposure).

    Parameters
    ----------
    panels
        Panel title to ``(rows, cols, clusters)`` of one detector's patches.
    """
    fig, axes = _grid(len(panels), max_cols=3, panel_size=4.0)
    for ax, (title, (rows, cols, clusters)) in zip(axes, panels.items(), strict=True):
        _draw_map(ax, rows, cols, clusters, None, title, labels=False)
    return fig


def _draw_map(
    ax: Axes,
    rows: np.ndarray,
    cols: np.ndarray,
    clusters: np.ndarray,
    highlight: int | None,
    title: str,
    labels: bool,
) -> None:
    """Draw one detector's cluster map (ids written in the cells when ``labels`` and the grid is small)."""
    grid_rows, r = np.unique(rows, return_inverse=True)
    grid_cols, c = np.unique(cols, return_inverse=True)
    ids = np.full((len(grid_rows), len(grid_cols)), -1)
    ids[r, c] = clusters
    ax.imshow(
        np.ma.masked_less(ids, 0) % N_COLOURS, cmap=CLUSTER_CMAP, vmin=0, vmax=N_COLOURS - 1,
        interpolation="nearest", origin="lower",
    )  # fmt: skip
    if labels and max(ids.shape) <= 40:
        for (i, j), value in np.ndenumerate(ids):
            if value >= 0:
                ax.text(j, i, str(value), fontsize=5, ha="center", va="center")
    if highlight is not None:
        for i, j in zip(*np.nonzero(ids == highlight), strict=True):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.2))
    ax.set_xlabel("patch column")
    ax.set_ylabel("patch row")
    outlined = "" if highlight is None else f" (cluster {highlight} outlined)"
    ax.set_title(f"{title}{outlined}", fontsize=10)


def cluster_gallery(samples: Mapping[int, np.ndarray]) -> Figure:
    """Sample patches of each cluster, one row per cluster.

    Parameters
    ----------
    samples
        ``{cluster id: (n, P, P) patches}``, rows in mapping order.
    """
    n_cols = max(len(patches) for patches in samples.values())
    fig = Figure(figsize=(1.2 * n_cols + 0.8, 1.2 * len(samples)), layout="constrained")
    axes = fig.subplots(len(samples), n_cols, squeeze=False)
    for ax_row, (cluster, patches) in zip(axes, samples.items(), strict=True):
        for j, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(patches):
                ax.imshow(patches[j], cmap="gray", vmin=0, vmax=1, origin="lower")
            else:
                ax.set_axis_off()
        ax_row[0].set_ylabel(f"cluster {cluster}", fontsize=8)
    fig.suptitle("Sample patches per cluster")
    return fig


def saliency_figure(patches: np.ndarray, maps: np.ndarray, titles: Sequence[str]) -> Figure:
    """Patches (top row) and their gradient saliency maps (bottom row)."""
    fig = Figure(figsize=(1.8 * len(patches), 4), layout="constrained")
    axes = fig.subplots(2, len(patches), squeeze=False)
    for j, (patch, saliency, title) in enumerate(zip(patches, maps, titles, strict=True)):
        axes[0, j].imshow(patch, cmap="gray", vmin=0, vmax=1, origin="lower")
        axes[1, j].imshow(saliency, cmap="inferno", vmin=0, vmax=1, origin="lower")
        axes[0, j].set_title(title, fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("patch")
    axes[1, 0].set_ylabel("saliency")
    fig.suptitle("Gradient saliency of the latent vector")
    return fig


def distance_histograms(distances: Mapping[str, np.ndarray]) -> Figure:
    """Histograms of pairwise Euclidean distances between patches, one per preprocessing."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    top = max(float(d.max()) for d in distances.values())
    bins = np.linspace(0.0, top if top > 0 else 1.0, 80)
    for name, values in distances.items():
        ax.hist(
            values, bins=bins, histtype="step", density=True, label=f"{name} (median {np.median(values):.2f})"
        )
    ax.set_xlabel("Euclidean distance between patches")
    ax.set_ylabel("density")
    ax.set_title("Data diversity: pairwise distances")
    ax.legend()
    return fig
