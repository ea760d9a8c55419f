"""Pseudo-mask files ``<stem>.pseudo.fits``: path, reader and writer parts (``docs/products.md``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from astropy.io import fits

from slewdark import __version__
from slewdark.config import Params, params_sha256
from slewdark.errors import ContractError


def pseudo_mask_path(out_dir: str | Path, stem: str) -> Path:
    """``<out_dir>/<stem>.pseudo.fits``."""
    return Path(out_dir) / f"{stem}.pseudo.fits"


def read_pseudo_mask(path: str | Path, detector: str) -> tuple[np.ndarray, np.ndarray]:
    """``DETxy.MASK`` (bool) and ``DETxy.WEIGHT`` (float32) of a ``<stem>.pseudo.fits``.

    Raises
    ------
    ContractError
        When the file or an extension is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise ContractError(path, "no pseudo-mask (run 'slewdark pseudomask' first)")
    try:
        with fits.open(path, memmap=False) as hdul:
            names = {hdu.name for hdu in hdul}
            for layer in ("MASK", "WEIGHT"):
                if f"DET{detector}.{layer}" not in names:
                    raise ContractError(path, f"no DET{detector}.{layer} extension")
            mask = np.asarray(hdul[f"DET{detector}.MASK"].data) > 0
            weight = np.asarray(hdul[f"DET{detector}.WEIGHT"].data, dtype=np.float32)
    except OSError as error:
        raise ContractError(path, f"unreadable pseudo-mask ({error})") from None
    return mask, weight


def pseudo_mask_header(params: Params, product: str, comment: str) -> fits.Header:
    """Primary header of a pseudo-mask file: version, params hash and ``PRODUCT``."""
    header = fits.Header()
    header["SDVER"] = (__version__, "slewdark version")
    header["PARAMSHA"] = params_sha256(params)
    header["PRODUCT"] = (product, comment)
    return header


def pseudo_mask_hdus(detector: str, mask: np.ndarray, weight: np.ndarray) -> Iterator[fits.ImageHDU]:
    """``DETxy.MASK`` (uint8) and ``DETxy.WEIGHT`` (float32) extensions of one detector."""
    for name, array in ((f"DET{detector}.MASK", mask), (f"DET{detector}.WEIGHT", weight)):
        hdu = fits.ImageHDU(array, name=name)
        hdu.header["DET_ID"] = detector
        yield hdu
