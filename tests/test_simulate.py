"""The slew-dark simulator: contract, determinism and physics sanity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from slewdark.cli import main
from slewdark.config import load_params
from slewdark.io.fits import read_detector, read_info, read_truth
from slewdark.simulate import dataset
from slewdark.simulate.dataset import (
    SHAPE,
    ExposurePlan,
    generator,
    plan_exposure,
    simulate_dataset,
    simulate_detector,
)
from slewdark.simulate.detector import expected_cosmic_hits
from slewdark.simulate.persistence import persistence_signal
from slewdark.simulate.sky import trace_rate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params():
    return load_params(REPO / "params.yaml")


def tiny(params, out: Path, seed: int = 7, n: int = 1, detectors=("11",)):
    return params.simulate.model_copy(
        update={"out": str(out), "seed": seed, "n_exposures": n, "detectors": list(detectors)}
    )


def test_files_follow_the_contract(params, tmp_path):
    [path] = simulate_dataset(tiny(params, tmp_path, detectors=("11", "23")))
    info = read_info(path)
    assert info.detectors == ("11", "23")
    assert info.prev_gwa in params.simulate.sky.kinds and info.tsince in params.simulate.tsince
    assert (tmp_path / info.prev_file).is_file()
    assert read_info(tmp_path / info.prev_file).detectors == ("11", "23")
    det = read_detector(path, "23")
    assert det.data.shape == SHAPE and det.data.dtype == np.float32
    truth = read_truth(path.with_name(path.name.replace(".fits", ".truth.fits")), "23")
    assert truth.pers.shape == SHAPE and truth.cr.any() and truth.hot.any()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "sd007_0000.fits",
        "sd007_0000.prev.fits",
        "sd007_0000.truth.fits",
    ]
    layout = {
        "": ["DET11.SCI", "DET23.SCI"],
        ".prev": ["DET11.SCI", "DET23.SCI"],
        ".truth": [f"DET{d}.{kind}" for d in ("11", "23") for kind in ("PERS", "CR", "HOT", "SNOW")],
    }
    dtypes = {"SCI": np.float32, "PERS": np.float32, "CR": np.uint8, "HOT": np.uint8, "SNOW": np.uint8}
    for suffix, names in layout.items():
        with fits.open(tmp_path / f"sd007_0000{suffix}.fits") as hdul:
            assert hdul[0].data is None and [hdu.name for hdu in hdul[1:]] == names
            for hdu in hdul[1:]:
                assert (
                    hdu.data.shape == SHAPE
                    and hdu.data.dtype.newbyteorder("=") == dtypes[hdu.name.split(".")[1]]
                )
            header = hdul[0].header
            if suffix == "":
                assert (header["TELESCOP"], header["INSTRUME"], header["OBS_ID"]) == (
                    "EUCLID",
                    "NISP",
                    "sd007_0000",
                )
                assert header["EXPTIME"] == params.simulate.exptime and "DATE-OBS" in header
                assert header["PREVTILT"] in (0.0, *params.simulate.sky.tilts)
                assert hdul[1].header["BUNIT"] == "electron" and hdul[1].header["DET_ID"] == "11"
            if suffix == ".prev":
                assert header["TILT"] == info.prev_tilt and header["EXPTIME"] > 0
                assert info.prev_gwa in (header["GWA"], header["FILTER"])


def test_a_failed_exposure_leaves_no_file_and_keeps_the_old_ones(params, tmp_path, monkeypatch):
    cfg = tiny(params, tmp_path, detectors=("11", "22"))
    [path] = simulate_dataset(cfg)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = []

    def fail_on_second_detector(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return simulate_detector(*args)

    monkeypatch.setattr(dataset, "simulate_detector", fail_on_second_detector)
    with pytest.raises(RuntimeError, match="simulated crash"):
        simulate_dataset(cfg.model_copy(update={"seed": 8}))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert path.is_file()


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(params, tmp_path):
    a = simulate_dataset(tiny(params, tmp_path / "a"))[0]
    b = simulate_dataset(tiny(params, tmp_path / "b"))[0]
    c = simulate_dataset(tiny(params, tmp_path / "c", seed=8))[0]
    for suffix in (".fits", ".prev.fits", ".truth.fits"):
        name = a.name.replace(".fits", suffix)
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
    assert read_detector(a, "11").data.tobytes() != read_detector(c, "11").data.tobytes()


def test_cosmic_ray_and_hot_pixel_rates_match_the_configuration(params):
    cfg = params.simulate
    plan_layers = [simulate_detector(cfg, plan_exposure(cfg, i), "11") for i in range(2)]
    expected_hits = expected_cosmic_hits(cfg.exptime, cfg.cosmic_rays, cfg.detector, SHAPE)
    for layers in plan_layers:
        assert abs(layers.n_cosmic_hits / expected_hits - 1) < 0.2
        hit = layers.cosmic > cfg.cosmic_rays.truth_threshold
        _, found = ndimage.label(hit, structure=np.ones((3, 3)))
        assert abs(found / expected_hits - 1) < 0.2, "hits seen in the truth mask"
        assert abs(layers.hot.mean() / cfg.hot_pixels.fraction - 1) < 0.2
    np.testing.assert_array_equal(plan_layers[0].hot, plan_layers[1].hot)


def test_hot_pixels_are_measured_in_the_data(params):
    cfg = params.simulate
    layers = simulate_detector(cfg, plan_exposure(cfg, 0), "11")
    rate_min_charge = cfg.hot_pixels.rate_min * cfg.exptime
    bright = layers.science[layers.hot] > rate_min_charge / 2
    assert bright.mean() > 0.9


def test_persistence_decays_with_tsince_and_grows_with_fluence(params):
    pers, well = params.simulate.persistence, params.simulate.detector.full_well
    fluence = np.array([0.0, 0.1, 0.3, 0.6, 1.0, 3.0]) * well
    signal = persistence_signal(fluence, well, 60.0, 100.0, pers)
    assert signal[0] == 0 and np.all(np.diff(signal) > 0)
    later = [persistence_signal(fluence[-2:], well, t, 100.0, pers) for t in (60.0, 200.0, 600.0)]
    assert np.all(np.diff(np.stack(later), axis=0) < 0)


def test_default_data_hold_persistence_below_and_above_read_noise(params):
    cfg = params.simulate
    noise = cfg.detector.read_noise
    plan = ExposurePlan("x", 0, "RGS000", 0.0, 600.0, "2026-01-01T00:00:00")
    pers = simulate_detector(cfg, plan, "11").persistence
    assert (pers > 0.3 * noise).sum() > 1000 and ((pers > 0.3 * noise) & (pers < noise)).sum() > 1000
    assert (pers > 2 * noise).sum() > 1000


@pytest.mark.parametrize(
    ("kind", "tilt", "direction"),
    [("RGS000", 0.0, 90.0), ("RGS180", 0.0, 270.0), ("RGS000", 4.0, 94.0), ("RGS180", -4.0, 266.0)],
)
def test_trace_direction_follows_grism_and_tilt(params, kind, tilt, direction):
    sky = params.simulate.sky.model_copy(update={"zeroth_order_fraction": 0.0})
    rate = trace_rate(SHAPE, np.array([1020.0]), np.array([1020.0]), np.array([100.0]), kind, tilt, sky)
    rows, cols = np.indices(SHAPE)
    weight = rate / rate.sum()
    cy, cx = (weight * rows).sum(), (weight * cols).sum()
    angle = np.degrees(np.arctan2(cy - 1020.0, cx - 1020.0)) % 360
    assert abs(angle - direction) < 0.5
    assert np.hypot(cy - 1020, cx - 1020) > 0.3 * sky.trace_length


def test_cli_flags_override_params_and_heldout_uses_its_seed(tmp_path):
    args = ["--params", str(REPO / "params.yaml"), "-q", "simulate", "--out", str(tmp_path / "x")]
    assert main([*args, "--n-exposures", "1", "--detectors", "12", "--seed", "3"]) == 0
    assert read_info(tmp_path / "x" / "sd003_0000.fits").detectors == ("12",)
    assert main([*args, "--detectors", "55"]) == 2


def test_generator_streams_are_independent():
    a = generator(1, 2, 3).standard_normal(4)
    b = generator(1, 2, 4).standard_normal(4)
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, generator(1, 2, 3).standard_normal(4))


def test_bunit_adu_round_trips_to_electrons(params, tmp_path):
    cfg_e = tiny(params, tmp_path / "e")
    cfg_adu = cfg_e.model_copy(update={"out": str(tmp_path / "adu"), "bunit": "adu"})
    e = read_detector(simulate_dataset(cfg_e)[0], "11").data
    adu_path = simulate_dataset(cfg_adu)[0]
    with fits.open(adu_path) as hdul:
        assert hdul["DET11.SCI"].header["BUNIT"] == "adu"
    np.testing.assert_allclose(read_detector(adu_path, "11").data, e, rtol=1e-5, atol=1e-3)
