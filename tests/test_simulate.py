"""The slew-dark simulator: contract, determinism, physics and the ranges it spans."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from slewdark.cli import main
from slewdark.config import load_params
from slewdark.core.persistence_law import persistence_signal
from slewdark.errors import ParamsError
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.io.fits import read_detector, read_info
from slewdark.simulate import dataset
from slewdark.simulate.dataset import (
    COSMIC_BIT,
    SATUR_BIT,
    SHAPE,
    ScienceExposure,
    generator,
    plan_exposure,
    simulate_dataset,
    simulate_datasets,
    simulate_detector,
)
from slewdark.simulate.detector import expected_cosmic_hits, hot_pixels
from slewdark.simulate.persistence import law_signal, trap_factor
from slewdark.simulate.render import orient
from slewdark.simulate.sky import trace_rate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def params():
    return load_params(REPO / "params.yaml")


def tiny(params, out: Path, seed: int = 7, n: int = 1, detectors=("11",), **update):
    """A small simulation into ``out``, truth beside the exposures unless ``truth_out`` is given."""
    fields = {
        "out": str(out),
        "truth_out": None,
        "seed": seed,
        "n_exposures": n,
        "detectors": list(detectors),
    }
    return params.simulate.model_copy(update=fields | update)


def grism_plan(cfg, tsince: float = 60.0, richness: float = 3.0, **update):
    """Exposure 0's plan with a bright RGS000 previous exposure, no history, not persistence-free."""
    previous = ScienceExposure("RGS000", 0.0, richness, cfg.sky.spectro_exptime, tsince)
    fields = {"previous": previous, "history": (), "persistence_free": False, "exptime": 100.0, **update}
    return dataclasses.replace(plan_exposure(cfg, 0), **fields)


def test_files_follow_the_contract(params, tmp_path):
    [path] = simulate_dataset(tiny(params, tmp_path, detectors=("11", "23")))
    info = read_info(path)
    cfg = params.simulate
    assert info.detectors == ("11", "23")
    assert info.prev_gwa in cfg.sky.kinds and info.prev_tilt in (0.0, *cfg.sky.tilts)
    assert cfg.tsince[0] <= info.tsince <= cfg.tsince[1] or info.header["SIMPFREE"]
    assert cfg.exptime[0] <= info.exptime <= cfg.exptime[1]
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
        ".prev": ["DET11.SCI", "DET11.DQ", "DET23.SCI", "DET23.DQ"],
        ".truth": [f"DET{d}.{kind}" for d in ("11", "23") for kind in ("PERS", "CR", "HOT", "SNOW")],
    }
    dtypes = {
        "SCI": np.float32,
        "DQ": np.uint32,
        "PERS": np.float32,
        "CR": np.uint8,
        "HOT": np.uint8,
        "SNOW": np.uint8,
    }
    for suffix, names in layout.items():
        with fits.open(tmp_path / f"sd007_0000{suffix}.fits") as hdul:
            assert hdul[0].data is None and [hdu.name for hdu in hdul[1:]] == names
            for hdu in hdul[1:]:
                kind = hdu.name.split(".")[1]
                assert hdu.data.shape == SHAPE and hdu.data.dtype.newbyteorder("=") == dtypes[kind]
            header = hdul[0].header
            if suffix == "":
                assert (header["TELESCOP"], header["INSTRUME"], header["OBS_ID"]) == (
                    "EUCLID",
                    "NISP",
                    "sd007_0000",
                )
                assert "DATE-OBS" in header and "NHIST" not in header
                assert hdul[1].header["BUNIT"] == "electron" and hdul[1].header["DET_ID"] == "11"
                assert hdul[1].header["SIMORIEN"] in cfg.orientation
            if suffix == ".prev":
                assert header["TILT"] == info.prev_tilt and header["EXPTIME"] > 0
                assert info.prev_gwa in (header["GWA"], header["FILTER"])
                assert header["MSK_FLAG_SATUR"] == SATUR_BIT == hdul["DET11.DQ"].header["MSK_FLAG_SATUR"]
                assert hdul["DET11.SCI"].header["SIMORIEN"] == hdul_orientation(path, "11")
            if suffix == ".truth":
                assert header["NHIST"] >= 0


