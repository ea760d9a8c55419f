"""Quick-look pictures of an exposure: ``slewdark show``.

Each detector is drawn with a robust stretch (median - 2 sigma to median + 5 sigma,
sigma from the median absolute deviation), so read noise, persistence streaks and
cosmic rays are all visible. Simulated exposures get a second row with their truth
(persistence signal, cosmic rays and hot pixels), read from the given truth folder
or beside the exposure. Detectors are binned by
``binning`` to keep the picture small and the memory bounded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.io.fits import iter_detectors, read_info
from slewdark.ops.inspection import robust_stats
from slewdark.plots.figures import save_figure

STRETCH = (-2.0, 5.0)


def bin_image(image: np.ndarray, factor: int) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks (NaN-aware); factor 1 returns the image."""
    if factor == 1:
        return image
    rows, cols = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor)
    with np.errstate(invalid="ignore"):
        return np.nanmean(blocks, axis=(1, 3))


def bin_max(image: np.ndarray, factor: int) -> np.ndarray:
    """Maximum of ``factor`` x ``factor`` blocks, so single flagged pixels stay visible."""
    rows, cols = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor).max(axis=(1, 3))


def render_exposure(path: str | Path, binning: int = 2, truth_dir: str | Path | None = None) -> Figure:
    """Figure with one column per detector: the data and, if simulated, the truth.

    Parameters
    ----------
    path
        Exposure following the data contract.
    binning
        Block size for display (2 draws a 2040 px detector as 1020 px).
    truth_dir
        Folder of the simulator's ``<stem>.truth.fits``; None: beside the file. A truth
        row is added when that file exists.
    """
    path = Path(path)
    info = read_info(path)
    truth = truth_file(path, truth_dir)
    show_truth = truth.is_file()
    n = len(info.detectors)
    rows = 2 if show_truth else 1
    figure = Figure(figsize=(4.2 * n, 4.2 * rows + 0.6), layout="constrained")
    axes = figure.subplots(rows, n, squeeze=False)
    title = f"{info.obs_id}  prev={info.prev_gwa or '-'} tilt={info.prev_tilt} tsince={info.tsince} s"
    figure.suptitle(title)
    for column, det in enumerate(iter_detectors(path)):
        median, sigma = robust_stats(det.data[det.usable])
        low, high = median + STRETCH[0] * sigma, median + STRETCH[1] * sigma
        ax = axes[0, column]
        ax.imshow(bin_image(det.data, binning), origin="lower", cmap="gray", vmin=low, vmax=high)
        ax.set_title(f"DET{det.detector}  median {median:.1f} e-, sigma {sigma:.1f} e-", fontsize=9)
        if show_truth:
            _draw_truth(axes[1, column], truth, det.detector, binning, sigma)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


def _draw_truth(ax, path: Path, detector: str, binning: int, sigma: float) -> None:
    """Persistence signal in orange, cosmic rays in cyan, hot pixels in magenta."""
    truth = read_truth(path, detector)
    ax.imshow(bin_max(truth.pers, binning), origin="lower", cmap="inferno", vmin=0, vmax=max(3 * sigma, 1.0))
    overlay = np.zeros(truth.cr.shape, np.uint8)
    overlay[truth.cr] = 1
    overlay[truth.hot] = 2
    flags = np.ma.masked_equal(bin_max(overlay, binning), 0)
    ax.imshow(flags, origin="lower", cmap=ListedColormap(["cyan", "magenta"]), vmin=1, vmax=2)
    ax.set_title(f"truth: persistence (0..{3 * sigma:.0f} e-), CR cyan, hot magenta", fontsize=9)


def show_exposure(
    path: str | Path, out: str | Path, binning: int = 2, truth_dir: str | Path | None = None
) -> Path:
    """Render an exposure (and its truth when simulated, see :func:`render_exposure`) to a PNG, atomically."""
    figure = render_exposure(path, binning, truth_dir)
    save_figure(figure, out)
    return Path(out)
