"""Writing figures: one PNG writer for every plot."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from slewdark.io.atomic import atomic_path


def save_figure(figure: Figure, path: str | Path) -> None:
    """Save a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