def hdul_orientation(path: Path, detector: str) -> int:
    with fits.open(path) as hdul:
        return hdul[f"DET{detector}.SCI"].header["SIMORIEN"]


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
    a = simulate_dataset(tiny(params, tmp_path / "a", detectors=("11", "23")))[0]
    b = simulate_dataset(tiny(params, tmp_path / "b", detectors=("11", "23")))[0]
    c = simulate_dataset(tiny(params, tmp_path / "c", seed=8))[0]
    alone = simulate_dataset(tiny(params, tmp_path / "d", detectors=("23",)))[0]
    for suffix in (".fits", ".prev.fits", ".truth.fits"):
        name = a.name.replace(".fits", suffix)
        assert (a.parent / name).read_bytes() == (b.parent / name).read_bytes()
        with fits.open(a.parent / name) as both, fits.open(alone.parent / name) as one:
            for hdu in one[1:]:
                np.testing.assert_array_equal(
                    hdu.data, both[hdu.name].data, err_msg="subset changed a detector"
                )
    assert read_detector(a, "11").data.tobytes() != read_detector(c, "11").data.tobytes()


def test_cosmic_ray_and_hot_pixel_rates_follow_the_exposure(params):
    cfg = params.simulate
    plans = [plan_exposure(cfg, i) for i in range(2)]
    layers = [simulate_detector(cfg, plan, "11") for plan in plans]
    for plan, layer in zip(plans, layers, strict=True):
        assert cfg.cosmic_rays.rate_factor[0] <= plan.cosmic_rate_factor <= cfg.cosmic_rays.rate_factor[1]
        expected = expected_cosmic_hits(
            plan.exptime, plan.cosmic_rate_factor, cfg.cosmic_rays, cfg.detector, SHAPE
        )
        assert abs(layer.n_cosmic_hits / expected - 1) < 0.2
        _, found = ndimage.label(layer.cosmic > cfg.cosmic_rays.truth_threshold, structure=np.ones((3, 3)))
        assert abs(found / expected - 1) < 0.25, "hits seen in the truth mask"
        assert abs(layer.hot.mean() / plan.hot_fraction - 1) < 0.1
    small, large = sorted(layers, key=lambda layer: layer.hot.sum())
    assert small.hot.sum() < large.hot.sum() and not (small.hot & ~large.hot).any(), (
        "hot pixels must stay put"
    )


def test_hot_pixels_are_nested_and_stable_across_fractions(params):
    cfg = params.simulate.hot_pixels
    masks = [hot_pixels(SHAPE, f, cfg, generator(5, 3, 11)) for f in (0.001, 0.003, 0.005)]
    for lower, higher in itertools.pairwise(masks):
        assert not (lower.mask & ~higher.mask).any()
        np.testing.assert_array_equal(lower.rate[lower.mask], higher.rate[lower.mask])
    assert hot_pixels(SHAPE, 0.0, cfg, generator(5, 3, 11)).mask.sum() == 0


def test_hot_pixels_are_measured_in_the_data(params):
    cfg = params.simulate
    plan = plan_exposure(cfg, 0)
    layers = simulate_detector(cfg, plan, "11")
    bright = layers.science[layers.hot] > cfg.hot_pixels.rate_min * plan.exptime / 2
    assert bright.mean() > 0.9


def test_fermi_law_matches_the_lab_fit(params):
    pers, well = params.simulate.persistence, params.simulate.detector.full_well
    fluence = np.array([1e4, 0.5 * well, well])
    signal = persistence_signal(fluence, well, 60.0, 100.0, pers)
    np.testing.assert_allclose(signal, [1.5, 7.4, 11.8], rtol=0.03)
    below = persistence_signal(np.array([0.0, 1e3, 2e4, 4e4]), well, 60.0, 100.0, pers)
    np.testing.assert_allclose(below, np.array([0.0, 1e3, 2e4, 4e4]) / (0.5 * well) * signal[1], rtol=1e-5)
    rising = persistence_signal(np.array([0.3, 0.6, 1.0, 3.0, 30.0]) * well, well, 60.0, 100.0, pers)
    assert np.all(np.diff(rising) > 0) and rising[-1] < 2 * rising[2], "slow growth beyond full well"
    later = [persistence_signal(fluence, well, t, 100.0, pers) for t in (60.0, 200.0, 600.0)]
    assert np.all(np.diff(np.stack(later), axis=0) < 0)
    np.testing.assert_allclose(later[2] / later[0], np.log(7 / 6) / np.log(160 / 60), rtol=1e-4)


