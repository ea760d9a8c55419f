"""The FITS data contract: round trips and every kind of bad input."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from slewdark.errors import ContractError
from slewdark.evaluation.truth import read_truth
from slewdark.io.fits import (
    MaskLayers,
    iter_detectors,
    read_detector,
    read_info,
    write_fits_atomic,
    write_mask_product,
)


def exposure(path: Path, detectors=("11",), shape=(2040, 2040), bunit="electron", dtype=np.float32, **keys):
    """Write a contract exposure whose pixel value encodes its row and column."""
    header = fits.Header()
    header.update({"OBS_ID": "obs1", "EXPTIME": 100.0, "PREVGWA": "RGS000", "PREVTILT": 4.0, "TSINCE": 60.0})
    header.update(keys)
    rows, cols = np.indices(shape)
    hdus = []
    for det in detectors:
        hdu = fits.ImageHDU((rows + cols / 10000).astype(dtype), name=f"DET{det}.SCI")
        hdu.header["BUNIT"] = bunit
        hdu.header["GAIN"] = 2.0
        hdus.append(hdu)
    write_fits_atomic(path, header, hdus)
    return path


def test_round_trip_header_units_and_order(tmp_path):
    path = exposure(tmp_path / "a.fits", detectors=("22", "11"), bunit="electron/s")
    info = read_info(path)
    assert info.detectors == ("22", "11")
    assert (info.obs_id, info.exptime, info.prev_gwa, info.prev_tilt, info.tsince) == (
        "obs1",
        100.0,
        "RGS000",
        4.0,
        60.0,
    )
    det = read_detector(path, "11")
    assert det.data.dtype == np.float32 and det.data.shape == (2040, 2040)
    assert det.data[3, 7] == pytest.approx(100.0 * (3 + 7 / 10000), rel=1e-6)
    assert det.usable.all() and det.dq is None


def test_reference_border_is_stripped_and_adu_converted(tmp_path):
    path = exposure(tmp_path / "b.fits", shape=(2048, 2048), bunit="adu", dtype=np.int32)
    det = read_detector(path, "11")
    assert det.data.shape == (2040, 2040)
    assert det.data[0, 0] == pytest.approx(2.0 * (4 + 4 / 10000), rel=1e-3)


def test_obs_id_falls_back_to_stem_and_missing_bunit_is_electron(tmp_path):
    path = tmp_path / "stemname.fits"
    hdu = fits.ImageHDU(np.ones((2040, 2040), np.float32), name="DET31.SCI")
    write_fits_atomic(path, fits.Header(), [hdu])
    assert read_info(path).obs_id == "stemname"
    assert read_detector(path, "31").data[0, 0] == 1.0


def test_nan_and_dq_bits(tmp_path):
    path = tmp_path / "dq.fits"
    data = np.zeros((2040, 2040), np.float32)
    data[0, 0] = np.nan
    dq = np.zeros((2040, 2040), np.uint32)
    dq[1, 1] = 1 << 2  # DISCONNECTED: unusable
    dq[2, 2] = 1 << 7  # HOT: still data
    dq[3, 3] = 1 << 20  # PERSIST, renumbered by the header keyword below
    dq_hdu = fits.ImageHDU(dq, name="DET11.DQ")
    dq_hdu.header["HIERARCH MSK_FLAG_PERSIST"] = 20
    write_fits_atomic(path, fits.Header(), [fits.ImageHDU(data, name="DET11.SCI"), dq_hdu])
    det = read_detector(path, "11")
    assert not det.usable[0, 0] and not det.usable[1, 1] and det.usable[2, 2]
    assert det.persist_bit == 20 and det.persist_flag[3, 3] and det.persist_flag.sum() == 1
    assert det.cosmic is not None and not det.cosmic.any(), "no COSMIC bit set"


def test_cosmic_layer_from_the_cosmic_bit(tmp_path):
    data = np.zeros((2040, 2040), np.float32)
    dq = np.zeros((2040, 2040), np.uint32)
    dq[5, 5] = 1 << 16  # COSMIC in Euclid's layout
    dq[6, 6] = 1 << 17  # renumbered below: only this one counts then
    path = tmp_path / "prev.fits"
    write_fits_atomic(
        path, fits.Header(), [fits.ImageHDU(data, name="DET11.SCI"), fits.ImageHDU(dq, name="DET11.DQ")]
    )
    det = read_detector(path, "11")
    assert det.cosmic[5, 5] and det.cosmic.sum() == 1 and det.usable[5, 5], "flagged, and still data"
    dq_hdu = fits.ImageHDU(dq, name="DET11.DQ")
    dq_hdu.header["HIERARCH MSK_FLAG_COSMIC"] = 17
    write_fits_atomic(path, fits.Header(), [fits.ImageHDU(data, name="DET11.SCI"), dq_hdu])
    assert read_detector(path, "11").cosmic[6, 6] and read_detector(path, "11").cosmic.sum() == 1
    write_fits_atomic(path, fits.Header(), [fits.ImageHDU(data, name="DET11.SCI")])
    assert read_detector(path, "11").cosmic is None, "no DQ layer: nothing known"


def test_saturated_layer_from_the_satur_bit_and_unexplained_nan(tmp_path):
    data = np.zeros((2040, 2040), np.float32)
    data[10, 10] = 1e5  # capped at full well, SATUR bit set (renumbered to 11 by the primary header)
    data[20, 20] = np.nan  # NaN with no unusable bit: a saturated star's core
    data[30, 30] = np.nan  # NaN explained by DISCONNECTED: no data, not saturation
    dq = np.zeros((2040, 2040), np.uint32)
    dq[10, 10] = 1 << 11
    dq[30, 30] = 1 << 2
    dq[40, 40] = 1 << 10  # bit 10 means nothing once MSK_FLAG_SATUR says 11
    path = tmp_path / "prev.fits"
    primary = fits.Header()
    primary["HIERARCH MSK_FLAG_SATUR"] = 11
    hdus = [fits.ImageHDU(data, name="DET11.SCI"), fits.ImageHDU(dq, name="DET11.DQ")]
    write_fits_atomic(path, primary, hdus)
    det = read_detector(path, "11")
    assert det.saturated.dtype == bool
    assert det.saturated[10, 10] and det.saturated[20, 20] and det.saturated.sum() == 2
    assert det.usable[10, 10] and not det.usable[20, 20] and not det.usable[30, 30]

    write_fits_atomic(path, fits.Header(), [fits.ImageHDU(data, name="DET11.SCI")])
    without_dq = read_detector(path, "11")
    assert without_dq.saturated[20, 20] and without_dq.saturated[30, 30] and without_dq.saturated.sum() == 2


def test_mask_product_sets_persist_bit(tmp_path):
    mask = np.zeros((2040, 2040), np.uint8)
    mask[10, 20] = 1
    dq = np.zeros((2040, 2040), np.uint32)
    dq[0, 0] = 1 << 7
    layers = MaskLayers("11", mask, mask.astype(np.float32) * 0.9, dq, 13)
    out = tmp_path / "x.mask.fits"
    write_mask_product(out, fits.Header({"SDVER": "1"}), [layers], with_dq=True)
    with fits.open(out) as hdul:
        assert [h.name for h in hdul[1:]] == ["DET11.MASK", "DET11.PROB", "DET11.DQ"]
        assert hdul["DET11.MASK"].data.dtype == np.uint8
        assert hdul["DET11.DQ"].data[10, 20] == 1 << 13 and hdul["DET11.DQ"].data[0, 0] == 1 << 7
        assert hdul["DET11.DQ"].header["MSK_FLAG_PERSIST"] == 13


def test_truth_round_trip(tmp_path):
    path = tmp_path / "t.truth.fits"
    pers = np.full((2040, 2040), 2.5, np.float32)
    flags = np.zeros((2040, 2040), np.uint8)
    flags[5, 5] = 1
    hdus = [
        fits.ImageHDU(pers, name="DET11.PERS"),
        fits.ImageHDU(flags, name="DET11.CR"),
        fits.ImageHDU(flags, name="DET11.HOT"),
    ]
    write_fits_atomic(path, fits.Header(), hdus)
    truth = read_truth(path, "11")
    assert truth.pers[0, 0] == 2.5 and truth.cr[5, 5] and truth.hot.sum() == 1
    assert truth.snow.dtype == bool and not truth.snow.any()  # DET11.SNOW is optional
    write_fits_atomic(path, fits.Header(), [*hdus, fits.ImageHDU(flags, name="DET11.SNOW")])
    assert read_truth(path, "11").snow[5, 5]
    with pytest.raises(ContractError, match=r"no DET12\.PERS"):
        read_truth(path, "12")


def test_failed_write_keeps_the_existing_file(tmp_path):
    path = exposure(tmp_path / "keep.fits")
    before = path.read_bytes()

    def broken():
        yield fits.ImageHDU(np.zeros((2040, 2040), np.float32), name="DET11.SCI")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        write_fits_atomic(path, fits.Header(), broken())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.fits"]


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """One file per kind of contract violation, with the expected message."""
    good = exposure(tmp_path / "good.fits")
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "text.fits"
    text.write_text("this is not FITS\n")
    no_det = tmp_path / "nodet.fits"
    write_fits_atomic(no_det, fits.Header(), [fits.ImageHDU(np.zeros((2040, 2040)), name="SCI")])
    shape = exposure(tmp_path / "shape.fits", shape=(100, 200))
    garbled = tmp_path / "garbled.fits"
    raw = bytearray(good.read_bytes())
    raw[0:80] = b"GARBLED HEADER CARD".ljust(80)
    garbled.write_bytes(bytes(raw))
    bad_key = exposure(tmp_path / "badkey.fits", EXPTIME="long")
    unit = exposure(tmp_path / "unit.fits", bunit="Jy")
    cube = tmp_path / "cube.fits"
    write_fits_atomic(
        cube, fits.Header(), [fits.ImageHDU(np.zeros((3, 2040, 2040), np.float32), name="DET11.SCI")]
    )
    twice = tmp_path / "twice.fits"
    sci = fits.ImageHDU(np.zeros((2040, 2040), np.float32), name="DET11.SCI")
    write_fits_atomic(twice, fits.Header(), [sci, fits.ImageHDU(sci.data, name="DET12.SCI"), sci.copy()])
    gz_truncated = tmp_path / "truncated.fits.gz"
    gz_truncated.write_bytes(gzip.compress(good.read_bytes())[:-100])
    return {
        "truncated": (truncated, "truncated"),
        "not FITS": (text, "not a readable FITS file"),
        "no extension": (no_det, "no DETxy.SCI extension"),
        "wrong shape": (shape, "is not 2040x2040"),
        "unreadable header": (garbled, "not a readable FITS file"),
        "non-numeric keyword": (bad_key, "EXPTIME='long' is not a number"),
        "unknown unit": (unit, "BUNIT 'jy'"),
        "missing": (tmp_path / "absent.fits", "no such file"),
        "3-D image": (cube, "DET11.SCI: shape (3, 2040, 2040) is not 2040x2040"),
        "extension twice": (twice, "DET11.SCI appears twice (HDU 1 and HDU 3)"),
        "truncated gzip": (gz_truncated, "truncated or corrupt compressed file"),
    }


def test_every_contract_violation_is_one_named_error(tmp_path):
    for kind, (path, expected) in bad_files(tmp_path).items():
        with pytest.raises(ContractError) as caught:
            list(iter_detectors(path))
        message = str(caught.value)
        assert message.startswith(str(path)), kind
        assert expected in message, (kind, message)
        assert "\n" not in message, kind


def test_written_files_get_normal_permissions(tmp_path):
    import os

    path = exposure(tmp_path / "perm.fits")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_gzip_exposure_reads_like_the_plain_file(tmp_path):
    plain = exposure(tmp_path / "plain.fits", detectors=("22", "11"))
    packed = tmp_path / "packed.FITS.GZ"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    info = read_info(packed)
    assert info.detectors == ("22", "11") and info.obs_id == "obs1"
    for det_plain, det_packed in zip(iter_detectors(plain), iter_detectors(packed), strict=True):
        assert np.array_equal(det_plain.data, det_packed.data)


def test_detectors_are_not_kept_in_memory_after_use(tmp_path):
    path = exposure(tmp_path / "four.fits", detectors=("11", "12", "21", "22"))
    one_detector = 2040 * 2040 * 4
    tracemalloc.start()
    try:
        for detector in iter_detectors(path):
            del detector
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * one_detector, f"peak {peak / one_detector:.1f} detectors"
