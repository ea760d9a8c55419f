"""The stress matrix end to end on two tiny sets, and bad set keys named at start."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import pytest
import yaml

from slewdark.cli import main
from slewdark.stages.robustness import REPORTED
from test_evaluate import REPO, write_tiny_model

SETS = {"nominal": {}, "cosmic_rays_x3": {"cosmic_rays.rate_factor": [3.0, 3.0]}}
FIGURES = {*REPORTED, "recall_strong", "f1_delta"}


def params_file(tmp_path: Path, sets: dict[str, dict], model: Path | None = None) -> Path:
    """params.yaml of the repository with a tiny stress matrix (1 exposure, 1 detector) in tmp_path."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["robustness"].update(
        out=str(tmp_path / "stress"),
        truth_out=str(tmp_path / "truth" / "stress"),
        n_exposures=1,
        detectors=["11"],
        sets=sets,
        metrics=str(tmp_path / "metrics" / "robustness.json"),
        table=str(tmp_path / "metrics" / "robustness_table.md"),
    )
    raw["unet"]["model"] = str(model or tmp_path / "unet.pt")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


def test_stress_sets_are_simulated_and_scored(tracked: Path) -> None:
    params = params_file(tracked, SETS, write_tiny_model(tracked / "unet.pt"))
    assert main(["--params", str(params), "-q", "simulate-stress"]) == 0
    for name in SETS:
        assert len(list((tracked / "truth" / "stress" / name).glob("*.truth.fits"))) == 1
        assert not list((tracked / "stress" / name).glob("*.truth.fits"))
    assert main(["--params", str(params), "-q", "robustness"]) == 0

    metrics = json.loads((tracked / "metrics" / "robustness.json").read_text())
    assert metrics["reference"] == "nominal" and list(metrics["sets"]) == list(SETS)
    for result in metrics["sets"].values():
        assert result["data"]["exposures"] == 1 and result["data"]["detectors"] == 1
        assert result["strong_level"] == pytest.approx(3 * 9.0)
        assert list(result["methods"]) == ["unet", "physics", "law_fit"]
        for figures in result["methods"].values():
            assert set(figures) == FIGURES
            assert all(0.0 <= figures[key] <= 1.0 for key in FIGURES - {"f1_delta"})
    nominal, stressed = (metrics["sets"][name]["methods"] for name in SETS)
    assert nominal["unet"]["f1_delta"] == 0.0
    assert stressed["physics"]["f1_delta"] == pytest.approx(
        stressed["physics"]["f1"] - nominal["physics"]["f1"]
    )

    table = (tracked / "metrics" / "robustness_table.md").read_text()
    assert "| recall >= 3 sigma |" in table and "| clean px flagged |" in table
    assert sum(line.startswith("| cosmic_rays_x3 |") for line in table.splitlines()) == 3
    runs = mlflow.search_runs(experiment_names=["slewdark"], filter_string="tags.`dvc.stage` = 'robustness'")
    assert len(runs) == 1
    assert runs.loc[0, "metrics.cosmic_rays_x3.unet.f1"] == pytest.approx(stressed["unet"]["f1"])


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"cosmic_rays.rate_factr": [3.0, 3.0]},
            r"robustness\.sets\.bad .*cosmic_rays\.rate_factr: unknown key",
        ),
        ({"frame": 1000}, r"robustness\.sets\.bad .*frame: "),
        ({"exptime.low": 50.0}, r"robustness\.sets\.bad .*exptime\.low: not a key of simulate"),
    ],
)
def test_a_bad_set_key_is_named_before_anything_runs(
    tracked: Path, capsys: pytest.CaptureFixture[str], keys: dict, message: str
) -> None:
    params = params_file(tracked, {"nominal": {}, "bad": keys})
    for command in ("simulate-stress", "robustness"):
        assert main(["--params", str(params), command]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err), err
    assert not (tracked / "stress").exists() and not (tracked / "metrics").exists()


def test_reference_and_fixed_keys_are_checked_at_load(
    tracked: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = params_file(tracked, {"stressed": {"nominal_seed": 1}})
    assert main(["--params", str(params), "robustness"]) == 2
    assert "robustness: reference 'nominal' is not among the sets ['stressed']" in capsys.readouterr().err
    params = params_file(tracked, {"nominal": {"seed": 4}})
    assert main(["--params", str(params), "simulate-stress"]) == 2
    assert "['seed'] are robustness keys" in capsys.readouterr().err
    params = params_file(tracked, SETS)
    raw = yaml.safe_load(params.read_text())
    raw["robustness"]["seed"] = raw["heldout"]["seed"] = 2
    params.write_text(yaml.safe_dump(raw))
    assert main(["--params", str(params), "simulate-stress"]) == 2
    assert "robustness.seed (2) must differ from heldout.seed" in capsys.readouterr().err