def test_trap_law_matches_the_fermi_law_at_full_well_and_differs_in_shape(params):
    fermi, well = params.simulate.persistence, params.simulate.detector.full_well
    traps = fermi.model_copy(update={"law": "traps"})
    ref, step = fermi.reference_time, 1.0
    at_reference = [law_signal(np.array([well]), well, ref, step, law)[0] for law in (fermi, traps)]
    np.testing.assert_allclose(at_reference[1], at_reference[0], rtol=1e-3)
    fluence = np.array([1e3, 1e4, 5e4, well, 10 * well])
    per_electron = law_signal(fluence, well, 60.0, 100.0, traps) / fluence
    assert np.all(np.diff(per_electron) < 0), "traps fill: each electron of fluence leaves less"
    ratio = law_signal(fluence, well, 60.0, 100.0, traps) / law_signal(fluence, well, 60.0, 100.0, fermi)
    assert ratio[1] > 1.5 * ratio[3] and ratio[4] < ratio[3], "no Fermi step, no growth beyond full well"


def test_trap_law_releases_each_family_exponentially(params):
    well = params.simulate.detector.full_well
    families = {"time_constants": [300.0], "weights": [1.0]}
    one_family = params.simulate.persistence.traps.model_copy(update=families)
    law = params.simulate.persistence.model_copy(update={"law": "traps", "traps": one_family})
    early, late = (law_signal(np.array([well]), well, t, 100.0, law)[0] for t in (60.0, 660.0))
    np.testing.assert_allclose(late / early, np.exp(-600.0 / 300.0), rtol=1e-5)


def test_trap_law_is_drawn_in_the_data_and_recorded(params, tmp_path):
    cfg = params.simulate
    plan = grism_plan(cfg)
    fermi = simulate_detector(with_amplitude_factor(cfg, 1.0, 1.0), plan, "11")
    traps = simulate_detector(with_law(with_amplitude_factor(cfg, 1.0, 1.0), law="traps"), plan, "11")
    np.testing.assert_array_equal(traps.fluence, fermi.fluence)
    faint = (fermi.fluence > 1e3) & (fermi.fluence < 1e4)
    assert np.median(traps.persistence[faint] / fermi.persistence[faint]) > 1.5
    [path] = simulate_dataset(tiny(params, tmp_path, persistence=with_law(cfg, law="traps").persistence))
    with fits.open(path) as dark, fits.open(truth_file(path)) as truth:
        assert dark["DET11.SCI"].header["SIMPLAW"] == truth["DET11.PERS"].header["SIMPLAW"] == "traps"


def test_trap_density_is_lognormal_and_stable_per_detector(params):
    cfg = params.simulate.persistence
    factor, scale = trap_factor(SHAPE, cfg, generator(1, 4, 11))
    logs = np.log(factor / scale)
    assert abs(np.median(logs)) < 0.005 and abs(logs.std() / cfg.trap_sigma - 1) < 0.01
    again, same_scale = trap_factor(SHAPE, cfg, generator(1, 4, 11))
    np.testing.assert_array_equal(factor, again)
    scales = [trap_factor((2, 2), cfg, generator(1, 4, det))[1] for det in range(200)]
    assert abs(np.std(np.log(scales)) / cfg.detector_scale_sigma - 1) < 0.2 and same_scale == scale


def with_law(cfg, **ranges):
    persistence = cfg.persistence.model_copy(update=ranges)
    return cfg.model_copy(update={"persistence": persistence})


def with_amplitude_factor(cfg, low: float, high: float):
    return with_law(cfg, amplitude_factor=(low, high))


