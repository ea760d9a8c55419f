"""The physics baseline: what illumination-history pipelines flag, on synthetic previous exposures."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from slewdark.config import PhysicsBaselineParams
from slewdark.evaluation.baselines import physics_mask
from test_label import prev_image

CFG = PhysicsBaselineParams(level=5e4, dilation=1, median=3)


def test_no_previous_exposure_flags_nothing() -> None:
    mask = physics_mask(None, (40, 30), CFG)
    assert mask.shape == (40, 30) and mask.dtype == bool and not mask.any()


def test_half_well_and_saturated_pixels_are_flagged_grown_by_one_pixel() -> None:
    rng = np.random.default_rng(0)
    fluence = 300.0 + 9.0 * rng.standard_normal((60, 60))
    fluence[10:14, 10:40] = 6e4  # a trace above half well
    fluence[30:34, 10:40] = 3e4  # a fainter one: below the level
    cosmic = np.zeros((60, 60))
    cosmic[50, 5:45] = 8e4
    fluence += ndimage.gaussian_filter(cosmic, 0.6)  # a cosmic-ray track: thin, not flagged
    saturated = np.zeros((60, 60), bool)
    saturated[45, 52] = True  # a one-pixel saturated star core (SATUR bit)
    mask = physics_mask(prev_image(fluence.astype(np.float32), saturated), (60, 60), CFG)

    expected = np.zeros((60, 60), bool)
    expected[9:15, 9:41] = True
    expected[[9, 9, 14, 14], [9, 40, 9, 40]] = False  # the 3 px median rounds the trace's corners
    expected[44:47, 51:54] = True
    assert np.array_equal(mask, expected)


def test_dilation_and_median_follow_the_params() -> None:
    fluence = np.zeros((20, 20), np.float32)
    fluence[10, 10] = 7e4  # a lone bright pixel: a cosmic ray for a 3 px median, a source without one
    assert not physics_mask(prev_image(fluence), fluence.shape, CFG).any()
    bare = PhysicsBaselineParams(level=5e4, dilation=0, median=1)
    assert physics_mask(prev_image(fluence), fluence.shape, bare).sum() == 1
