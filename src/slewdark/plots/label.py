"""Figures of the ``label`` stage: one PNG per cluster for the person writing ``labels/overrides.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from slewdark.latent.sampling import sample_rows
from slewdark.plots.figures import save_figure


def patch_strip(patches: np.ndarray, gap: int = 2) -> np.ndarray:
    """Patches side by side in one image, separated by ``gap`` px of NaN (drawn blank).

    One image drawn once is much cheaper than one axis per patch: the stage
    draws a card for every cluster.
    """
    size = patches.shape[-1]
    strip = np.full((size, len(patches) * (size + gap) - gap), np.nan, dtype=np.float32)
    for i, patch in enumerate(patches):
        strip[:, i * (size + gap) : i * (size + gap) + size] = patch
    return strip


def cluster_card(decision: dict[str, Any], patches: np.ndarray) -> Figure:
    """Sample patches of one cluster in a row, titled with its decision, score and reason.

    Parameters
    ----------
    decision
        One entry of ``clusters.yaml``.
    patches
        (n, P, P) normalised sample patches.

    Returns
    -------
    Figure
    """
    n = max(len(patches), 1)
    figure = Figure(figsize=(1.4 * n + 0.4, 2.3), layout="constrained")
    ax = figure.subplots()
    ax.set_axis_off()
    if len(patches):
        ax.imshow(patch_strip(np.asarray(patches)), cmap="gray", vmin=0, vmax=1, origin="lower")
    verdict = "PERSISTENCE" if decision["persistence"] else "not persistence"
    figure.suptitle(
        f"cluster {decision['cluster']} (group {decision['group']}): {verdict}, "
        f"score {decision['score']:.3f}, {decision['source']}\n{decision['reason']}",
        fontsize=7,
    )
    return figure


def save_gallery(
    folder: str | Path,
    decisions: Sequence[dict[str, Any]],
    clusters: np.ndarray,
    patches: np.ndarray,
    samples: int,
    seed: int,
) -> list[Path]:
    """Write ``cluster_<id>.png`` for every cluster (seeded sample of its patches).

    Parameters
    ----------
    folder
        Output folder (created).
    decisions
        The entries of ``clusters.yaml``.
    clusters
        Cluster id of every patch.
    patches
        All patches (memory-mapped is fine: only the samples are read).
    samples
        Patches drawn per cluster.
    seed
        Seed of the draw.

    Returns
    -------
    list of Path
        The files written, in decision order.
    """
    folder = Path(folder)
    written = []
    for decision in decisions:
        rows = sample_rows(np.nonzero(clusters == decision["cluster"])[0], samples, seed)
        figure = cluster_card(decision, np.asarray(patches[np.sort(rows)]))
        path = folder / f"cluster_{decision['cluster']:04d}.png"
        save_figure(figure, path)
        written.append(path)
    return written
