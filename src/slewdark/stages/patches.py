"""Detector images to normalised square patches: stretch, tiling, channels, split.

The ``patches`` stage reads every exposure of a folder one detector at a time,
scales each detector to [0, 1] in noise units (:mod:`slewdark.core.scaling`), optionally
removes the background (:mod:`slewdark.core.background`), cuts it into square
patches and streams them into a memory-mapped array, so no stage ever needs all
exposures in memory. Products (``docs/products.md``):

- ``patches.npy`` float32 (N, P, P) in [0, 1], ``usable.npy`` bool (N, P, P);
- ``index.csv``: patch, exposure, file, detector, channel, row, col, split, usable_fraction;
- ``normalisation.csv``: exposure, detector, background, sigma (electrons).

The scaling (background removed, divided by the noise, squashed) is
:func:`slewdark.core.scaling.scale_detector`, the same for every network input;
``normalisation.csv`` records each detector's background level and noise
sigma in electrons.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from slewdark.core.background import remove_background
from slewdark.core.instrument import ACTIVE_SIZE
from slewdark.core.patch_grid import cut_patches, patch_channels, patch_origins
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.errors import ContractError, SlewdarkError
from slewdark.io.atomic import atomic_path
from slewdark.io.fits import exposure_stem
from slewdark.io.tables import INDEX_COLUMNS, write_table

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class BackgroundOptions:
    """The study's Solution 1 (see :func:`slewdark.core.background.remove_background`)."""

    threshold: float
    mad_factor: float
    min_neighbor: int


@dataclass(frozen=True)
class PatchOptions:
    """How detectors become patches.

    Attributes
    ----------
    size, stride
        Patch side and step in pixels.
    n_channels
        Number of horizontal bands of the detector (the study's channels).
    scaling
        How a detector becomes [0, 1] (:mod:`slewdark.core.scaling`).
    background
        Background removal options, or None to keep the background.
    split_mode
        ``grouped`` (whole exposures per split) or ``random`` (per patch).
    fractions
        Train, validation and test fractions (sum 1).
    seed
        Seed of the split.
    """

    size: int
    stride: int
    n_channels: int
    scaling: Scaling
    background: BackgroundOptions | None
    split_mode: Literal["grouped", "random"]
    fractions: tuple[float, float, float]
    seed: int


def assign_splits(
    exposures: Sequence[str],
    fractions: tuple[float, float, float],
    mode: Literal["grouped", "random"],
    seed: int,
) -> np.ndarray:
    """Assign each patch to train, val or test.

    Parameters
    ----------
    exposures
        Exposure of each patch.
    fractions
        Train, validation and test fractions.
    mode
        ``grouped``: whole exposures go to one split (no leakage of an
        exposure's sky, cosmic rays or persistence between splits); each split
        gets at least one exposure when there are three or more.
        ``random``: patches are split independently.
    seed
        Fixes the assignment.

    Returns
    -------
    ndarray
        Split name of each patch (``'train'``, ``'val'``, ``'test'``).
    """
    exposures = np.asarray(exposures)
    rng = np.random.default_rng(seed)
    if mode == "grouped":
        groups = np.unique(exposures)
        order = rng.permutation(len(groups))
        group_split = np.empty(len(groups), dtype=object)
        group_split[order] = _split_labels(len(groups), fractions, at_least_one=len(groups) >= 3)
        lookup = dict(zip(groups, group_split, strict=True))
        return np.array([lookup[e] for e in exposures], dtype=object)
    if mode == "random":
        labels = np.empty(len(exposures), dtype=object)
        labels[rng.permutation(len(exposures))] = _split_labels(len(exposures), fractions, at_least_one=False)
        return labels
    raise ValueError(f"unknown split mode {mode!r} (grouped or random)")


def _split_labels(n: int, fractions: tuple[float, float, float], at_least_one: bool) -> np.ndarray:
    """``n`` labels, the first ``round(f_train * n)`` 'train', then 'val', then 'test'."""
    n_val = round(fractions[1] * n)
    n_test = round(fractions[2] * n)
    if at_least_one:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_train = max(n - n_val - n_test, 0)
    return np.repeat(np.array(SPLITS, dtype=object), [n_train, n_val, n - n_train - n_val])


@dataclass
class _Writer:
    """Streams patches of successive detectors into two open memmaps."""

    patches: np.ndarray
    usable: np.ndarray
    count: int = 0

    def add(self, patches: np.ndarray, usable: np.ndarray) -> None:
        n = len(patches)
        self.patches[self.count : self.count + n] = patches
        self.usable[self.count : self.count + n] = usable
        self.count += n