def test_amplitude_factor_scales_the_persistence_and_nothing_else(params):
    cfg = params.simulate
    plan = grism_plan(cfg)
    nominal = simulate_detector(with_amplitude_factor(cfg, 1.0, 1.0), plan, "11")
    tripled = simulate_detector(with_amplitude_factor(cfg, 3.0, 3.0), plan, "11")
    assert (nominal.amplitude_factor, tripled.amplitude_factor) == (1.0, 3.0)
    np.testing.assert_allclose(tripled.persistence, 3.0 * nominal.persistence, rtol=1e-6)
    np.testing.assert_array_equal(tripled.fluence, nominal.fluence)
    np.testing.assert_array_equal(tripled.cosmic, nominal.cosmic)


def test_amplitude_factor_is_drawn_per_detector_and_recorded(params, tmp_path):
    cfg = with_amplitude_factor(params.simulate, 0.5, 30.0)
    [path] = simulate_dataset(tiny(params, tmp_path, detectors=("11", "23"), persistence=cfg.persistence))
    factors = []
    with fits.open(path) as dark, fits.open(truth_file(path)) as truth:
        for det in ("11", "23"):
            factor = dark[f"DET{det}.SCI"].header["SIMPAMP"]
            assert truth[f"DET{det}.PERS"].header["SIMPAMP"] == factor
            factors.append(factor)
    assert all(0.5 <= f <= 30.0 for f in factors) and factors[0] != factors[1]


def test_shape_factors_move_the_fermi_step_and_nothing_else(params):
    cfg = with_law(params.simulate, x0_factor=(1.0, 1.0), dx_factor=(1.0, 1.0))
    plan = grism_plan(cfg)
    lab = simulate_detector(cfg, plan, "11")
    later = simulate_detector(with_law(cfg, x0_factor=(1.5, 1.5), dx_factor=(0.5, 0.5)), plan, "11")
    assert (lab.law_x0, lab.law_dx) == (cfg.persistence.x0, cfg.persistence.dx)
    assert (later.law_x0, later.law_dx) == (1.5 * cfg.persistence.x0, 0.5 * cfg.persistence.dx)
    np.testing.assert_array_equal(later.fluence, lab.fluence)
    np.testing.assert_array_equal(later.cosmic, lab.cosmic)
    well = cfg.detector.full_well
    moved = cfg.persistence.model_copy(update={"x0": later.law_x0, "dx": later.law_dx})
    ratio = persistence_signal(lab.fluence, well, 60.0, 100.0, moved) / np.maximum(
        persistence_signal(lab.fluence, well, 60.0, 100.0, cfg.persistence), 1e-30
    )
    lit = lab.persistence > 0
    np.testing.assert_allclose(later.persistence[lit], (lab.persistence * ratio)[lit], rtol=1e-4)
    assert ratio[lab.fluence > 0].min() < 0.5, "mid-fluence pixels lose most of their persistence"


def test_shape_factors_are_drawn_per_detector_and_recorded(params, tmp_path):
    cfg = with_law(params.simulate, x0_factor=(0.7, 1.4), dx_factor=(0.7, 1.4))
    [path] = simulate_dataset(tiny(params, tmp_path, detectors=("11", "23"), persistence=cfg.persistence))
    steps = []
    with fits.open(path) as dark, fits.open(truth_file(path)) as truth:
        for det in ("11", "23"):
            header = dark[f"DET{det}.SCI"].header
            assert truth[f"DET{det}.PERS"].header["SIMPX0"] == header["SIMPX0"]
            steps.append((header["SIMPX0"] / cfg.persistence.x0, header["SIMPDX"] / cfg.persistence.dx))
    assert all(0.7 <= f <= 1.4 for step in steps for f in step) and steps[0] != steps[1]


def test_read_noise_is_drawn_per_exposure_from_a_stream_of_its_own(params):
    cfg = params.simulate
    pinned = cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"read_noise": (9.0, 9.0)})})
    for index in range(6):
        plan, fixed = plan_exposure(cfg, index), plan_exposure(pinned, index)
        noise = plan.readout.read_noise
        assert cfg.detector.read_noise[0] <= noise <= cfg.detector.read_noise[1]
        assert fixed.readout.read_noise == 9.0
        same_draws = dataclasses.replace(fixed, readout=dataclasses.replace(fixed.readout, read_noise=noise))
        assert same_draws == plan, "pinning the read noise leaves every other draw as it was"
    assert len({plan_exposure(cfg, index).readout.read_noise for index in range(6)}) == 6


