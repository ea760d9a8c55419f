"""What a user checks first in an exposure: ``slewdark inspect``.

Per exposure the header keys of the data contract, per detector its shape, unit,
median, robust sigma and the fractions of pixels without data or flagged in DQ.
Detectors are read one at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slewdark.io.fits import ExposureInfo, iter_detectors, read_info

MAD_TO_SIGMA = 1.4826
HEADER_KEYS = ("OBS_ID", "DATE-OBS", "EXPTIME", "PREVFILE", "PREVGWA", "PREVTILT", "TSINCE")


@dataclass(frozen=True)
class DetectorSummary:
    """First-look statistics of one detector (electrons over the exposure)."""

    detector: str
    shape: tuple[int, int]
    bunit: str
    median: float
    robust_sigma: float
    nan_fraction: float
    flagged_fraction: float
    persist_flag_fraction: float | None


def robust_stats(values: np.ndarray) -> tuple[float, float]:
    """Median and robust sigma (1.4826 x median absolute deviation) of finite values.

    Returns NaN for both when no value is finite.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    median = float(np.median(finite))
    return median, MAD_TO_SIGMA * float(np.median(np.abs(finite - median)))


def summarise_detectors(path: str | Path) -> Iterator[DetectorSummary]:
    """Yield a :class:`DetectorSummary` per detector of an exposure, in file order."""
    for det in iter_detectors(path):
        median, sigma = robust_stats(det.data[det.usable])
        nan = ~np.isfinite(det.data)
        flagged = ~det.usable & ~nan
        yield DetectorSummary(
            detector=det.detector,
            shape=(int(det.header["NAXIS2"]), int(det.header["NAXIS1"])),
            bunit=str(det.header.get("BUNIT", "electron")),
            median=median,
            robust_sigma=sigma,
            nan_fraction=float(nan.mean()),
            flagged_fraction=float(flagged.mean()),
            persist_flag_fraction=None if det.persist_flag is None else float(det.persist_flag.mean()),
        )


def header_summary(info: ExposureInfo) -> str:
    """One line with the contract's primary-header keys (``-`` when absent)."""
    return "  ".join(f"{key}={info.header.get(key, '-')}" for key in HEADER_KEYS)


def format_report(path: str | Path) -> Iterator[str]:
    """Lines of the ``inspect`` report of one exposure.

    Raises
    ------
    ContractError
        When the file breaks the data contract (before any line is yielded for
        header problems; for a detector's data, after the good detectors).
    """
    info = read_info(path)
    yield f"{info.path}  ({len(info.detectors)} detectors)"
    yield f"  {header_summary(info)}"
    yield (
        f"  {'det':<4} {'shape':>10} {'BUNIT':<12} {'median e-':>10} {'sigma e-':>9} "
        f"{'NaN %':>7} {'DQ %':>7} {'PERSIST %':>9}"
    )
    for s in summarise_detectors(path):
        persist = "-" if s.persist_flag_fraction is None else f"{100 * s.persist_flag_fraction:.3f}"
        shape = f"{s.shape[0]}x{s.shape[1]}"
        yield (
            f"  {s.detector:<4} {shape:>10} {s.bunit:<12} {s.median:>10.2f} {s.robust_sigma:>9.2f} "
            f"{100 * s.nan_fraction:>7.3f} {100 * s.flagged_fraction:>7.3f} {persist:>9}"
        )
