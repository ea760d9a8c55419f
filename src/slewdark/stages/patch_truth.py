"""Evaluation only: what each patch truly holds, from the simulator's truth files.

Never imported by fitting or labelling code. For each patch of ``index.csv``
the exposure's ``<stem>.truth.fits`` (in ``data.train_truth``, or beside the
exposure when that is null; :func:`slewdark.evaluation.truth.truth_file`) gives the persistence signal
(electrons), the cosmic-ray and the hot-pixel masks; the patch is classed
``persistence`` when at least ``min_pixels`` pixels carry more than
``persistence_threshold`` e- of persistence, else ``cosmic_ray`` when a cosmic
ray touches it, else ``hot_pixel`` when it holds a hot pixel, else ``clean``.
Output ``data/truth/patch_truth.csv``: patch, truth, persistence_pixels,
persistence_max (e-); :func:`slewdark.evaluation.truth.read_truth_classes` reads its classes back.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from slewdark.core.patch_grid import cut_patches
from slewdark.errors import ContractError, SlewdarkError
from slewdark.evaluation.truth import TRUTH_CLASSES, read_truth, truth_file
from slewdark.io.patches import open_patches
from slewdark.io.tables import read_index, write_table

log = logging.getLogger(__name__)

COLUMNS = ("patch", "truth", "persistence_pixels", "persistence_max")


__all__ = ["build_patch_truth", "classify_patches"]


def classify_patches(
    persistence: np.ndarray,
    cosmic_rays: np.ndarray,
    hot_pixels: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    size: int,
    persistence_threshold: float,
    min_pixels: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth class of the patches of one detector.

    Parameters
    ----------
    persistence
        (H, W) persistence signal in electrons.
    cosmic_rays, hot_pixels
        (H, W) boolean masks.
    rows, cols
        Top-left corners of the patches.
    size
        Patch side.
    persistence_threshold
        Electrons above which a pixel holds persistence.
    min_pixels
        Such pixels needed for a persistence patch.

    Returns
    -------
    classes : ndarray
        One of :data:`slewdark.evaluation.truth.TRUTH_CLASSES` per patch (priority in that order).
    persistence_pixels : ndarray
        int64 count of persistence pixels per patch.
    persistence_max : ndarray
        float32 maximum persistence signal per patch (e-).
    """
    signal = cut_patches(persistence, rows, cols, size)
    n_pixels = (signal > persistence_threshold).sum(axis=(1, 2))
    has_cr = cut_patches(cosmic_rays, rows, cols, size).any(axis=(1, 2))
    has_hot = cut_patches(hot_pixels, rows, cols, size).any(axis=(1, 2))
    classes = np.select(
        [n_pixels >= min_pixels, has_cr, has_hot], list(TRUTH_CLASSES[:3]), default=TRUTH_CLASSES[3]
    )
    return classes, n_pixels.astype(np.int64), signal.max(axis=(1, 2)).astype(np.float32)


def build_patch_truth(
    patch_dir: str | Path,
    truth_dir: str | Path | None,
    out_csv: str | Path,
    persistence_threshold: float,
    min_pixels: int,
) -> dict[str, int]:
    """Run the ``patch_truth`` stage: the truth table of every patch.

    Parameters
    ----------
    patch_dir
        The ``patches`` stage's folder (index and patch size).
    truth_dir
        Folder of the ``<stem>.truth.fits`` (``data.train_truth``); None: beside the exposures.
    out_csv
        Output table.
    persistence_threshold, min_pixels
        See :func:`classify_patches`.

    Returns
    -------
    dict
        Number of patches per class.

    Raises
    ------
    SlewdarkError
        Naming every exposure without a readable truth file (nothing is written),
        unless no exposure has one (real data): then the table has no rows and
        the stages that read it skip their truth diagnostics.
    """
    index = read_index(patch_dir)
    size = open_patches(patch_dir)[0].shape[1]
    n = len(index["patch"])
    classes = np.empty(n, dtype=object)
    n_pixels = np.zeros(n, dtype=np.int64)
    maxima = np.zeros(n, dtype=np.float32)
    failures: list[str] = []
    missing = 0
    groups = {(f, d) for f, d in zip(index["file"], index["detector"], strict=True)}
    for file, detector in sorted(groups):
        selected = (index["file"] == file) & (index["detector"] == detector)
        path = truth_file(file, truth_dir)
        if not path.is_file():
            failures.append(f"{path}: no truth file (only simulated exposures have one)")
            missing += 1
            continue
        try:
            truth = read_truth(path, detector)
        except ContractError as error:
            failures.append(str(error))
            continue
        classes[selected], n_pixels[selected], maxima[selected] = classify_patches(
            truth.pers, truth.cr, truth.hot, index["row"][selected], index["col"][selected],
            size, persistence_threshold, min_pixels,
        )  # fmt: skip
    if missing == len(groups):
        log.warning("no exposure has a truth file (real data): writing an empty %s", out_csv)
        write_table(out_csv, [], COLUMNS)
        return dict.fromkeys(TRUTH_CLASSES, 0)
    if failures:
        raise SlewdarkError("no patch truth written:\n" + "\n".join(failures))
    rows = [
        {"patch": int(p), "truth": c, "persistence_pixels": int(k), "persistence_max": round(float(m), 3)}
        for p, c, k, m in zip(index["patch"], classes, n_pixels, maxima, strict=True)
    ]
    write_table(out_csv, rows, COLUMNS)
    counts = {name: int(np.sum(classes == name)) for name in TRUTH_CLASSES}
    log.info("patch truth: %s", counts)
    return counts