def test_default_data_hold_persistence_below_and_above_read_noise(params):
    cfg = params.simulate
    pers = simulate_detector(cfg, grism_plan(cfg), "11").persistence
    for noise in cfg.detector.read_noise:
        assert ((pers > 0.3 * noise) & (pers < noise)).sum() > 1000
        assert (pers > noise).sum() > 100


def test_history_adds_persistence_out_of_prevfile_reach(params):
    cfg = params.simulate
    photometric = ScienceExposure("Y", 0.0, 0.2, cfg.sky.photo_exptime, 30.0)
    earlier = ScienceExposure(
        "RGS180", 4.0, 3.0, cfg.sky.spectro_exptime, 30.0 + cfg.sky.photo_exptime + 60.0
    )
    without = simulate_detector(cfg, grism_plan(cfg, previous=photometric), "11")
    with_history = simulate_detector(cfg, grism_plan(cfg, previous=photometric, history=(earlier,)), "11")
    np.testing.assert_array_equal(without.fluence, with_history.fluence)
    faint_in_prev = ndimage.maximum_filter(without.fluence, size=5) < 1e3
    added = with_history.persistence - without.persistence
    assert added.min() >= 0
    assert ((with_history.persistence > 3.0) & faint_in_prev).sum() > 1000
    assert ((without.persistence > 3.0) & faint_in_prev).sum() == 0


def test_previous_exposure_is_an_observation_with_saturation_flags(params):
    cfg = params.simulate
    well, noise = cfg.detector.full_well, grism_plan(cfg).readout.read_noise
    with_cosmics = simulate_detector(cfg, grism_plan(cfg), "11")
    no_cosmics = cfg.model_copy(update={"cosmic_rays": cfg.cosmic_rays.model_copy(update={"rate": 0.0})})
    capped = simulate_detector(no_cosmics, grism_plan(cfg, nan_saturated=False), "11")
    hits = (with_cosmics.previous.science > 6 * noise) & (with_cosmics.fluence == 0)
    assert hits.sum() > 1000, "cosmic rays in the previous exposure"
    prev = capped.previous
    saturated = (prev.dq & (1 << SATUR_BIT)) != 0
    assert saturated[capped.fluence > 1.05 * well].all() and saturated.sum() > 100
    assert (saturated & (capped.fluence < 0.5 * well)).mean() < 1e-5, "only cosmic rays on bright pixels"
    assert np.all(prev.science[saturated] == well)
    dark = capped.fluence == 0
    assert abs(robust_std(prev.science[dark]) / noise - 1) < 0.05, "read noise where nothing shone"
    mid = (capped.fluence > 2e4) & (capped.fluence < 5e4)
    residual = (prev.science[mid] - capped.fluence[mid]) / np.sqrt(capped.fluence[mid] + noise**2)
    assert mid.sum() > 1000 and abs(robust_std(residual) - 1) < 0.1, "Poisson noise"
    nan = simulate_detector(no_cosmics, grism_plan(cfg, nan_saturated=True), "11").previous
    np.testing.assert_array_equal(np.isnan(nan.science), saturated)
    np.testing.assert_array_equal(nan.dq, prev.dq)


def test_the_previous_exposures_pipeline_flags_a_share_of_its_cosmic_rays(params, tmp_path):
    cfg = params.simulate
    layers = {
        share: simulate_detector(cfg, grism_plan(cfg, nan_saturated=False, cosmic_flagged=share), "11")
        for share in (0.0, 0.5, 1.0)
    }
    np.testing.assert_array_equal(layers[0.0].previous.science, layers[1.0].previous.science)
    flags = {share: (layer.previous.dq & (1 << COSMIC_BIT)) != 0 for share, layer in layers.items()}
    assert not flags[0.0].any(), "none flagged"
    hit = (layers[1.0].previous.science > 20 * max(cfg.detector.read_noise)) & (layers[1.0].fluence == 0)
    assert hit.sum() > 1000 and flags[1.0][hit].mean() > 0.99, "every bright hit flagged"
    hits, n_hits = ndimage.label(flags[1.0], structure=np.ones((3, 3), bool))
    kept = np.unique(hits[flags[0.5]])
    assert 0.4 < len(kept) / n_hits < 0.6, "half the hits"
    np.testing.assert_array_equal(flags[0.5], np.isin(hits, kept), "whole hits, flagged or not")

    [path] = simulate_dataset(tiny(params, tmp_path))
    prev = read_detector(tmp_path / read_info(path).prev_file, "11")
    assert prev.cosmic is not None and fits.getval(path.with_suffix(".prev.fits"), "MSK_FLAG_COSMIC") == 16


