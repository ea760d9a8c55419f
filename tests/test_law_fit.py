"""The lab persistence law scaled to each dark: the fit, its defaults and the law_fit baseline."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from slewdark.config import Params, load_params
from slewdark.core.law_fit import (
    LawFitSettings,
    ScaledLaw,
    expected_fluence,
    fit_dark,
    fit_scale,
    law_fit_settings,
    persistence_model,
)
from slewdark.core.scaling import Scaling
from slewdark.evaluation.baselines import law_fit_method
from slewdark.io.fits import DetectorImage, read_detector, read_info

REPO = Path(__file__).resolve().parents[1]
SIDE = 2040
TIMING = (30.0, 300.0)


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(REPO / "params.yaml")


def previous(fluence: np.ndarray, saturated: np.ndarray | None = None) -> DetectorImage:
    saturated = np.zeros(fluence.shape, bool) if saturated is None else saturated
    usable = np.isfinite(fluence) & ~saturated
    return DetectorImage("11", fluence, None, usable, None, fits.Header(), 13, saturated)


def traces() -> np.ndarray:
    """A previous exposure with saturated grism traces along y and fainter ones, the rest dark."""
    fluence = np.zeros((SIDE, SIDE), np.float32)
    for i, column in enumerate(range(100, 1900, 60)):
        fluence[200:1700, column : column + 3] = (1e5, 6e4, 3e4)[i % 3]
    return fluence


def dark(persistence: np.ndarray, seed: int, cosmic_fraction: float = 0.0) -> DetectorImage:
    """Read noise 9 e-, channel offsets, a pedestal and cosmic rays on top of the persistence."""
    rng = np.random.default_rng(seed)
    image = 9.0 * rng.standard_normal((SIDE, SIDE)) + 50.0
    image += np.repeat(rng.normal(0, 3, 32), 64)[4:-4][None, :]
    hits = rng.random((SIDE, SIDE)) < cosmic_fraction
    image[hits] += rng.uniform(300, 5e4, int(hits.sum()))
    image = (image + persistence).astype(np.float32)
    return DetectorImage("11", image, None, np.ones(image.shape, bool), None, fits.Header(), 13, hits & False)


def test_the_fit_finds_the_darks_own_amplitude_through_cosmic_rays(params: Params) -> None:
    law, settings = persistence_model(params), law_fit_settings(params)
    prev = previous(traces(), traces() >= 1e5)
    truth = law.predict(expected_fluence(prev, law.full_well, 1), *TIMING)
    scaling = Scaling(**params.scaling.model_dump())
    in_sigmas = dataclasses.replace(settings, mask_electrons=None, mask_sigma=1.0)
    for amplitude in (0.5, 1.0, 30.0):
        fit = fit_dark(dark(amplitude * truth, 1, 0.01), prev, law, TIMING, settings, scaling)
        assert fit.scale == pytest.approx(amplitude, rel=0.05, abs=0.03), f"x{amplitude} the lab law"
        assert fit.saturated_scale == pytest.approx(amplitude, rel=0.05, abs=0.03)
        assert fit.pixels > 10_000 and fit.sigma == pytest.approx(9.0, rel=0.05)
        flagged, wanted = fit.mask(in_sigmas), amplitude * truth >= fit.sigma
        assert (flagged & wanted).sum() >= 0.95 * wanted.sum() and (
            flagged & ~wanted
        ).sum() <= 0.05 * wanted.sum()


def test_a_dark_without_persistence_fits_none_and_flags_nothing(params: Params) -> None:
    law, settings = persistence_model(params), law_fit_settings(params)
    prev = previous(traces(), traces() >= 1e5)
    fit = fit_dark(
        dark(np.zeros((SIDE, SIDE)), 2, 0.03),
        prev,
        law,
        TIMING,
        settings,
        Scaling(**params.scaling.model_dump()),
    )
    assert fit.scale < 0.05 and not fit.mask(settings).any()


def test_the_mask_level_is_in_electrons_whatever_the_noise() -> None:
    predicted = np.array([5.0, 8.9, 9.0, 12.0, 20.0], np.float32)
    electrons = LawFitSettings(1, 0.5, 4.0, 5, 50, 1.0, mask_electrons=9.0)
    sigmas = dataclasses.replace(electrons, mask_electrons=None)
    quiet, noisy = ScaledLaw(predicted, 1.0, 1.0, 100, 6.0), ScaledLaw(predicted, 1.0, 1.0, 100, 13.5)
    assert (
        quiet.mask(electrons).tolist() == noisy.mask(electrons).tolist() == [False, False, True, True, True]
    )
    assert quiet.mask(sigmas).tolist() == [False, True, True, True, True], "1 sigma of 6 e-"
    assert noisy.mask(sigmas).tolist() == [False, False, False, False, True], "1 sigma of 13.5 e-"


def test_too_few_pixels_give_no_scale() -> None:
    settings = LawFitSettings(1, 0.5, 4.0, 5, 50, 1.0)
    predicted = np.zeros((64, 64), np.float32)
    predicted[0, :10] = 5.0
    residual = 100.0 * predicted
    assert fit_scale(residual, predicted, np.ones_like(predicted, bool), 9.0, settings) == (None, 0)
    predicted[:10, :10] = 5.0
    scale, pixels = fit_scale(100.0 * predicted, predicted, np.ones_like(predicted, bool), 9.0, settings)
    assert scale == pytest.approx(100.0) and pixels == 100


def test_saturated_pixels_get_their_own_scale(params: Params) -> None:
    """Saturated cores that saw ten times the full well hold more than the capped fluence predicts."""
    law, settings = persistence_model(params), law_fit_settings(params)
    fluence = traces()
    prev = previous(fluence, fluence >= 1e5)
    lab = law.predict(expected_fluence(prev, law.full_well, 1), *TIMING)
    persistence = np.where(fluence >= 1e5, 1.5 * lab, lab)
    scaling = Scaling(**params.scaling.model_dump())
    fit = fit_dark(dark(persistence, 4), prev, law, TIMING, settings, scaling)
    assert fit.scale == pytest.approx(1.0, abs=0.05) and fit.saturated_scale == pytest.approx(1.5, abs=0.05)
    lone = previous(np.where(fluence >= 1e5, fluence, 0.0), fluence >= 1e5)
    only_saturated = fit_dark(dark(1.5 * lab * (fluence >= 1e5), 5), lone, law, TIMING, settings, scaling)
    assert only_saturated.scale == only_saturated.saturated_scale == pytest.approx(1.5, abs=0.05)


def test_expected_fluence_counts_saturation_as_full_well_and_ignores_a_lone_cosmic_ray() -> None:
    fluence = np.zeros((9, 9), np.float32)
    fluence[4, 4] = 4e4  # a cosmic ray in the previous exposure
    fluence[:, 0:3] = np.nan  # a saturated star delivered as NaN
    saturated = np.zeros((9, 9), bool)
    saturated[:, 0:3] = True
    expected = expected_fluence(previous(fluence, saturated), 1e5, 3)
    assert expected[4, 4] == 0.0 and (expected[:, 0] == 1e5).all() and np.isfinite(expected).all()
    assert expected_fluence(previous(fluence, saturated), 1e5, 1)[4, 4] == 4e4


def test_cosmic_flagged_pixels_of_the_previous_exposure_take_their_surroundings_fluence() -> None:
    fluence = np.zeros((40, 40), np.float32)
    fluence[:, 20:23] = 3e4  # a trace along y
    fluence[5, 5] = fluence[5, 6] = 2e4  # a hit on the dark sky
    fluence[30, 21] = 9e4  # a hit on the trace
    flagged = np.zeros((40, 40), bool)
    flagged[5, 5:7] = flagged[30, 21] = True
    hit = previous(fluence)
    hit = DetectorImage("11", fluence, None, hit.usable, None, fits.Header(), 13, hit.saturated, flagged)
    filled = expected_fluence(hit, 1e5, 1, cosmic_fill=1.0)
    assert filled[5, 5] == filled[5, 6] == 0.0, "a flagged hit on the dark sky predicts nothing"
    assert 1e4 < filled[30, 21] <= 3e4, "a flagged hit on a trace takes the trace's fluence, not the hit's"
    np.testing.assert_array_equal(filled[~flagged], fluence[~flagged])
    assert expected_fluence(hit, 1e5, 1, cosmic_fill=0.0)[5, 5] == 2e4, "0 ignores the flags"
    assert expected_fluence(previous(fluence), 1e5, 1, cosmic_fill=1.0)[5, 5] == 2e4, "no flags, no fill"


def test_the_settings_travel_as_a_plain_dict(params: Params) -> None:
    settings = law_fit_settings(params)
    assert LawFitSettings.from_dict(settings.to_dict()) == settings
    assert settings.mask_sigma == params.law_fit.mask_sigma
    assert settings.mask_electrons == params.law_fit.mask_electrons
    older = {key: value for key, value in settings.to_dict().items() if key != "mask_electrons"}
    assert LawFitSettings.from_dict(older).unit(9.3) == pytest.approx(settings.mask_sigma * 9.3), (
        "a checkpoint from before mask_electrons keeps its level in noise sigmas"
    )


def test_law_fit_baseline_flags_nothing_without_a_previous_exposure(params: Params, tmp_path: Path) -> None:
    path = tmp_path / "lone.fits"
    primary = fits.PrimaryHDU()
    primary.header["TSINCE"], primary.header["EXPTIME"] = TIMING
    image = dark(np.zeros((SIDE, SIDE)), 3).data
    fits.HDUList([primary, fits.ImageHDU(image, name="DET11.SCI")]).writeto(path)
    mask, prob = law_fit_method(params)(path, read_info(path), read_detector(path, "11"))
    assert mask.shape == (SIDE, SIDE) and not mask.any() and prob is None
