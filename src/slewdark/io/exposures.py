"""Which files of a folder are exposures (not companions, not hidden)."""

from __future__ import annotations

from pathlib import Path

from slewdark.errors import SlewdarkError
from slewdark.io.fits import exposure_stem, exposure_suffix

COMPANION_KINDS = (".prev", ".truth", ".mask", ".pseudo")
"""``<stem><kind>.fits``: the simulator's companions and the products, never exposures themselves."""


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