def robust_std(values: np.ndarray) -> float:
    """Standard deviation from the median absolute deviation (cosmic rays do not move it)."""
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def test_orientation_turns_the_sky_but_not_the_detector(params):
    cfg = params.simulate
    plan = grism_plan(cfg, richness=0.5)
    upright = simulate_detector(cfg.model_copy(update={"orientation": [0]}), plan, "11")
    turned = simulate_detector(cfg.model_copy(update={"orientation": [1]}), plan, "11")
    assert (upright.orientation, turned.orientation) == (0, 1)
    np.testing.assert_array_equal(turned.fluence, orient(upright.fluence, 1))
    np.testing.assert_array_equal(turned.hot, upright.hot)
    np.testing.assert_array_equal(turned.cosmic, upright.cosmic)
    for layers, along in ((upright, 0), (turned, 1)):
        image = np.log1p(layers.fluence)
        smooth_along = (np.diff(image, axis=along) ** 2).sum()
        smooth_across = (np.diff(image, axis=1 - along) ** 2).sum()
        assert smooth_along < 0.2 * smooth_across, "traces run along the dispersion axis"


@pytest.mark.parametrize(("transform", "direction"), [(0, (1, 0)), (1, (0, 1)), (2, (-1, 0)), (4, (0, 1))])
def test_orientation_moves_a_trace_as_documented(params, transform, direction):
    sky = params.simulate.sky.model_copy(update={"zeroth_order_fraction": 0.0})
    rate = orient(
        trace_rate(SHAPE, np.array([1020.0]), np.array([1020.0]), np.array([100.0]), "RGS000", 0.0, sky),
        transform,
    )
    rows, cols = np.indices(SHAPE)
    weight = rate / rate.sum()
    shift = np.array([(weight * rows).sum() - 1019.5, (weight * cols).sum() - 1019.5])
    np.testing.assert_allclose(shift / np.hypot(*shift), direction, atol=0.02)


def test_every_drawn_value_is_recorded_and_fixed_ranges_are_exact(params, tmp_path):
    fixed = {
        "exptime": (120.0, 120.0),
        "tsince": (75.0, 75.0),
        "persistence_free_fraction": 0.0,
        "detector": params.simulate.detector.model_copy(update={"amp_glow": (7.0, 7.0)}),
    }
    [path] = simulate_dataset(tiny(params, tmp_path, **fixed))
    header = read_info(path).header
    plan = plan_exposure(tiny(params, tmp_path, **fixed), 0)
    assert (header["EXPTIME"], header["TSINCE"], header["SIMGLOW"]) == (120.0, 75.0, 7.0)
    recorded = {
        "SIMCRF": plan.cosmic_rate_factor,
        "SIMHOTF": plan.hot_fraction,
        "SIMCHOFF": plan.readout.channel_offset_sigma,
        "SIMROWN": plan.readout.row_noise_sigma,
        "SIMPFREE": plan.persistence_free,
    }
    assert {key: header[key] for key in recorded} == pytest.approx(recorded, rel=1e-12)
    with fits.open(path.with_name("sd007_0000.prev.fits")) as prev:
        assert prev[0].header["SIMRICH"] == pytest.approx(plan.previous.richness, rel=1e-12)
        assert prev[0].header["SIMNANS"] == plan.nan_saturated
    with fits.open(path.with_name("sd007_0000.truth.fits")) as truth:
        assert truth[0].header["NHIST"] == len(plan.history)
        for k, earlier in enumerate(plan.history, start=1):
            assert truth[0].header[f"HIST{k}GWA"] == earlier.kind
            assert truth[0].header[f"HIST{k}TSI"] == pytest.approx(earlier.tsince, rel=1e-12)


