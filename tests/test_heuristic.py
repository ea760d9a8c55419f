"""The cluster-free heuristic: one implementation for the evaluation row and the ablation's training masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slewdark.config import load_params
from slewdark.io.pseudomasks import read_pseudo_mask
from slewdark.stages.heuristic_masks import run_heuristic_masks
from test_label import REPO, _detector_file

STRIPE = np.s_[1000:1006, 300:900]
ELSEWHERE = np.s_[1500:1506, 300:900]


@pytest.fixture
def train_folder(tmp_path: Path) -> Path:
    """One exposure: a 4-sigma persistence stripe under a saturated previous-exposure trace, the same
    stripe where the previous exposure was dark (not persistence: a noise-like structure), a NaN pixel."""
    rng = np.random.default_rng(3)
    sci = (9.0 * rng.standard_normal((2040, 2040))).astype(np.float32)
    sci[STRIPE] += 36.0
    sci[ELSEWHERE] += 36.0
    sci[10, 10] = np.nan
    fluence = np.zeros((2040, 2040), np.float32)
    fluence[STRIPE] = 1e5
    raw = tmp_path / "raw"
    raw.mkdir()
    keys = {"OBS_ID": "e0", "EXPTIME": 100.0, "PREVFILE": "e0.prev.fits", "PREVGWA": "RGS000", "TSINCE": 60.0}
    _detector_file(raw / "e0.fits", {"DET11.SCI": sci}, keys)
    _detector_file(raw / "e0.prev.fits", {"DET11.SCI": fluence}, {"OBS_ID": "e0.prev", "EXPTIME": 560.0})
    return raw


def test_heuristic_masks_segment_only_where_the_previous_exposure_was_bright(
    train_folder: Path, tmp_path: Path
) -> None:
    params = load_params(REPO / "params.yaml", {"data.train": str(train_folder)})

    written = run_heuristic_masks(params, tmp_path / "masks")

    assert written == 1
    mask, weight = read_pseudo_mask(tmp_path / "masks" / "e0.pseudo.fits", "11")
    assert mask[STRIPE].mean() > 0.8
    assert not mask[ELSEWHERE].any()  # as bright, but the previous exposure was dark there
    assert mask.sum() < 2 * mask[STRIPE].size
    assert weight[10, 10] == 0.0 and weight[STRIPE].min() == 1.0 and weight.sum() == 2040 * 2040 - 1
