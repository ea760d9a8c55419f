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

import csv
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from slewdark.core.background import remove_background
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.errors import ContractError, SlewdarkError
from slewdark.io.atomic import atomic_path
from slewdark.io.fits import exposure_stem, exposure_suffix

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("patch", "exposure", "file", "detector", "channel", "row", "col", "split", "usable_fraction")
SPLITS = ("train", "val", "test")
COMPANION_KINDS = (".prev", ".truth", ".mask", ".pseudo")
"""``<stem><kind>.fits``: the simulator's companions and the products, never exposures themselves."""
ACTIVE_SIZE = 2040  # active pixels per detector side (the reader strips the reference border)


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


def patch_origins(height: int, width: int, size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left pixel positions of the patches covering an image, row-major.

    Parameters
    ----------
    height, width
        Image shape.
    size, stride
        Patch side and step in pixels; patches that would cross the edge are not cut.

    Returns
    -------
    rows, cols : ndarray
        int64 arrays of equal length.
    """
    if size < 1 or stride < 1 or size > min(height, width):
        raise ValueError(f"patch size {size} and stride {stride} do not fit a {height}x{width} image")
    grid_rows, grid_cols = np.meshgrid(
        np.arange(0, height - size + 1, stride), np.arange(0, width - size + 1, stride), indexing="ij"
    )
    return grid_rows.ravel().astype(np.int64), grid_cols.ravel().astype(np.int64)


def patch_channels(rows: np.ndarray, size: int, height: int, n_channels: int) -> np.ndarray:
    """Horizontal band (channel) of each patch centre: ``floor(centre_row / (height / n_channels))``."""
    centre = np.asarray(rows, dtype=np.float64) + size / 2.0
    return np.minimum((centre * n_channels / height).astype(np.int64), n_channels - 1)


def cut_patches(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Copy the ``size`` x ``size`` patches with top-left corners ``(rows, cols)``: (n, size, size)."""
    windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
    return windows[rows, cols]


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


def exposure_files(folder: str | Path) -> list[Path]:
    """The exposures of a folder, sorted.

    Files named ``*.fits``, ``*.fit``, ``*.fts`` or ``*.fits.gz`` in any case
    (:data:`slewdark.io.fits.EXPOSURE_SUFFIXES`), hidden files and the
    simulator's and products' companions (``<stem>.prev.fits``,
    ``.truth``, ``.mask``, ``.pseudo``, any case and compression) left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SlewdarkError(f"{folder}: no such folder of exposures (run 'slewdark simulate' first?)")
    return sorted(p for p in folder.iterdir() if p.is_file() and is_exposure_name(p))


def is_exposure_name(path: str | Path) -> bool:
    """Whether a file name is an exposure's: FITS suffix, not hidden, not a companion."""
    if exposure_suffix(path) is None or Path(path).name.startswith("."):
        return False
    return not exposure_stem(path).lower().endswith(COMPANION_KINDS)


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
        Exposure FITS files (see :func:`exposure_files`).
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


def write_table(path: str | Path, rows: Sequence[dict[str, object]], columns: Sequence[str]) -> None:
    """Write ``rows`` as a CSV table with a header, atomically."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def read_index(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``index.csv`` into column arrays (int columns as int64, others as str).

    Parameters
    ----------
    path
        The ``index.csv`` file, or the patches folder holding it.

    Returns
    -------
    dict
        Column name to array, in patch order.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "index.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            records = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise SlewdarkError(f"{path}: no patch index (run 'slewdark patches' first)") from None
    columns: dict[str, np.ndarray] = {}
    for name in INDEX_COLUMNS:
        values = [r[name] for r in records]
        if name in ("patch", "channel", "row", "col"):
            columns[name] = np.array(values, dtype=np.int64)
        elif name == "usable_fraction":
            columns[name] = np.array(values, dtype=np.float64)
        else:
            columns[name] = np.array(values, dtype=str)
    return columns
