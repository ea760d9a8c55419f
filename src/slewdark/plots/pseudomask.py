"""Figure of the pseudo-mask quality check: slew dark, pseudo-mask and truth side by side."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def side_by_side(image: np.ndarray, mask: np.ndarray, truth: np.ndarray, title: str, binning: int) -> Figure:
    """Slew dark | pseudo-mask | truth of one detector.

    Parameters
    ----------
    image
        Normalised detector image in [0, 1].
    mask
        Pseudo-mask (1 = persistence).
    truth
        Boolean true persistence (simulator).
    title
        Exposure and detector.
    binning
        Display block size (block mean of the image, block maximum of the masks).

    Returns
    -------
    Figure
    """
    figure = Figure(figsize=(13, 4.6), layout="constrained")
    axes = figure.subplots(1, 3, sharex=True, sharey=True)
    panels = (
        ("slew dark (normalised)", _block(image, binning, np.mean), "gray"),
        ("pseudo-mask", _block(mask.astype(np.float32), binning, np.max), "magma"),
        ("truth persistence", _block(truth.astype(np.float32), binning, np.max), "magma"),
    )
    for ax, (name, values, cmap) in zip(axes, panels, strict=True):
        ax.imshow(values, cmap=cmap, vmin=0, vmax=1, origin="lower", interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"{title} (binned {binning}x{binning})", fontsize=10)
    return figure


def _block(values: np.ndarray, binning: int, reduce: np.ufunc | object) -> np.ndarray:
    """Reduce ``binning`` x ``binning`` blocks (edges that do not fill a block are dropped)."""
    h, w = (s - s % binning for s in values.shape)
    blocks = values[:h, :w].reshape(h // binning, binning, w // binning, binning)
    return reduce(blocks, axis=(1, 3))