def test_draws_span_their_ranges(params):
    cfg = params.simulate
    plans = [plan_exposure(cfg, i) for i in range(40)]
    free = [plan.persistence_free for plan in plans]
    assert sum(free) == round(40 * cfg.persistence_free_fraction)
    for plan in plans:
        assert cfg.exptime[0] <= plan.exptime <= cfg.exptime[1]
        bounds = cfg.persistence_free_tsince if plan.persistence_free else cfg.tsince
        assert bounds[0] <= plan.previous.tsince <= bounds[1]
        assert len(plan.history) <= (0 if plan.persistence_free else cfg.history.max_exposures)
        ends = [plan.previous.tsince + plan.previous.exptime] + [e.tsince + e.exptime for e in plan.history]
        for end, earlier in zip(ends, plan.history, strict=False):
            assert cfg.history.gap[0] <= earlier.tsince - end <= cfg.history.gap[1]
    n_kinds = len(cfg.sky.kinds)
    for start in range(0, 36, n_kinds):
        cycle = sorted(plan.previous.kind for plan in plans[start : start + n_kinds])
        assert cycle == sorted(cfg.sky.kinds), "every kind once per cycle"
    assert {len(plan.history) for plan in plans if not plan.persistence_free} == {0, 1, 2}
    richness = np.log([plan.previous.richness for plan in plans])
    assert richness.max() - richness.min() > 0.7 * np.log(cfg.sky.richness[1] / cfg.sky.richness[0])


def test_persistence_free_darks_hold_next_to_nothing(params, tmp_path):
    cfg = tiny(params, tmp_path, persistence_free_fraction=1.0)
    plans = [plan_exposure(cfg, i) for i in range(5)]
    assert all(plan.persistence_free and not plan.history for plan in plans)
    [path] = simulate_dataset(cfg)
    assert read_info(path).tsince >= cfg.persistence_free_tsince[0]
    pers = read_truth(path.with_name("sd007_0000.truth.fits"), "11").pers
    assert np.quantile(pers, 0.999) < 0.1 and pers.max() < 1.0


def test_2048_frame_adds_a_reference_border_the_reader_strips(params, tmp_path):
    active = simulate_dataset(tiny(params, tmp_path / "a"))[0]
    framed = simulate_dataset(tiny(params, tmp_path / "b", frame=2048))[0]
    with fits.open(framed) as hdul, fits.open(framed.with_name("sd007_0000.prev.fits")) as prev:
        raw = hdul["DET11.SCI"].data
        assert raw.shape == (2048, 2048) and prev["DET11.SCI"].shape == prev["DET11.DQ"].shape == (2048, 2048)
    np.testing.assert_array_equal(read_detector(framed, "11").data, read_detector(active, "11").data)
    border = np.concatenate([raw[:4].ravel(), raw[-4:].ravel(), raw[:, :4].ravel(), raw[:, -4:].ravel()])
    header = read_info(framed).header
    assert abs(border.std() / np.hypot(header["SIMRDN"], header["SIMCHOFF"]) - 1) < 0.3
    assert border.max() < 100, "reference pixels see no light, hot pixels or persistence"
    assert read_truth(framed.with_name("sd007_0000.truth.fits"), "11").pers.shape == SHAPE


def test_nan_fraction_blanks_random_pixels(params, tmp_path):
    [path] = simulate_dataset(tiny(params, tmp_path, nan_fraction=0.01))
    data = read_detector(path, "11").data
    assert abs(np.isnan(data).mean() / 0.01 - 1) < 0.05
    assert np.isfinite(read_truth(path.with_name("sd007_0000.truth.fits"), "11").pers).all()


@pytest.mark.parametrize(
    ("dotted", "value", "fragment"),
    [
        ("simulate.exptime", [300.0, 50.0], "lo <= hi"),
        ("simulate.tsince", [0.0, 100.0], "greater than 0"),
        ("simulate.orientation", [0, 8], "0..7"),
        ("simulate.frame", 2046, "2040"),
        ("simulate.hot_pixels.fraction", [0.001, 0.2], "at most 0.05"),
        ("simulate.persistence.law", "logistic", "fermi"),
        ("simulate.persistence.traps.weights", [1.0, 1.0], "same trap families"),
        ("simulate.persistence_free_fraction", 1.5, "less than or equal to 1"),
    ],
)
def test_bad_simulation_ranges_name_the_key(dotted, value, fragment):
    with pytest.raises(ParamsError) as error:
        load_params(REPO / "params.yaml", {dotted: value})
    assert fragment in str(error.value) and dotted.split(".")[-1] in str(error.value)


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


