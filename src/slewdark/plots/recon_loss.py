"""Distribution of the autoencoder's per-patch reconstruction loss.

Step histograms of log10 of the loss per split, with a shared binning, each
normalised to its own count so that small splits stay visible. Truth never
enters (the ``embed`` stage does not depend on it).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

SPLIT_ORDER = ("train", "val", "test")


def plot_recon_loss(recon_loss: np.ndarray, splits: np.ndarray) -> Figure:
    """Histograms of log10 reconstruction loss per split.

    Parameters
    ----------
    recon_loss
        (N,) per-patch loss.
    splits
        (N,) split of each patch.

    Returns
    -------
    Figure
    """
    values = np.log10(np.maximum(np.asarray(recon_loss, dtype=np.float64), 1e-12))
    bins = np.linspace(values.min(), values.max() + 1e-9, 60)
    splits = np.asarray(splits)
    figure = Figure(figsize=(6, 4))
    ax = figure.subplots()
    for name in [s for s in SPLIT_ORDER if s in set(splits)]:
        selected = values[splits == name]
        ax.hist(selected, bins=bins, histtype="step", density=True, label=f"{name} ({len(selected)})")
    ax.set_xlabel("log10 reconstruction loss (masked MSE)")
    ax.set_ylabel("density")
    ax.set_title("by split")
    ax.legend(fontsize="small")
    figure.tight_layout()
    return figure
