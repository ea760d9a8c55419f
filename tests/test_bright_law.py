"""The labels' bright map from the persistence law: one level per dark, from its timing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from slewdark.config import Params, load_params
from slewdark.core.brightmap import label_bright_level, label_bright_map
from slewdark.core.persistence_law import fluence_leaving, persistence_signal
from slewdark.io.fits import DetectorImage

REPO = Path(__file__).resolve().parents[1]


def with_law(law: dict | None) -> Params:
    overrides = {"label.bright_law": law, "simulate.persistence.amplitude_factor": [1, 1]}
    return load_params(REPO / "params.yaml", overrides)


def test_fluence_leaving_inverts_the_law() -> None:
    params = with_law(None)
    law, well = params.simulate.persistence, params.simulate.detector.full_well
    for electrons, tsince, exptime in [(0.3, 60.0, 100.0), (5.0, 30.0, 300.0), (9.0, 60.0, 100.0)]:
        fluence = fluence_leaving(electrons, well, tsince, exptime, law)
        signal = persistence_signal(np.array([fluence]), well, tsince, exptime, law)[0]
        assert signal == pytest.approx(electrons, rel=1e-3)
    assert fluence_leaving(1.5, well, 60.0, 100.0, law) == pytest.approx(1e4, rel=0.03), "the lab fit: 1.5 e-"
    assert math.isinf(fluence_leaving(20.0, well, 60.0, 100.0, law)), "a full well leaves 12 e-, never 20"


def test_level_is_fixed_without_the_law_or_without_the_darks_timing() -> None:
    fixed = with_law(None)
    assert label_bright_level(fixed, 30.0, 300.0) == fixed.label.bright_level
    ruled = with_law({"electrons": 9.0, "amplitude_factor": 30.0})
    assert label_bright_level(ruled, None, 300.0) == ruled.label.bright_level
    assert label_bright_level(ruled, 30.0, None) == ruled.label.bright_level


def test_level_follows_the_darks_timing_and_the_brightest_law() -> None:
    params = with_law({"electrons": 9.0, "amplitude_factor": 30.0})
    law, well = params.simulate.persistence, params.simulate.detector.full_well
    early, late = label_bright_level(params, 30.0, 300.0), label_bright_level(params, 1000.0, 50.0)
    assert early < 1e3 < 1e4 < late, "a long dark soon after is bright from far lower fluence"
    below_half_well = fluence_leaving(9.0 / 30.0, well, 30.0, 300.0, law)
    assert early == pytest.approx(below_half_well, rel=1e-4), "x30 the law: a thirtieth of the fluence"
    assert math.isinf(label_bright_level(params, 3e4, 300.0)), "a day-old exposure leaves nothing to label"


def test_bright_map_grows_with_the_persistence_a_dark_can_hold() -> None:
    params = with_law({"electrons": 9.0, "amplitude_factor": 30.0})
    fluence = np.tile(np.geomspace(10.0, 1e5, 64, dtype=np.float32), (16, 1))
    saturated = fluence >= 1e5
    prev = DetectorImage("11", fluence, None, np.ones_like(saturated), None, fits.Header(), 13, saturated)
    early = label_bright_map(prev, params, 30.0, 300.0)
    late = label_bright_map(prev, params, 1000.0, 50.0)
    stale = label_bright_map(prev, params, 3e4, 300.0)
    assert early.sum() > late.sum() > stale.sum() > 0
    assert np.array_equal(late, late & early) and np.array_equal(stale, stale & late)
    grown_saturation = saturated.copy()
    grown_saturation[:, :-1] |= saturated[:, 1:]
    assert np.array_equal(stale, grown_saturation), "only saturated pixels (grown by a pixel) are left"
