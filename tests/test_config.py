"""params.yaml is validated at start, with a message naming the bad key."""

from pathlib import Path

import pytest
import yaml

from slewdark.config import load_params, params_sha256, parse_params
from slewdark.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]


def repo_raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid() -> None:
    params = load_params(REPO / "params.yaml")
    assert params.simulate.detectors
    assert params.heldout.seed != params.simulate.seed


def test_heldout_inherits_physics_but_not_seed() -> None:
    params = load_params(REPO / "params.yaml")
    heldout = params.heldout_simulation()
    assert heldout.detector == params.simulate.detector
    assert heldout.seed == params.heldout.seed
    assert heldout.out == params.heldout.out


@pytest.mark.parametrize(
    ("dotted", "value", "fragment"),
    [
        ("simulate.n_exposures", -3, "simulate.n_exposures"),
        ("simulate.detectors", "11,55", "among 11..44"),
        ("simulate.detector.ipc", 0.5, "less than or equal to 0.05"),
        ("device", "tpu", "device"),
        ("simulate.unknown_key", 1, "unknown key"),
    ],
)
def test_bad_value_names_the_key(dotted: str, value: object, fragment: str) -> None:
    with pytest.raises(ParamsError) as error:
        load_params(REPO / "params.yaml", {dotted: value})
    message = str(error.value)
    assert fragment in message
    assert dotted.split(".")[-1] in message
    assert "params.yaml" in message


def test_missing_key_is_reported() -> None:
    raw = repo_raw()
    del raw["simulate"]["exptime"]
    with pytest.raises(ParamsError, match=r"simulate\.exptime"):
        parse_params(raw)


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="no such file"):
        load_params(tmp_path / "params.yaml")


def test_params_hash_changes_with_any_value() -> None:
    base = load_params(REPO / "params.yaml")
    changed = load_params(REPO / "params.yaml", {"simulate.detector.read_noise": 10.0})
    assert params_sha256(base) == params_sha256(load_params(REPO / "params.yaml"))
    assert params_sha256(base) != params_sha256(changed)
