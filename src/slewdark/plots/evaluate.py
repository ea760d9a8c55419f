"""Figures of the ``evaluate`` stage: precision-recall curves and recall against persistence amplitude."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def plot_pr(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], points: Mapping[str, tuple[float, float]]
) -> Figure:
    """Precision against recall per method, with each method's operating point.

    Parameters
    ----------
    curves
        Method to ``(precision, recall)`` per probability threshold; thresholds
        where nothing is flagged (recall 0, precision 0) are not drawn.
    points
        Method to the ``(precision, recall)`` of its mask.

    Returns
    -------
    Figure
    """
    figure = Figure(figsize=(5.5, 5))
    ax = figure.subplots()
    for name, (precision, recall) in curves.items():
        drawn = (precision > 0) | (recall > 0)
        (line,) = ax.plot(recall[drawn], precision[drawn], label=name)
        if name in points:
            p, r = points[name]
            ax.plot([r], [p], "o", color=line.get_color())
    ax.set_xlim(0, 1.02)
    return _finish(
        figure,
        ax,
        "recall (persistence pixels)",
        "precision",
        "held-out precision-recall (dot: the method's mask)",
    )


def plot_recall_amplitude(labels: Sequence[str], recalls: Mapping[str, np.ndarray]) -> Figure:
    """Pixel recall per true persistence amplitude bin, one line per method.

    Parameters
    ----------
    labels
        Bin names, e.g. ``3-5e``.
    recalls
        Method to recall per bin.

    Returns
    -------
    Figure
    """
    figure = Figure(figsize=(6.5, 4))
    ax = figure.subplots()
    x = np.arange(len(labels))
    for name, recall in recalls.items():
        ax.plot(x, recall, "o-", label=name)
    ax.set_xticks(x, labels)
    return _finish(
        figure,
        ax,
        "true persistence (electrons over the exposure)",
        "pixel recall",
        "recall against persistence amplitude (held-out)",
    )


def _finish(figure: Figure, ax: Axes, xlabel: str, ylabel: str, title: str) -> Figure:
    """The common frame of the evaluate figures: a 0-1 y axis, labels, grid and legend, laid out."""
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.tight_layout()
    return figure
