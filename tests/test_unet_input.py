"""The UNet's input: the slew dark in noise units, the previous exposure, and the law's persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits

from slewdark.core.law_fit import LawFitSettings
from slewdark.core.normalisation import BrightVeto, Normalisation
from slewdark.core.persistence_law import PersistenceModel
from slewdark.core.scaling import Scaling, scale_detector
from slewdark.inference.timing import NOMINAL_EXPTIME, NOMINAL_TSINCE, input_timing
from slewdark.inference.unet_input import detector_input
from slewdark.io.fits import read_detector, read_info
from slewdark.io.previous import optional_previous_exposure
from slewdark.training.unet_data import blank_previous

SIDE = 2040
NORMALISATION = Normalisation(Scaling("channel_row_block", 34, 3.0, -4.0, 100.0), 1e5)
LAW = PersistenceModel(
    amplitude=0.017, x0=6e4, dx=5e4, alpha=0.045, gamma=1.0, reference_time=1000.0, full_well=1e5
)
WITH_LAW = Normalisation(NORMALISATION.scaling, 1e5, LAW, LawFitSettings(1, 0.5, 4.0, 5, 50, 1.0))


def write(path: Path, image: np.ndarray, header: dict[str, object], dq: np.ndarray | None = None) -> Path:
    primary = fits.PrimaryHDU()
    for key, value in header.items():
        primary.header[key] = value
    hdus: list[fits.ImageHDU] = [fits.ImageHDU(image.astype(np.float32), name="DET11.SCI")]
    if dq is not None:
        dq_hdu = fits.ImageHDU(dq, name="DET11.DQ")
        dq_hdu.header["MSK_FLAG_SATUR"] = 10
        hdus.append(dq_hdu)
    fits.HDUList([primary, *hdus]).writeto(path)
    return path


def previous_fluence() -> tuple[np.ndarray, np.ndarray]:
    """Short bands of 1e4 e-, of saturation (SATUR bit) and of saturation delivered as NaN.

    Three rows by 400 columns, like a trace: the slew dark's background (row and
    34 px block medians) would take whole rows or wide bands for background.
    """
    fluence = np.zeros((SIDE, SIDE))
    fluence[100:103, :400] = 1e4
    fluence[200:203, :400] = 1e5
    dq = np.zeros((SIDE, SIDE), np.uint32)
    dq[200:203, :400] = 1 << 10
    fluence[300:303, :400] = np.nan
    return fluence, dq


@pytest.fixture
def exposure(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    fluence, dq = previous_fluence()
    write(tmp_path / "a.prev.fits", fluence, {"OBS_ID": "prev"}, dq)
    return write(tmp_path / "a.fits", 9.0 * rng.standard_normal((SIDE, SIDE)), {"PREVFILE": "a.prev.fits"})


def test_previous_exposure_is_on_a_fixed_log_scale_with_saturation_at_one(exposure: Path) -> None:
    info = read_info(exposure)
    prev = optional_previous_exposure(info)
    x = detector_input(exposure, read_detector(exposure, "11"), NORMALISATION, 2, prev)
    assert x.shape == (2, SIDE, SIDE) and x.dtype == np.float32
    assert x[1, 101, 5] == pytest.approx(np.log1p(10.0) / np.log1p(100.0), rel=1e-5)
    assert x[1, 201, 5] == 1.0 and x[1, 301, 5] == 1.0 and x[1, 500, 5] == 0.0


def test_without_prevfile_the_second_channel_is_empty(tmp_path: Path, exposure: Path) -> None:
    lone = write(tmp_path / "b.fits", fits.getdata(exposure, "DET11.SCI"), {"PREVFILE": "missing.fits"})
    assert optional_previous_exposure(read_info(lone)) is None
    x = detector_input(lone, read_detector(lone, "11"), NORMALISATION, 2, None)
    with_prev = detector_input(exposure, read_detector(exposure, "11"), NORMALISATION, 2, None)
    assert not x[1].any() and np.array_equal(x[0], with_prev[0])


def test_third_channel_is_the_law_scaled_to_this_dark(tmp_path: Path) -> None:
    fluence, dq = previous_fluence()
    write(tmp_path / "p.prev.fits", fluence, {"OBS_ID": "prev"}, dq)
    lab = LAW.predict(np.where(np.isnan(fluence), 1e5, fluence), 30.0, 300.0)
    rng = np.random.default_rng(0)
    darks = {}
    for amplitude in (0.0, 1.0, 10.0):  # none, the lab law, ten times it
        image = 9.0 * rng.standard_normal((SIDE, SIDE)) + amplitude * lab
        path = write(tmp_path / f"d{amplitude:g}.fits", image, {"PREVFILE": "p.prev.fits"})
        prev = optional_previous_exposure(read_info(path))
        darks[amplitude] = detector_input(path, read_detector(path, "11"), WITH_LAW, 3, prev, (30.0, 300.0))
        two = detector_input(path, read_detector(path, "11"), NORMALISATION, 2, prev)
        assert np.array_equal(darks[amplitude][:2], two)
    sigma = scale_detector(
        read_detector(path, "11").data, np.ones((SIDE, SIDE), bool), NORMALISATION.scaling
    ).sigma
    for row in (101, 201, 301):  # 301: saturated, delivered as NaN
        expected = NORMALISATION.scaling.squash_positive(np.array([10.0 * lab[row, 5] / sigma]))[0]
        assert darks[10.0][2, row, 5] == pytest.approx(expected, rel=0.05), (
            "the dark's own amplitude, not the lab's"
        )
        assert darks[10.0][2, row, 5] > darks[1.0][2, row, 5] > darks[0.0][2, row, 5]
    assert darks[0.0][2].max() < 0.05 and darks[10.0][2, 500, 5] == 0.0, "no persistence: channel at 0"
    path = tmp_path / "d10.fits"
    detector, prev = read_detector(path, "11"), optional_previous_exposure(read_info(path))
    unknown = detector_input(path, detector, WITH_LAW, 3, prev, (None, 300.0))
    assert not unknown[2].any() and np.array_equal(unknown[1], darks[10.0][1])
    assert not detector_input(path, detector, WITH_LAW, 3, None, (30.0, 300.0))[1:].any()


def test_third_channel_is_in_electrons_of_the_mask_level_whatever_the_noise(tmp_path: Path) -> None:
    fluence, dq = previous_fluence()
    write(tmp_path / "p.prev.fits", fluence, {"OBS_ID": "prev"}, dq)
    lab = LAW.predict(np.where(np.isnan(fluence), 1e5, fluence), 30.0, 300.0)
    in_electrons = Normalisation(
        NORMALISATION.scaling, 1e5, LAW, LawFitSettings(1, 0.5, 4.0, 5, 50, 1.0, mask_electrons=9.0)
    )
    rng = np.random.default_rng(1)
    channels = {}
    for noise in (6.0, 13.5):
        image = noise * rng.standard_normal((SIDE, SIDE)) + 10.0 * lab
        path = write(tmp_path / f"n{noise:g}.fits", image, {"PREVFILE": "p.prev.fits"})
        prev = optional_previous_exposure(read_info(path))
        channels[noise] = detector_input(
            path, read_detector(path, "11"), in_electrons, 3, prev, (30.0, 300.0)
        )
    for row in (101, 201):
        expected = NORMALISATION.scaling.squash_positive(np.array([10.0 * lab[row, 5] / 9.0]))[0]
        assert channels[6.0][2, row, 5] == pytest.approx(expected, rel=0.05)
        assert channels[13.5][2, row, 5] == pytest.approx(expected, rel=0.05)
    assert channels[13.5][0, 101, 5] < channels[6.0][0, 101, 5], "the dark itself stays in noise units"


def test_without_tsince_the_law_channel_takes_a_nominal_time_that_the_fit_absorbs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fluence, dq = previous_fluence()
    write(tmp_path / "p.prev.fits", fluence, {"OBS_ID": "prev"}, dq)
    lab = LAW.predict(np.where(np.isnan(fluence), 1e5, fluence), 30.0, 300.0)
    image = 9.0 * np.random.default_rng(2).standard_normal((SIDE, SIDE)) + 10.0 * lab
    header = {"PREVFILE": "p.prev.fits", "EXPTIME": 300.0}
    known = write(tmp_path / "known.fits", image, {**header, "TSINCE": 30.0})
    unknown = write(tmp_path / "unknown.fits", image, header)
    prev = optional_previous_exposure(read_info(known))
    timing, nominal = input_timing(known, read_info(known), 3, prev)
    assert timing == (30.0, 300.0) and not nominal
    with caplog.at_level("WARNING"):
        timing, nominal = input_timing(unknown, read_info(unknown), 3, prev)
    assert timing == (NOMINAL_TSINCE, 300.0) and nominal
    assert str(unknown) in caplog.text and "no TSINCE" in caplog.text
    assert input_timing(unknown, read_info(unknown), 2, prev) == ((None, 300.0), False)
    assert input_timing(unknown, read_info(unknown), 3, None) == ((None, 300.0), False)
    true = detector_input(known, read_detector(known, "11"), WITH_LAW, 3, prev, (30.0, 300.0))
    assumed = detector_input(unknown, read_detector(unknown, "11"), WITH_LAW, 3, prev, timing)
    lab_only = LAW.predict(np.where(np.isnan(fluence), 1e5, fluence), NOMINAL_TSINCE, NOMINAL_EXPTIME)
    assert lab_only[101, 5] < 0.5 * lab[101, 5], "the nominal time alone predicts other electrons"
    for row in (101, 201, 301):
        assert assumed[2, row, 5] == pytest.approx(true[2, row, 5], rel=0.01), "the fit absorbs the time"


def test_the_law_travels_with_the_normalisation_and_dropout_blanks_it() -> None:
    assert Normalisation.from_dict(WITH_LAW.to_dict()) == WITH_LAW
    older = {key: value for key, value in NORMALISATION.to_dict().items() if key not in ("law", "law_fit")}
    assert Normalisation.from_dict(older) == NORMALISATION and NORMALISATION.law is None
    x = torch.ones(4, 3, 8, 8)
    blanked = blank_previous(x, 1.0, torch.Generator().manual_seed(0))
    assert blanked[:, 0].eq(1).all() and not blanked[:, 1:].any(), "both channels come from PREVFILE"


def test_bright_veto_removes_cosmic_ray_like_pixels_and_keeps_faint_traces() -> None:
    rng = np.random.default_rng(1)
    electrons = 9.0 * rng.standard_normal((SIDE, SIDE))
    electrons[500, 500] = 2000.0  # a cosmic-ray pixel, 220 sigma
    electrons[1000:1003, 200:800] += 27.0  # a 3-sigma persistence trace
    usable = np.ones((SIDE, SIDE), bool)
    scaling = NORMALISATION.scaling
    image01 = scale_detector(electrons, usable, scaling).image

    vetoed = BrightVeto(sigma=30.0, grow=1).vetoed(image01, scaling)

    assert vetoed[499:502, 499:502].all()  # the hit and its IPC/diffusion neighbours
    assert vetoed.sum() == 9
    assert not vetoed[1000:1003, 200:800].any()
    assert BrightVeto.from_dict(None) is None
    assert BrightVeto.from_dict(BrightVeto(30.0, 1, 3).to_dict()) == BrightVeto(30.0, 1, 3)
    assert BrightVeto.from_dict(BrightVeto(30.0, 1, 3, 1).to_dict()) == BrightVeto(30.0, 1, 3, 1)
    assert BrightVeto.from_dict({"sigma": 30.0, "grow": 1}) == BrightVeto(
        30.0, 1, 0, None
    )  # older checkpoints


def test_veto_fill_flags_hits_on_a_flagged_trace_and_not_elsewhere() -> None:
    rng = np.random.default_rng(2)
    electrons = 9.0 * rng.standard_normal((SIDE, SIDE))
    electrons[1000:1003, 200:800] += 27.0  # a persistence trace, 3 px wide
    electrons[1001, 500] = 2000.0  # a cosmic ray on the trace: its veto covers the trace's width
    electrons[300, 300] = 2000.0  # and one on clean sky
    usable = np.ones((SIDE, SIDE), bool)
    scaling = NORMALISATION.scaling
    image01 = scale_detector(electrons, usable, scaling).image
    network_mask = np.zeros((SIDE, SIDE), bool)
    network_mask[1000:1003, 200:800] = True
    network_mask[300, 300] = True  # the network flags the lone hit: the veto must remove it

    filled = BrightVeto(sigma=30.0, grow=1, fill=3).apply(network_mask, image01, scaling)
    removed = BrightVeto(sigma=30.0, grow=1, fill=0).apply(network_mask, image01, scaling)

    assert filled[1000:1003, 200:800].all()  # closing bridges the gap the veto cut in the trace
    assert not filled[299:302, 299:302].any()
    assert filled.sum() == 3 * 600
    assert not removed[1000:1003, 499:502].any() and not removed[299:302, 299:302].any()
    assert removed.sum() == 3 * 600 - 9


def test_veto_spares_bright_persistence_where_the_previous_exposure_saturated() -> None:
    rng = np.random.default_rng(3)
    electrons = 9.0 * rng.standard_normal((SIDE, SIDE))
    electrons[600:620, 600:620] += 500.0  # persistence of a saturated star, brighter than the veto level
    electrons[1500, 1500] = 2000.0  # a cosmic ray on clean sky
    usable = np.ones((SIDE, SIDE), bool)
    scaling = NORMALISATION.scaling
    image01 = scale_detector(electrons, usable, scaling).image
    previous01 = np.zeros((SIDE, SIDE), np.float32)
    previous01[601:619, 601:619] = 1.0  # saturated in PREVFILE: the spot's core, 1 px inside it
    network_mask = np.zeros((SIDE, SIDE), bool)
    network_mask[600:620, 600:620] = True
    network_mask[1500, 1500] = True

    spared = BrightVeto(sigma=30.0, grow=1, spare_saturated=1).apply(
        network_mask, image01, scaling, previous01
    )
    everywhere = BrightVeto(sigma=30.0, grow=1).apply(network_mask, image01, scaling, previous01)
    without_previous = BrightVeto(sigma=30.0, grow=1, spare_saturated=1).apply(network_mask, image01, scaling)

    assert spared[600:620, 600:620].all() and not spared[1500, 1500]
    assert spared.sum() == 400
    assert not everywhere[600:620, 600:620].any() and not everywhere[1500, 1500]
    assert np.array_equal(without_previous, everywhere)


def test_veto_spares_bright_persistence_that_the_law_predicts() -> None:
    rng = np.random.default_rng(4)
    electrons = 9.0 * rng.standard_normal((SIDE, SIDE))
    electrons[600:610, 600:640] += 400.0  # a trace 40 x the lab law's persistence, unsaturated in PREVFILE
    electrons[605, 700] = 2000.0  # a cosmic ray beside it, where the law predicts nothing
    electrons[602, 620] = 3000.0  # and one on the trace
    usable = np.ones((SIDE, SIDE), bool)
    scaling = NORMALISATION.scaling
    image01 = scale_detector(electrons, usable, scaling).image
    predicted01 = np.zeros((SIDE, SIDE), np.float32)
    predicted01[600:610, 600:640] = scaling.squash_positive(40.0)  # the law scaled to the dark: 40 sigma
    network_mask = np.zeros((SIDE, SIDE), bool)
    network_mask[600:610, 600:640] = network_mask[605, 700] = True
    veto = BrightVeto(sigma=30.0, grow=1, spare_predicted=3.0)

    spared = veto.apply(network_mask, image01, scaling, None, predicted01)
    everywhere = BrightVeto(sigma=30.0, grow=1).apply(network_mask, image01, scaling, None, predicted01)

    assert spared[600:610, 600:640].all() and not spared[605, 700], "the trace kept, the hit off it vetoed"
    assert spared.sum() == 400
    assert not everywhere[600:610, 600:640].any()
    assert np.array_equal(veto.apply(network_mask, image01, scaling), everywhere), (
        "no law channel: no sparing"
    )
    assert BrightVeto.from_dict(veto.to_dict()) == veto
