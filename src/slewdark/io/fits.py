"""Read and write the FITS data contract (``docs/data-contract.md``).

Reading is lazy and per detector: :func:`read_info` parses the primary header and
checks the layout of every ``DETxy.SCI`` extension without loading pixel data, and
:func:`iter_detectors` yields one :class:`DetectorImage` at a time and drops the
file's arrays of that detector before reading the next, so a 16-detector exposure
never sits whole in memory. Files may be gzip- or bzip2-compressed (``.fits.gz``).
Every contract violation (not FITS, truncated, no detector extension, a detector
extension twice, wrong shape, unreadable header, unknown unit) raises
:class:`~slewdark.errors.ContractError` naming the file and the problem.

Writing goes through :func:`write_fits_atomic`: a temporary file beside the target
is renamed into place only when complete.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from slewdark.core.instrument import ACTIVE_SIZE, FULL_SIZE, REFERENCE_BORDER
from slewdark.errors import ContractError
from slewdark.io.atomic import atomic_path

SCI_NAME = re.compile(r"^DET([1-4][1-4])\.SCI$")
DETECTOR_NAME = re.compile(r"^DET[1-4][1-4]\.")
EXPOSURE_SUFFIXES = (".fits.gz", ".fit.gz", ".fits", ".fit", ".fts")
"""File names of exposures (any case), longest first: the contract's ``.fits``, ``.fit``, ``.fits.gz``."""
DECOMPRESSORS: dict[bytes, Callable[[Path], Any]] = {
    b"\x1f\x8b": gzip.open,
    b"BZh": bz2.open,
}
"""Magic bytes of the compressed files astropy reads, and how to decompress them."""
DEFAULT_PERSIST_BIT = 13
DEFAULT_SATUR_BIT = 10
DEFAULT_COSMIC_BIT = 16
UNUSABLE_FLAGS = {"INVALID": 0, "OBMASK": 1, "DISCONNECTED": 2, "ZEROQE": 3, "BADBASE": 4}
"""DQ flags (Euclid NISP calibrated-frame layout) whose pixels hold no usable data.

The bit numbers are defaults; ``MSK_FLAG_<NAME>`` keywords in the DQ or primary
header take precedence."""
UNIT_ALIASES = {
    "electron": "electron",
    "electrons": "electron",
    "e-": "electron",
    "electron/s": "electron/s",
    "electrons/s": "electron/s",
    "e-/s": "electron/s",
    "adu": "adu",
}


@dataclass(frozen=True)
class ExposureInfo:
    """The primary header of an exposure, parsed, and the detectors it holds."""

    path: Path
    obs_id: str
    date_obs: str | None
    exptime: float | None
    prev_file: str | None
    prev_gwa: str | None
    prev_tilt: float | None
    tsince: float | None
    detectors: tuple[str, ...]
    header: fits.Header


@dataclass
class DetectorImage:
    """One detector's active area in electrons, with its quality layers.

    Attributes
    ----------
    saturated
        Pixels that reached full well: the SATUR bit of the DQ layer (bit number
        from ``MSK_FLAG_SATUR``, default 10), or NaN in the data where no DQ bit
        marks the pixel unusable. The second rule is a choice: pipelines may write
        NaN instead of a capped value at a saturated star, and a NaN that the DQ
        layer does not explain is read as such a saturated pixel. A producer that
        writes NaN for other reasons must set an unusable DQ bit (e.g. INVALID)
        there. Saturated NaN pixels stay unusable: they hold no value.
    cosmic
        Pixels the producer's pipeline flagged as cosmic-ray hits: the COSMIC
        bit of the DQ layer (``MSK_FLAG_COSMIC``, default 16); None without a
        DQ layer. They stay usable: the charge is real, its origin is not the sky.
    """

    detector: str
    data: np.ndarray
    dq: np.ndarray | None
    usable: np.ndarray
    persist_flag: np.ndarray | None
    header: fits.Header
    persist_bit: int
    saturated: np.ndarray
    cosmic: np.ndarray | None = None


