"""Distribution of the autoencoder's per-patch reconstruction loss.

One panel per grouping (split; and, for simulated data, the true patch class):
step histograms of log10 of the loss with a shared binning, each normalised to
its own count so that small groups (persistence patches) stay visible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from slewdark.io.atomic import atomic_path

TRUTH_ORDER = ("clean", "hot_pixel", "cosmic_ray", "persistence")


def plot_recon_loss(recon_loss: np.ndarray, splits: np.ndarray, truth: np.ndarray | None = None) -> Figure:
    """Histograms of log10 reconstruction loss per split and, when given, per true class.

    Parameters
    ----------
    recon_loss
        (N,) per-patch loss.
    splits
        (N,) split of each patch.
    truth
        (N,) true class of each patch (evaluation only), or None.

    Returns
    -------
    Figure
    """
    values = np.log10(np.maximum(np.asarray(recon_loss, dtype=np.float64), 1e-12))
    bins = np.linspace(values.min(), values.max() + 1e-9, 60)
    groupings = [("split", np.asarray(splits), ("train", "val", "test"))]
    if truth is not None:
        groupings.append(("true patch class (evaluation only)", np.asarray(truth), TRUTH_ORDER))
    figure = Figure(figsize=(6 * len(groupings), 4))
    axes = figure.subplots(1, len(groupings), squeeze=False)
    for ax, (title, labels, order) in zip(axes[0], groupings, strict=True):
        for name in [o for o in order if o in set(labels)]:
            selected = values[labels == name]
            ax.hist(selected, bins=bins, histtype="step", density=True, label=f"{name} ({len(selected)})")
        ax.set_xlabel("log10 reconstruction loss (masked MSE)")
        ax.set_ylabel("density")
        ax.set_title(f"by {title}")
        ax.legend(fontsize="small")
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: str | Path) -> None:
    """Save a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
