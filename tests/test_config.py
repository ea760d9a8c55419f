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
    assert heldout.detector.read_noise == (9.0, 9.0), "pinned by heldout.simulate"
    assert heldout.detector.model_copy(update={"read_noise": params.simulate.detector.read_noise}) == (
        params.simulate.detector
    )
    assert heldout.seed == params.heldout.seed
    assert heldout.out == params.heldout.out


def test_heldout_replaces_named_simulate_keys_and_stress_sets_inherit_them() -> None:
    params = load_params(REPO / "params.yaml", {"simulate.persistence.amplitude_factor": [0.5, 30.0]})
    assert params.simulate.persistence.amplitude_factor == (0.5, 30.0)
    heldout = params.heldout_simulation()
    assert heldout.persistence.amplitude_factor == (1.0, 1.0)
    assert heldout.persistence.amplitude == params.simulate.persistence.amplitude
    assert heldout.cosmic_rays == params.simulate.cosmic_rays
    brighter = params.stress_simulation("persistence_x10")
    assert brighter.persistence.amplitude_factor == (1.0, 1.0)
    assert brighter.persistence.amplitude == 10 * params.simulate.persistence.amplitude


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"heldout.simulate": {"persistence.amplitude_factr": [1.0, 1.0]}}, "amplitude_factr: unknown key"),
        ({"heldout.simulate": {"persistence.amplitude_factor": [3.0, 1.0]}}, "lo <= hi"),
        ({"robustness.sets.nominal": {"exptime": [0.0, 1.0]}}, "robustness.sets.nominal"),
    ],
)
def test_bad_replaced_simulate_key_is_named_at_load(overrides: dict, fragment: str) -> None:
    with pytest.raises(ParamsError) as error:
        load_params(REPO / "params.yaml", overrides)
    message = str(error.value)
    assert fragment in message
    assert "params.yaml: " in message and "(top level)" not in message
    assert "'seed'" not in message, "the message names the key, not the whole file"


@pytest.mark.parametrize(
    ("dotted", "value", "fragment"),
    [
        ("simulate.n_exposures", -3, "simulate.n_exposures"),
        ("simulate.detectors", "11,55", "among 11..44"),
        ("simulate.detector.ipc", 0.5, "less than or equal to 0.05"),
        ("device", "tpu", "device"),
        ("simulate.unknown_key", 1, "unknown key"),
        ("label.bright_law", {"electrons": 0.0, "amplitude_factor": 30.0}, "label.bright_law.electrons"),
        ("label.bright_law", {"electrons": 9.0}, "amplitude_factor"),
        ("label.bright_law.electrons", 9.0, "amplitude_factor"),
        ("law_fit.mask_sigma", 0.0, "law_fit.mask_sigma"),
        ("law_fit.fluence_median", 0, "law_fit.fluence_median"),
    ],
)
def test_bad_value_names_the_key(dotted: str, value: object, fragment: str) -> None:
    with pytest.raises(ParamsError) as error:
        load_params(REPO / "params.yaml", {dotted: value})
    message = str(error.value)
    assert fragment in message
    assert dotted.split(".")[-1] in message
    assert "params.yaml" in message


def test_an_override_may_set_one_key_inside_a_section_that_is_null() -> None:
    overrides = {"label.bright_law.electrons": 9.0, "label.bright_law.amplitude_factor": 30.0}
    params = load_params(REPO / "params.yaml", overrides)
    assert params.label.bright_law is not None and params.label.bright_law.amplitude_factor == 30.0


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
    changed = load_params(REPO / "params.yaml", {"simulate.detector.read_noise": [10.0, 10.0]})
    assert params_sha256(base) == params_sha256(load_params(REPO / "params.yaml"))
    assert params_sha256(base) != params_sha256(changed)