@dataclass(frozen=True)
class MaskLayers:
    """The layers of one detector in a ``<stem>.mask.fits`` product.

    ``no_mask`` says why the mask is empty without looking (``NOMASK`` keyword),
    e.g. ``'no usable pixel'``; None for a detector the model saw.
    """

    detector: str
    mask: np.ndarray
    prob: np.ndarray | None
    dq: np.ndarray | None
    persist_bit: int = DEFAULT_PERSIST_BIT
    no_mask: str | None = None


def exposure_suffix(path: str | Path) -> str | None:
    """The exposure suffix of a file name (``.fits``, ``.fits.gz``, ... as written), or None."""
    name = Path(path).name
    return next((name[-len(s) :] for s in EXPOSURE_SUFFIXES if name.lower().endswith(s)), None)


def exposure_stem(path: str | Path) -> str:
    """The exposure name used in every product: the file name without its FITS suffix."""
    name = Path(path).name
    return name.removesuffix(exposure_suffix(path) or "")


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def open_fits(path: Path) -> fits.HDUList:
    """Open a FITS file lazily and load every header, or raise a ContractError."""
    if not path.is_file():
        raise ContractError(path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", AstropyUserWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, AstropyUserWarning, fits.VerifyError) as error:
        raise ContractError(path, f"not a readable FITS file ({_short(error)})") from None
    _check_complete(path, hdul)
    return hdul


def _short(error: Exception) -> str:
    """The first line of an exception message, without astropy's long tails."""
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def _content_size(path: Path) -> int:
    """Bytes of FITS content: the file size, or the decompressed size of a compressed file.

    A compressed file is decompressed once to find its size; a compressed
    stream that ends early is a truncated file.
    """
    with open(path, "rb") as handle:
        magic = handle.read(3)
    opener = next((op for key, op in DECOMPRESSORS.items() if magic.startswith(key)), None)
    if opener is None:
        return path.stat().st_size
    size = 0
    try:
        with opener(path) as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                size += len(block)
    except (EOFError, OSError, ValueError) as error:
        raise ContractError(path, f"truncated or corrupt compressed file ({_short(error)})") from None
    return size


def _check_complete(path: Path, hdul: fits.HDUList) -> None:
    """Fail on a truncated file: the last HDU's data must end inside the (decompressed) file."""
    try:
        size = _content_size(path)
    except ContractError:
        hdul.close()
        raise
    for index in range(len(hdul)):
        info = hdul.fileinfo(index)
        if info["datLoc"] + info["datSpan"] > size:
            hdul.close()
            name = hdul[index].name or f"HDU {index}"
            raise ContractError(path, f"truncated file: {name} data ends past the end of the file")


def _float_key(header: fits.Header, key: str, path: Path) -> float | None:
    """A numeric header keyword, None when absent, ContractError when not a number."""
    if key not in header:
        return None
    try:
        return float(header[key])
    except (TypeError, ValueError):
        raise ContractError(path, f"header keyword {key}={header[key]!r} is not a number") from None


def _str_key(header: fits.Header, key: str) -> str | None:
    value = header.get(key)
    return None if value is None else str(value).strip()


def _detector_hdus(path: Path, hdul: fits.HDUList) -> dict[str, int]:
    """Map detector id to the index of its SCI extension, checking names and shapes."""
    _check_unique_names(path, hdul)
    found: dict[str, int] = {}
    for index, hdu in enumerate(hdul):
        match = SCI_NAME.match((hdu.name or "").upper())
        if not match:
            continue
        shape = _header_shape(hdu.header)
        if shape not in ((ACTIVE_SIZE, ACTIVE_SIZE), (FULL_SIZE, FULL_SIZE)):
            raise ContractError(
                path, f"{hdu.name}: shape {shape} is not 2040x2040 (active) or 2048x2048 (with border)"
            )
        found[match.group(1)] = index
    if not found:
        raise ContractError(path, "no DETxy.SCI extension (expected DET11.SCI ... DET44.SCI)")
    return found


def _check_unique_names(path: Path, hdul: fits.HDUList) -> None:
    """Refuse a file with two detector extensions of the same EXTNAME (and EXTVER)."""
    seen: dict[tuple[str, int], int] = {}
    for index, hdu in enumerate(hdul):
        name = (hdu.name or "").upper()
        if not DETECTOR_NAME.match(name):
            continue
        key = (name, hdu.ver)
        if key in seen:
            raise ContractError(path, f"{name} appears twice (HDU {seen[key]} and HDU {index})")
        seen[key] = index


def _header_shape(header: fits.Header) -> tuple[Any, ...]:
    """The data shape an image header declares, numpy order (slowest axis first)."""
    naxis = header.get("NAXIS", 0)
    return tuple(header.get(f"NAXIS{axis}") for axis in range(naxis, 0, -1))


def read_info(path: str | Path) -> ExposureInfo:
    """Parse the primary header and check every detector extension of an exposure.

    Parameters
    ----------
    path
        A slew-dark exposure (multi-extension FITS).

    Returns
    -------
    ExposureInfo
        Header keywords of the contract and the detector ids in file order.

    Raises
    ------
    ContractError
        If the file is not FITS, truncated, has no ``DETxy.SCI`` extension, or a
        detector has the wrong shape or a non-numeric keyword.
    """
    path = Path(path)
    with open_fits(path) as hdul:
        header = hdul[0].header.copy()
        detectors = tuple(_detector_hdus(path, hdul))
    return ExposureInfo(
        path=path,
        obs_id=_str_key(header, "OBS_ID") or exposure_stem(path),
        date_obs=_str_key(header, "DATE-OBS"),
        exptime=_float_key(header, "EXPTIME", path),
        prev_file=_str_key(header, "PREVFILE"),
        prev_gwa=_str_key(header, "PREVGWA"),
        prev_tilt=_float_key(header, "PREVTILT", path),
        tsince=_float_key(header, "TSINCE", path),
        detectors=detectors,
        header=header,
    )


def active_pixels(data: np.ndarray) -> np.ndarray:
    """Strip the 4-pixel reference border of a 2048x2048 array."""
    if data.shape == (FULL_SIZE, FULL_SIZE):
        return data[REFERENCE_BORDER:-REFERENCE_BORDER, REFERENCE_BORDER:-REFERENCE_BORDER]
    return data


def _to_electrons(data: np.ndarray, header: fits.Header, exptime: float | None, path: Path, name: str):
    """Convert SCI data to electrons collected over the exposure, per BUNIT."""
    raw_unit = str(header.get("BUNIT", "electron")).strip().lower()
    unit = UNIT_ALIASES.get(raw_unit)
    if unit is None:
        raise ContractError(path, f"{name}: BUNIT {raw_unit!r} is not electron, electron/s or adu")
    image = data.astype(np.float32, copy=True)
    if unit == "electron/s":
        if exptime is None:
            raise ContractError(path, f"{name}: BUNIT electron/s needs EXPTIME in the primary header")
        image *= np.float32(exptime)
    elif unit == "adu":
        gain = _float_key(header, "GAIN", path)
        if gain is None:
            raise ContractError(path, f"{name}: BUNIT adu needs GAIN in the extension header")
        image *= np.float32(gain)
    return image


def _flag_bit(name: str, default: int, headers: Iterable[fits.Header]) -> int:
    """Bit number of a DQ flag from ``MSK_FLAG_<name>`` keywords, else the default."""
    for header in headers:
        if f"MSK_FLAG_{name}" in header:
            return int(header[f"MSK_FLAG_{name}"])
    return default


def _take_data(path: Path, hdu: fits.ImageHDU) -> np.ndarray | None:
    """An extension's data, which the open file does not keep: the caller holds the only reference.

    astropy caches every array it reads on its HDU until the file is closed;
    dropping it keeps one detector in memory at a time.
    """
    try:
        data = hdu.data
    except (EOFError, OSError, ValueError, TypeError) as error:
        raise ContractError(path, f"{hdu.name}: unreadable data ({_short(error)})") from None
    del hdu.data
    return data


def _load_detector(path: Path, hdul: fits.HDUList, detector: str, index: int, exptime: float | None):
    """Build a DetectorImage from an open file (one detector's arrays only)."""
    sci = hdul[index]
    name = sci.name
    raw = _take_data(path, sci)
    if raw is None or not np.issubdtype(raw.dtype, np.number):
        raise ContractError(path, f"{name}: no numeric image data")
    data = active_pixels(_to_electrons(raw, sci.header, exptime, path, name))
    headers = [hdul[0].header]
    dq = None
    dq_name = f"DET{detector}.DQ"
    if dq_name in hdul:
        dq_hdu = hdul[dq_name]
        dq_data = _take_data(path, dq_hdu)
        if dq_data is None or dq_data.shape not in ((ACTIVE_SIZE, ACTIVE_SIZE), (FULL_SIZE, FULL_SIZE)):
            raise ContractError(path, f"{dq_name}: shape does not match {name}")
        dq = active_pixels(dq_data).astype(np.uint32)
        headers.insert(0, dq_hdu.header)
    finite = np.isfinite(data)
    usable = finite.copy()
    saturated = ~finite
    persist_bit = _flag_bit("PERSIST", DEFAULT_PERSIST_BIT, headers)
    persist_flag = cosmic = None
    if dq is not None:
        bad_bits = sum(1 << _flag_bit(flag, bit, headers) for flag, bit in UNUSABLE_FLAGS.items())
        good = (dq & np.uint32(bad_bits)) == 0
        usable &= good
        saturated &= good
        saturated |= (dq & np.uint32(1 << _flag_bit("SATUR", DEFAULT_SATUR_BIT, headers))) != 0
        persist_flag = (dq & np.uint32(1 << persist_bit)) != 0
        cosmic = (dq & np.uint32(1 << _flag_bit("COSMIC", DEFAULT_COSMIC_BIT, headers))) != 0
    return DetectorImage(
        detector=detector,
        data=np.ascontiguousarray(data),
        dq=None if dq is None else np.ascontiguousarray(dq),
        usable=usable,
        persist_flag=persist_flag,
        header=sci.header.copy(),
        persist_bit=persist_bit,
        saturated=saturated,
        cosmic=cosmic,
    )


def iter_detectors(path: str | Path, detectors: Iterable[str] | None = None) -> Iterator[DetectorImage]:
    """Yield the detectors of an exposure one at a time, in file order.

    Parameters
    ----------
    path
        A slew-dark exposure.
    detectors
        Detector ids to read (``'11'`` ...); None reads all present.

    Yields
    ------
    DetectorImage
        float32 electrons over the exposure on the 2040x2040 active area, NaN where
        there are no data; ``usable`` is False there and where DQ has an unusable bit.
    """
    path = Path(path)
    info = read_info(path)
    wanted = info.detectors if detectors is None else tuple(str(d) for d in detectors)
    missing = sorted(set(wanted) - set(info.detectors))
    if missing:
        raise ContractError(path, f"no extension for detector(s) {', '.join(missing)}")
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        indices = _detector_hdus(path, hdul)
        for detector in info.detectors:
            if detector in wanted:
                yield _load_detector(path, hdul, detector, indices[detector], info.exptime)


def read_detector(path: str | Path, detector: str) -> DetectorImage:
    """Read one detector of an exposure (see :func:`iter_detectors`)."""
    return next(iter_detectors(path, [detector]))


@contextlib.contextmanager
def fits_writer(path: str | Path, primary_header: fits.Header) -> Iterator[Callable[[fits.ImageHDU], None]]:
    """A multi-extension FITS file written one extension at a time under a temporary name.

    Yields a function that appends one image extension; the file is renamed to
    ``path`` only when the ``with`` block ends without an error, so several
    writers opened together (one ``contextlib.ExitStack``) publish their files
    together, in the reverse order of opening.

    Parameters
    ----------
    path
        Destination; an existing file is replaced only once the new one is complete.
    primary_header
        Header of the data-less primary HDU.
    """
    with atomic_path(path) as tmp:
        fits.PrimaryHDU(header=primary_header).writeto(tmp, overwrite=True, output_verify="exception")
        yield lambda hdu: fits.append(tmp, hdu.data, hdu.header, verify=False)


def write_fits_atomic(path: str | Path, primary_header: fits.Header, hdus: Iterable[fits.ImageHDU]) -> None:
    """Write a multi-extension FITS file under a temporary name, then rename it (:func:`fits_writer`).

    Parameters
    ----------
    path, primary_header
        As for :func:`fits_writer`.
    hdus
        Image extensions, written in order and one at a time, so a generator keeps
        only one extension in memory.
    """
    with fits_writer(path, primary_header) as append:
        for hdu in hdus:
            append(hdu)


def mask_hdus(layers: MaskLayers, with_dq: bool) -> list[fits.ImageHDU]:
    """The extensions of one detector in a mask product (``MASK``, ``PROB``, ``DQ``)."""
    det = layers.detector
    mask = layers.mask.astype(np.uint8)
    hdus = [fits.ImageHDU(mask, name=f"DET{det}.MASK")]
    hdus[0].header["DET_ID"] = det
    if layers.no_mask is not None:
        hdus[0].header["NOMASK"] = (layers.no_mask, "why MASK is all zero: the model did not run")
    if layers.prob is not None:
        hdus.append(fits.ImageHDU(layers.prob.astype(np.float32), name=f"DET{det}.PROB"))
    if with_dq:
        dq = np.zeros(mask.shape, np.uint32) if layers.dq is None else layers.dq.astype(np.uint32)
        dq = dq | (mask.astype(np.uint32) << np.uint32(layers.persist_bit))
        hdu = fits.ImageHDU(dq, name=f"DET{det}.DQ")
        hdu.header["HIERARCH MSK_FLAG_PERSIST"] = (layers.persist_bit, "bit set where MASK = 1")
        hdus.append(hdu)
    return hdus


def write_mask_product(
    path: str | Path, primary_header: fits.Header, detectors: Iterable[MaskLayers], with_dq: bool
) -> None:
    """Write ``<stem>.mask.fits`` per the data contract, atomically.

    Parameters
    ----------
    path
        Destination file.
    primary_header
        Provenance keywords (SDVER, GITREV, MODEL, MLRUN, PARAMSHA, INPUTSHA, DATE).
    detectors
        Layers per detector, in the input's order; consumed lazily, so a caller may
        compute one detector at a time.
    with_dq
        Also write ``DETxy.DQ`` with the persistence bit set where MASK is 1.
    """
    hdus = (hdu for layers in detectors for hdu in mask_hdus(layers, with_dq))
    write_fits_atomic(path, primary_header, hdus)


def read_mask_product(path: Path, detector: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``DETxy.MASK`` (as bool) and ``DETxy.PROB`` (or None) of a ``<stem>.mask.fits``.

    Raises
    ------
    ContractError
        When the file or the detector's mask is missing or malformed.
    """
    if not path.is_file():
        raise ContractError(path, "no such mask product (run `slewdark predict` on the held-out set)")
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        names = {hdu.name for hdu in hdul}
        mask_name, prob_name = f"DET{detector}.MASK", f"DET{detector}.PROB"
        if mask_name not in names:
            raise ContractError(path, f"no {mask_name} extension")
        mask = np.asarray(hdul[mask_name].data) > 0
        prob = np.asarray(hdul[prob_name].data, dtype=np.float32) if prob_name in names else None
    if prob is not None and prob.shape != mask.shape:
        raise ContractError(path, f"{prob_name} shape {prob.shape} differs from {mask_name} {mask.shape}")
    return mask, prob


PRODUCT_SUFFIX = ".mask.fits"


def mask_product_path(path: Path, out_dir: Path) -> Path:
    """``DIR/<stem>.mask.fits`` of an input ``<stem>.fits`` (or ``.fit``, ``.fits.gz``, any case)."""
    return out_dir / f"{exposure_stem(path)}{PRODUCT_SUFFIX}"