def build_patches(files: Iterable[str | Path], out_dir: str | Path, options: PatchOptions) -> int:
    """Run the ``patches`` stage: every detector of every exposure to patches.

    Detectors are read one at a time (:func:`slewdark.io.fits.iter_detectors`)
    and their patches streamed into ``patches.npy`` / ``usable.npy``; every
    product is written under a temporary name and renamed into place.

    Parameters
    ----------
    files
        Exposure FITS files (see :func:`slewdark.io.exposures.exposure_files`).
    out_dir
        Output folder (``data/patches``).
    options
        Tiling, stretch, background and split options.

    Returns
    -------
    int
        Number of patches written.

    Raises
    ------
    SlewdarkError
        After writing the products of the good files, naming every file that
        broke the data contract; or when no file could be used.
    """
    from slewdark.io.fits import read_info

    out_dir = Path(out_dir)
    files = [Path(f) for f in files]
    failures: list[str] = []
    planned: list[tuple[Path, tuple[str, ...]]] = []
    for path in files:
        try:
            planned.append((path, read_info(path).detectors))
        except ContractError as error:
            failures.append(str(error))
    if not planned:
        raise SlewdarkError("no usable exposure: " + ("; ".join(failures) or "the input list is empty"))
    rows, cols = patch_origins(ACTIVE_SIZE, ACTIVE_SIZE, options.size, options.stride)
    channels = patch_channels(rows, options.size, ACTIVE_SIZE, options.n_channels)
    capacity = len(rows) * sum(len(detectors) for _, detectors in planned)
    shape = (capacity, options.size, options.size)
    log.info("cutting up to %d patches of %d px from %d exposures", capacity, options.size, len(planned))

    index: list[dict[str, object]] = []
    stretch: list[dict[str, object]] = []
    with (
        atomic_path(out_dir / "patches.npy") as tmp_patches,
        atomic_path(out_dir / "usable.npy") as tmp_usable,
    ):
        writer = _Writer(
            np.lib.format.open_memmap(tmp_patches, mode="w+", dtype=np.float32, shape=shape),
            np.lib.format.open_memmap(tmp_usable, mode="w+", dtype=bool, shape=shape),
        )
        progress = tqdm(total=sum(len(d) for _, d in planned), desc="patches", unit="detector")
        for path, _ in planned:
            try:
                _add_exposure(path, writer, rows, cols, channels, options, index, stretch, progress)
            except ContractError as error:
                failures.append(str(error))
        progress.close()
        writer.patches.flush()
        writer.usable.flush()
        if writer.count < capacity:
            _shrink_npy(tmp_patches, writer.count)
            _shrink_npy(tmp_usable, writer.count)
        del writer
    if not index:
        raise SlewdarkError("no patch written: " + "; ".join(failures))
    splits = assign_splits(
        [r["exposure"] for r in index], options.fractions, options.split_mode, options.seed
    )
    for number, (row, split) in enumerate(zip(index, splits, strict=True)):
        row["patch"] = number
        row["split"] = split
    write_table(out_dir / "normalisation.csv", stretch, ("exposure", "detector", "background", "sigma"))
    write_table(out_dir / "index.csv", index, INDEX_COLUMNS)
    if failures:
        raise SlewdarkError(
            f"{len(failures)} input(s) skipped, products written without them:\n" + "\n".join(failures)
        )
    return len(index)


def _add_exposure(
    path: Path,
    writer: _Writer,
    rows: np.ndarray,
    cols: np.ndarray,
    channels: np.ndarray,
    options: PatchOptions,
    index: list[dict[str, object]],
    stretch: list[dict[str, object]],
    progress: tqdm,
) -> None:
    """Append every detector of one exposure; an exposure is all in or all out."""
    from slewdark.io.fits import iter_detectors

    stem = exposure_stem(path)
    start, new_index, new_stretch = writer.count, [], []
    try:
        for det in iter_detectors(path):
            if not det.usable.any():
                raise ContractError(path, f"DET{det.detector}.SCI has no usable pixel")
            scaled = scale_detector(det.data, det.usable, options.scaling)
            image = scaled.image
            if options.background is not None:
                image = remove_background(image, det.usable, **vars(options.background))
            usable = cut_patches(det.usable, rows, cols, options.size)
            writer.add(cut_patches(image, rows, cols, options.size), usable)
            fraction = usable.mean(axis=(1, 2))
            new_stretch.append(
                {
                    "exposure": stem,
                    "detector": det.detector,
                    "background": scaled.background,
                    "sigma": scaled.sigma,
                }
            )
            new_index.extend(
                {
                    "exposure": stem,
                    "file": path.as_posix(),
                    "detector": det.detector,
                    "channel": int(ch),
                    "row": int(r),
                    "col": int(c),
                    "usable_fraction": round(float(f), 6),
                }
                for r, c, ch, f in zip(rows, cols, channels, fraction, strict=True)
            )
            progress.update()
    except ContractError:
        writer.count = start
        raise
    index.extend(new_index)
    stretch.extend(new_stretch)


def _shrink_npy(path: Path, n_rows: int) -> None:
    """Keep the first ``n_rows`` rows of a ``.npy`` file, copying in chunks (memory bounded)."""
    source = np.load(path, mmap_mode="r")
    shrunk = path.with_name(path.name + ".shrink")
    target = np.lib.format.open_memmap(
        shrunk, mode="w+", dtype=source.dtype, shape=(n_rows, *source.shape[1:])
    )
    for start in range(0, n_rows, 1024):
        target[start : start + 1024] = source[start : start + 1024]
    target.flush()
    del target, source
    os.replace(shrunk, path)
