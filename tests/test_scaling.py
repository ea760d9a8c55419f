"""Network input in noise units: stable against content, tied to the noise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from slewdark.core.scaling import Scaling, forget_scaled, noise_sigma, remove_background, scale_detector

SCALING = Scaling(
    background="channel_row_block",
    block=34,
    softening=3.0,
    low_sigma=-4.0,
    high_sigma=100.0,
    source_sigma=3.0,
    source_grow=2,
)
SHAPE = (680, 680)
READ_NOISE = 9.0


def noise_only(seed: int = 0) -> np.ndarray:
    """A dark with read noise, output-channel offsets and row noise."""
    rng = np.random.default_rng(seed)
    image = READ_NOISE * rng.standard_normal(SHAPE)
    image += 3.0 * rng.standard_normal(SHAPE[1] // 64 + 1)[(np.arange(SHAPE[1]) + 4) // 64][None, :]
    image += 2.0 * rng.standard_normal(SHAPE[0])[:, None]
    return image + 40.0


def add_cosmic_rays(image: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hit = rng.uniform(size=image.shape) < fraction
    return image + hit * rng.uniform(300.0, 3e4, image.shape)


def test_noise_sigma_is_the_read_noise_whatever_the_offsets() -> None:
    image = noise_only()
    assert noise_sigma(image, np.ones(SHAPE, bool)) == pytest.approx(READ_NOISE, rel=0.03)


def test_input_of_a_noise_only_detector_does_not_move_with_cosmic_rays_or_persistence() -> None:
    usable = np.ones(SHAPE, bool)
    base = noise_only()
    reference = scale_detector(add_cosmic_rays(base, 0.01, 1), usable, SCALING)
    tripled = scale_detector(add_cosmic_rays(base, 0.03, 1), usable, SCALING)
    persistence = base.copy()
    persistence[:, :34] += 15.0  # a band of persistence on 5 % of the detector
    with_persistence = scale_detector(add_cosmic_rays(persistence, 0.01, 1), usable, SCALING)
    clean = ~(add_cosmic_rays(np.zeros(SHAPE), 0.03, 1) > 0)
    clean[:, :40] = False
    one_sigma = float(SCALING.squash(1.0) - SCALING.squash(0.0))
    for other in (tripled, with_persistence):
        assert other.sigma == pytest.approx(reference.sigma, rel=0.03)
        assert np.abs(other.image[clean] - reference.image[clean]).mean() < 0.1 * one_sigma


def cosmic_rays_with_halos(fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Charge of cosmic rays spread by diffusion and inter-pixel capacitance, and the pixels above 5 e-."""
    rng = np.random.default_rng(seed)
    cores = (rng.uniform(size=SHAPE) < fraction) * rng.uniform(300.0, 3e4, SHAPE)
    diffused = ndimage.gaussian_filter(cores, 0.6)
    ipc = np.array([[0.0, 0.015, 0.0], [0.015, 0.94, 0.015], [0.0, 0.015, 0.0]])
    charge = ndimage.convolve(diffused, ipc)
    return charge, charge > 5.0


def clean_pixel_z(image: np.ndarray, hit: np.ndarray, scaling: Scaling) -> tuple[float, float]:
    """Mean z of the pixels no cosmic ray touched, and the noise sigma."""
    scaled = scale_detector(image, np.ones(SHAPE, bool), scaling)
    low, high = np.arcsinh(np.array([scaling.low_sigma, scaling.high_sigma]) / scaling.softening)
    z = scaling.softening * np.sinh(scaled.image * (high - low) + low)
    return float(z[~hit].mean()), scaled.sigma


def test_cosmic_ray_halos_move_neither_the_background_nor_the_noise() -> None:
    base = noise_only()
    nominal, nominal_hit = cosmic_rays_with_halos(0.005, 1)
    tripled, tripled_hit = cosmic_rays_with_halos(0.015, 1)
    assert tripled_hit.mean() > 0.1  # halos reach beyond the cores, as in the simulator
    for scaling, stable in ((SCALING, True), (replace(SCALING, source_sigma=None), False)):
        reference_z, reference_sigma = clean_pixel_z(base + nominal, nominal_hit | tripled_hit, scaling)
        shifted_z, shifted_sigma = clean_pixel_z(base + tripled, nominal_hit | tripled_hit, scaling)
        moved = abs(shifted_z - reference_z) < 0.03 and shifted_sigma == pytest.approx(
            reference_sigma, rel=0.02
        )
        assert moved is stable, (
            scaling.source_sigma,
            shifted_z - reference_z,
            shifted_sigma / reference_sigma,
        )


