"""The study's segmentation steps on hand-made arrays."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from slewdark.core.segment import (
    connected_components,
    high_contrast,
    keep_regions_touching,
    remove_small_components,
    segment,
    std_filter,
    threshold_at_mean,
)

SETTINGS = SimpleNamespace(smooth_sigma=0.0, threshold_sigma=1.0, std_window=5, std_factor=1.0, min_size=30)


def test_threshold_at_mean_keeps_pixels_above_the_usable_mean() -> None:
    image = np.array([[0.0, 1.0], [2.0, 9.0]])
    usable = np.array([[True, True], [True, False]])
    kept = threshold_at_mean(image, usable, threshold_sigma=0.0, smooth_sigma=0.0)
    assert kept.tolist() == [[False, False], [True, False]]  # mean of usable = 1; 9 is unusable
    assert not threshold_at_mean(image, np.zeros((2, 2), bool), 0.0, 0.0).any()


def test_threshold_sigma_raises_the_level() -> None:
    image = np.arange(100, dtype=float).reshape(10, 10)
    usable = np.ones_like(image, bool)
    at_mean = threshold_at_mean(image, usable, 0.0, 0.0).sum()
    above = threshold_at_mean(image, usable, 1.0, 0.0).sum()
    assert at_mean == 50 and 0 < above < at_mean


def test_a_floor_keeps_pure_noise_out() -> None:
    noise = np.random.default_rng(0).standard_normal((40, 40))
    usable = np.ones_like(noise, bool)
    assert threshold_at_mean(noise, usable, 0.0, 0.0).mean() > 0.4
    noise[10:13, 5:35] += 3.0
    floored = threshold_at_mean(noise, usable, 0.0, 1.0, floor=1.0)
    assert (
        floored[10:13, 5:35].all() and floored.sum() - floored[8:15, 3:37].sum() < 5
    )  # smoothing spreads 1-2 px


def test_std_filter_is_zero_on_flat_and_high_at_an_edge() -> None:
    image = np.zeros((9, 9))
    assert np.allclose(std_filter(image, 3), 0.0)
    image[:, 5:] = 1.0
    local = std_filter(image, 3)
    assert local[4, 4] > 0.4 and local[4, 0] == 0.0 and local[4, 8] == 0.0


def test_high_contrast_keeps_structure_not_flat_background() -> None:
    rng = np.random.default_rng(0)
    image = 0.01 * rng.standard_normal((40, 40))
    image[18:22, 10:30] += 1.0
    kept = high_contrast(image, np.ones_like(image, bool), window=3, factor=3.0)
    assert kept[17:23, 10:30].mean() > 0.5 and kept[:10].mean() < 0.05


def test_connected_components_use_8_connectivity() -> None:
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one component
    mask[4, 4] = True
    labels, n = connected_components(mask)
    assert n == 2 and labels[0, 0] == labels[1, 1] != labels[4, 4]


def test_remove_small_components() -> None:
    mask = np.zeros((10, 10), bool)
    mask[0:3, 0:3] = True  # 9 px
    mask[8, 8] = True  # 1 px
    kept = remove_small_components(mask, min_size=2)
    assert kept.sum() == 9 and not kept[8, 8]
    assert remove_small_components(mask, min_size=1).sum() == 10
    assert not remove_small_components(np.zeros((3, 3), bool), 5).any()


def test_segment_finds_a_stripe_in_noise_and_never_keeps_unusable_pixels() -> None:
    rng = np.random.default_rng(1)
    image = 0.3 + 0.02 * rng.standard_normal((68, 68))
    image[30:34, 5:60] += 0.3
    usable = np.ones_like(image, bool)
    usable[31, 10:20] = False
    image[31, 10:20] = 1.0
    mask = segment(image, usable, SETTINGS)
    stripe = np.zeros_like(usable)
    stripe[30:34, 5:60] = True
    halo = np.zeros_like(usable)
    halo[27:37, 2:63] = True  # noise beside the stripe may join it through the filter window
    assert mask[stripe & usable].mean() > 0.9
    assert mask[~halo].sum() == 0
    assert not mask[~usable].any()


def test_keep_regions_touching_keeps_whole_regions() -> None:
    mask = np.zeros((6, 6), bool)
    mask[0:2, 0:2] = True
    mask[4:6, 4:6] = True
    seeds = np.zeros_like(mask)
    seeds[1, 1] = True
    kept = keep_regions_touching(mask, seeds)
    assert kept[0:2, 0:2].all() and not kept[4:6, 4:6].any()