def test_truth_goes_to_its_own_folder_and_stale_files_leave_both(params, tmp_path):
    exposures, truth = tmp_path / "raw", tmp_path / "truth" / "raw"
    simulate_dataset(tiny(params, exposures, n=2, truth_out=str(truth)))
    assert sorted(p.name for p in exposures.iterdir()) == [
        "sd007_0000.fits", "sd007_0000.prev.fits", "sd007_0001.fits", "sd007_0001.prev.fits",
    ]  # fmt: skip
    assert sorted(p.name for p in truth.iterdir()) == ["sd007_0000.truth.fits", "sd007_0001.truth.fits"]
    assert read_truth(truth_file(exposures / "sd007_0000.fits", truth), "11").pers.shape == SHAPE
    simulate_dataset(tiny(params, exposures, n=1, truth_out=str(truth)))
    assert sorted(p.name for p in truth.iterdir()) == ["sd007_0000.truth.fits"]
    assert len(list(exposures.iterdir())) == 2


def test_stress_and_heldout_simulations_carry_their_truth_folders(params):
    assert params.heldout_simulation().truth_out == params.heldout.truth_out
    stress = params.stress_simulation(params.robustness.reference)
    assert Path(stress.truth_out) == Path(params.robustness.truth_out) / params.robustness.reference
    assert Path(stress.out) == Path(params.robustness.out) / params.robustness.reference


def test_cli_flags_override_params_and_heldout_uses_its_seed(tmp_path):
    args = ["--params", str(REPO / "params.yaml"), "-q", "simulate", "--out", str(tmp_path / "x")]
    assert main([*args, "--n-exposures", "1", "--detectors", "12", "--seed", "3"]) == 0
    assert read_info(tmp_path / "x" / "sd003_0000.fits").detectors == ("12",)
    assert (tmp_path / "x" / "sd003_0000.truth.fits").is_file()  # --out alone: the contract's layout
    truth = tmp_path / "x_truth"
    assert (
        main([*args, "--n-exposures", "1", "--detectors", "12", "--seed", "3", "--truth-out", str(truth)])
        == 0
    )
    assert [p.name for p in truth.iterdir()] == ["sd003_0000.truth.fits"]
    assert not (tmp_path / "x" / "sd003_0000.truth.fits").exists()
    assert main([*args, "--detectors", "55"]) == 2
    held = ["--params", str(REPO / "params.yaml"), "-q", "simulate", "--set", "heldout"]
    assert main([*held, "--out", str(tmp_path / "h"), "--n-exposures", "1", "--detectors", "11"]) == 0
    heldout_seed = load_params(REPO / "params.yaml").heldout.seed
    assert read_info(tmp_path / "h" / f"sd{heldout_seed:03d}_0000.fits").header["SIMSEED"] == heldout_seed


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


def test_simulated_files_are_byte_identical_with_one_or_two_workers(params, tmp_path: Path) -> None:
    def sets(root: Path) -> list:
        fields = {"truth_out": None, "n_exposures": 2, "detectors": ["11"]}
        return [
            params.simulate.model_copy(update=fields | {"out": str(root / name), "seed": seed})
            for name, seed in (("a", 7), ("b", 8))
        ]

    alone = simulate_datasets(sets(tmp_path / "one"), workers=1)
    shared = simulate_datasets(sets(tmp_path / "two"), workers=2)
    names = [[p.name for p in files] for files in shared]
    assert names == [["sd007_0000.fits", "sd007_0001.fits"], ["sd008_0000.fits", "sd008_0001.fits"]]
    for files_one, files_two in zip(alone, shared, strict=True):
        for one, two in zip(files_one, files_two, strict=True):
            for suffix in (".fits", ".prev.fits", ".truth.fits"):
                name = one.name.replace(".fits", suffix)
                assert (one.parent / name).read_bytes() == (two.parent / name).read_bytes()