def test_checkpoints_without_source_masking_keep_their_one_pass_scaling() -> None:
    old = {key: value for key, value in SCALING.to_dict().items() if not key.startswith("source_")}
    assert Scaling.from_dict(old).source_sigma is None


def test_persistence_keeps_its_amplitude_in_noise_units() -> None:
    usable = np.ones(SHAPE, bool)
    clean = noise_only()
    image = clean.copy()
    image[300:303, 100:270] += 2 * READ_NOISE  # a trace along x at 2 sigma over a quarter of the rows
    image[100:400, 500:503] += 2 * READ_NOISE  # and one along y
    scaled, reference = scale_detector(image, usable, SCALING), scale_detector(clean, usable, SCALING)
    step = float(SCALING.squash(2.0) - SCALING.squash(0.0))
    for trace in (np.s_[300:303, 100:270], np.s_[100:400, 500:503]):
        assert (scaled.image[trace] - reference.image[trace]).mean() == pytest.approx(step, rel=0.2)
    assert scaled.sigma == pytest.approx(READ_NOISE, rel=0.03)


def test_a_noisier_detector_is_divided_by_its_own_noise() -> None:
    usable = np.ones(SHAPE, bool)
    quiet = scale_detector(noise_only(), usable, SCALING)
    loud = scale_detector(3 * noise_only(), usable, SCALING)
    assert loud.sigma == pytest.approx(3 * quiet.sigma, rel=0.03)
    assert np.abs(loud.image - quiet.image).mean() < 0.01


def test_glow_in_a_corner_is_removed_by_the_block_background() -> None:
    usable = np.ones(SHAPE, bool)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    glowing = noise_only() + 150.0 * np.exp(-np.hypot(yy, xx) / 120.0)
    residual = remove_background(glowing, usable, "channel_row_block", 34)
    assert abs(residual[:68, :68].mean()) < 0.5 * READ_NOISE
    assert abs(remove_background(glowing, usable, "channel_row", 34)[:68, :68].mean()) > 2 * READ_NOISE


def test_unusable_pixels_sit_at_the_background_and_empty_detectors_fail() -> None:
    image = noise_only()
    image[10:20, 10:20] = np.nan
    usable = np.isfinite(image)
    usable[50, 50] = False
    scaled = scale_detector(image, usable, SCALING)
    assert np.isfinite(scaled.image).all() and scaled.image.dtype == np.float32
    assert scaled.image[15, 15] == scaled.image[50, 50] == pytest.approx(float(SCALING.squash(0.0)))
    with pytest.raises(ValueError, match="no usable"):
        scale_detector(np.full((8, 8), np.nan), np.ones((8, 8), bool), SCALING)


def test_squash_is_monotonic_and_saturates() -> None:
    z = np.array([-10.0, -4.0, 0.0, 1.0, 10.0, 100.0, 1e4])
    out = SCALING.squash(z)
    assert out[0] == out[1] == 0.0 and out[-1] == out[-2] == 1.0
    assert np.all(np.diff(out[1:-1]) > 0)
    assert Scaling.from_dict(SCALING.to_dict()) == SCALING


def test_the_same_detector_is_scaled_once_and_any_change_scales_it_again() -> None:
    image = noise_only(seed=7)
    usable = np.ones(SHAPE, bool)
    first = scale_detector(image, usable, SCALING)
    assert scale_detector(image.copy(), usable.copy(), SCALING) is first, "same pixels: the kept result"
    with pytest.raises(ValueError, match="read-only"):
        first.image[0, 0] = 1.0
    touched = image.copy()
    touched[5, 5] += 100.0
    changed = scale_detector(touched, usable, SCALING)
    assert changed is not first and changed.image[5, 5] > first.image[5, 5]
    masked = usable.copy()
    masked[5, 5] = False
    assert scale_detector(image, masked, SCALING).image[5, 5] != first.image[5, 5], "the mask is in the key"
    other = scale_detector(image, usable, replace(SCALING, softening=5.0))
    assert other is not first and not np.array_equal(other.image, first.image), "so are the settings"
    np.testing.assert_array_equal(scale_detector(image, usable, SCALING).image, first.image)
    forget_scaled()
    again = scale_detector(image, usable, SCALING)
    assert again is not first and np.array_equal(again.residual, first.residual), "made again, alike"
