"""Parameter profiles for ``dvc exp run -S``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slewdark.config import load_params, set_dotted
from slewdark.errors import ParamsError
from slewdark.ops.profiles import dvc_set_args

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["tiny", "full"])
def test_shipped_profiles_validate_and_round_trip(name):
    args = dvc_set_args(name, REPO / "params.yaml", REPO / "profiles")
    assert args[0::2] == ["-S"] * (len(args) // 2)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    for item in args[1::2]:
        key, value = item.split("=", 1)
        set_dotted(raw, key, yaml.safe_load(value))
    overrides = yaml.safe_load((REPO / "profiles" / f"{name}.yaml").read_text())
    params = load_params(REPO / "params.yaml", overrides)
    assert params.simulate.n_exposures == overrides["simulate.n_exposures"]


def test_full_profile_reaches_the_study_scale():
    overrides = yaml.safe_load((REPO / "profiles" / "full.yaml").read_text())
    params = load_params(REPO / "params.yaml", overrides)
    per_detector = (2040 // params.patches.size) ** 2
    n_patches = params.simulate.n_exposures * len(params.simulate.detectors) * per_detector
    assert 180_000 <= n_patches <= 200_000


def test_bad_profile_value_is_named(tmp_path):
    (tmp_path / "bad.yaml").write_text("ae.epochs: -1\n")
    with pytest.raises(ParamsError, match=r"ae\.epochs"):
        dvc_set_args("bad", REPO / "params.yaml", tmp_path)
    with pytest.raises(ParamsError, match="no such profile"):
        dvc_set_args("missing", REPO / "params.yaml", tmp_path)
