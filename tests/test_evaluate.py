"""The evaluate stage end to end on one tiny held-out exposure with a hand-made mask product."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from astropy.io import fits

from slewdark.cli import main
from slewdark.core.instrument import previous_kind
from slewdark.core.normalisation import Normalisation
from slewdark.core.scaling import Scaling
from slewdark.errors import SlewdarkError
from slewdark.inference.predict import PredictOptions, load_unet, predict_files
from slewdark.io.fits import read_info, read_mask_product
from slewdark.models.checkpoint import UnetModel, checkpoint_payload
from slewdark.models.unet import build_unet

REPO = Path(__file__).resolve().parents[1]
SIDE = 2040
STREAK = (slice(1000, 1003), slice(300, 800))  # 1500 px of 20 e-: found by the mask
SPOT = (slice(200, 205), slice(200, 205))  # 25 px of 4 e-: missed
CR_ROW, CR_COLS = 1500, slice(1500, 1511)  # 11 cosmic-ray pixels, wrongly flagged by the mask
HOT = ([100, 400, 900], [1800, 1200, 50])
TINY_ARCH = {
    "encoder_name": "tu-resnet18",
    "encoder_depth": 3,
    "decoder_channels": [8, 8, 4],
    "in_channels": 1,
    "encoder_width": 4,
}


def write_heldout(folder: Path, predictions: Path) -> None:
    """One exposure (DET11), its truth file, and a mask product with known errors."""
    rng = np.random.default_rng(0)
    pers = np.zeros((SIDE, SIDE), np.float32)
    pers[STREAK] = 20.0
    pers[SPOT] = 4.0
    cr = np.zeros((SIDE, SIDE), np.uint8)
    cr[CR_ROW, CR_COLS] = 1
    hot = np.zeros((SIDE, SIDE), np.uint8)
    hot[HOT] = 1
    sci = (9.0 * rng.standard_normal((SIDE, SIDE))).astype(np.float32) + pers
    sci[cr > 0] += 3000.0
    sci[hot > 0] += 5000.0
    sci[:, 5] = np.nan
    folder.mkdir()
    primary = fits.PrimaryHDU()
    primary.header["OBS_ID"] = "exp1"
    primary.header["EXPTIME"] = 100.0
    fits.HDUList([primary, fits.ImageHDU(sci, name="DET11.SCI")]).writeto(folder / "exp1.fits")
    truth = [
        fits.ImageHDU(pers, name="DET11.PERS"),
        fits.ImageHDU(cr, name="DET11.CR"),
        fits.ImageHDU(hot, name="DET11.HOT"),
    ]
    fits.HDUList([fits.PrimaryHDU(), *truth]).writeto(folder / "exp1.truth.fits")
    mask = np.zeros((SIDE, SIDE), np.uint8)
    mask[STREAK] = 1
    mask[CR_ROW, CR_COLS] = 1
    prob = np.where(mask > 0, 0.95, 0.0).astype(np.float32)
    prob[SPOT] = 0.3
    predictions.mkdir()
    layers = [fits.ImageHDU(mask, name="DET11.MASK"), fits.ImageHDU(prob, name="DET11.PROB")]
    fits.HDUList([fits.PrimaryHDU(), *layers]).writeto(predictions / "exp1.mask.fits")


def params_file(tmp_path: Path, baselines: list[str], variants: tuple[str, ...] = (), **unet: str) -> Path:
    """params.yaml of the repository with the evaluate and ablation paths moved into tmp_path."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["heldout"] = str(tmp_path / "heldout")
    raw["data"]["heldout_truth"] = None  # the data contract's layout: truth beside the exposures
    raw["predict"]["out"] = str(tmp_path / "predictions")
    raw["evaluate"].update(
        metrics=str(tmp_path / "metrics" / "eval.json"),
        table=str(tmp_path / "metrics" / "eval_table.md"),
        plots=str(tmp_path / "plots" / "eval"),
        baselines=baselines,
        truth_threshold=3.0,  # the fixture's spot (4 e-) and streak (20 e-) are both positives
        amplitude_bins=[3.0, 5.0, 10.0, 20.0, 50.0, 1.0e9],
    )
    raw["ablation"].update(
        methods=list(variants),
        metrics=str(tmp_path / "metrics" / "ablation.json"),
        table=str(tmp_path / "metrics" / "ablation_table.md"),
        plots=str(tmp_path / "plots" / "ablation"),
    )
    raw["unet"].update(unet)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


SCALING = Scaling("channel_row_block", 34, 3.0, -4.0, 100.0)


def write_tiny_model(path: Path) -> Path:
    """A randomly initialised tiny UNet checkpoint (a stand-in for ``models/unet_truth.pt``)."""
    torch.manual_seed(0)
    network = build_unet(**TINY_ARCH).eval()
    with torch.no_grad():
        noise = torch.from_numpy(SCALING.squash(np.random.default_rng(0).standard_normal((1, 1, 64, 64))))
        network.segmentation_head[0].bias -= float(network(noise).median())
    unet = UnetModel(network, TINY_ARCH, Normalisation(SCALING, 1e5), 1024, 32, 0.5, "tiny")
    torch.save(checkpoint_payload(unet), path)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def heldout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    write_heldout(tmp_path / "heldout", tmp_path / "predictions")
    return tmp_path


def test_evaluate_end_to_end_with_astroscrappy(heldout: Path) -> None:
    tmp_path = heldout
    baselines = ["astroscrappy", "physics"]
    assert main(["--params", str(params_file(tmp_path, baselines)), "-q", "evaluate"]) == 0

    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert metrics["heldout"] == {
        "exposures": 1,
        "detectors": 1,
        "usable_pixels": SIDE * (SIDE - 1),
        "positive_pixels": 1525,
    }
    assert list(metrics["methods"]) == ["unet", "physics", "astroscrappy"]
    unet = metrics["methods"]["unet"]
    assert (unet["tp"], unet["fp"], unet["fn"]) == (1500, 11, 25)
    assert unet["tn"] == SIDE * (SIDE - 1) - 1536
    assert unet["precision"] == pytest.approx(1500 / 1511)
    assert unet["recall"] == pytest.approx(1500 / 1525)
    assert unet["f1"] == pytest.approx(3000 / 3036)
    assert unet["iou"] == pytest.approx(1500 / 1536)
    assert (unet["objects_found"], unet["objects"], unet["object_recall"]) == (1, 2, 0.5)
    assert unet["cosmic_ray_flagged_fraction"] == 1.0
    assert unet["hot_pixel_flagged_fraction"] == 0.0
    assert unet["clean_pixels"] == SIDE * (SIDE - 1) - 1525 - 11 - 3  # no persistence, CR or hot pixel
    assert unet["clean_flagged_fraction"] == 0.0
    physics = metrics["methods"]["physics"]  # no PREVFILE: nothing flagged
    assert physics["tp"] + physics["fp"] == 0 and physics["fn"] == 1525
    assert unet["recall_by_amplitude"]["3-5e"] == 0.0
    assert unet["recall_by_amplitude"]["20-50e"] == 1.0
    assert unet["recall_by_amplitude"][">=50e"] == 0.0
    # clean pixels all have probability 0: the first threshold above it flags none and every positive
    assert unet["tpr_at_clean_fpr_0.005"] == unet["tpr_at_clean_fpr_0.0001"] == 1.0
    # recall 1 down to 0.3 (the spot): the 1525 positives and the 11 cosmic-ray pixels flagged
    assert unet["precision_at_recall_0.95"] == pytest.approx(1525 / 1536)
    assert unet["object_recall_by_amplitude"] == {
        "3-5e": 0.0,
        "5-10e": 0.0,
        "10-20e": 0.0,
        "20-50e": 1.0,
        ">=50e": 0.0,
    }
    assert unet["objects_by_amplitude"] == {"3-5e": 1, "5-10e": 0, "10-20e": 0, "20-50e": 1, ">=50e": 0}
    assert unet["object_recall_by_previous"] == {
        "grism": 0.0,
        "photometric": 0.0,
        "unknown": 0.5,
    }  # no PREVGWA
    assert unet["objects_by_previous"] == {"grism": 0, "photometric": 0, "unknown": 2}
    # a binary mask flagging no clean pixel: its recall at both rates; 95 % recall never reached
    assert physics["probability_detectors"] == 0
    assert physics["tpr_at_clean_fpr_0.005"] == physics["tpr_at_clean_fpr_0.0001"] == 0.0
    assert physics["precision_at_recall_0.95"] is None

    scrappy = metrics["methods"]["astroscrappy"]
    assert scrappy["cosmic_ray_flagged_fraction"] > 0.5  # the tool's job: cosmic rays
    assert scrappy["recall"] < 0.5  # a smooth faint trace is not a cosmic ray
    assert scrappy["cosmic_ray_pixels"] == 11
    assert scrappy["hot_pixels"] == 3

    table = (tmp_path / "metrics" / "eval_table.md").read_text()
    assert "| clean px flagged |" in table
    assert "| recall @ 0.5% clean FPR | recall @ 0.01% clean FPR | precision @ 95% recall |" in table
    unet_row = (
        "| unet | 0.993 | 0.984 | 0.988 | 0.977 | 0.500 | 1.000 | 0.000 | 0.000 | 1.000 | 1.000 | 0.993 |"
    )
    assert unet_row in table
    physics_row = next(line for line in table.splitlines() if line.startswith("| physics |"))
    assert physics_row.endswith("| 0.000 | 0.000 | n/a |")  # no precision at 95 % recall

    assert sorted(p.name for p in (tmp_path / "plots" / "eval" / "pr").iterdir()) == [
        "astroscrappy.csv",
        "physics.csv",
        "unet.csv",
    ]
    pr = read_csv(tmp_path / "plots" / "eval" / "pr" / "unet.csv")
    by_threshold = {float(row["threshold"]): row for row in pr}
    assert float(by_threshold[0.0]["recall"]) == pytest.approx(1.0)
    assert float(by_threshold[0.5]["recall"]) == pytest.approx(1500 / 1525)
    assert float(by_threshold[0.5]["precision"]) == pytest.approx(1500 / 1511)
    assert max(by_threshold) == pytest.approx(0.94)  # nothing at or above 0.96
    recalls = [float(row["recall"]) for row in pr]
    assert recalls == sorted(recalls, reverse=True)

    amplitude = read_csv(tmp_path / "plots" / "eval" / "recall_amplitude.csv")
    assert len(amplitude) == 5 and list(amplitude[0]) == [
        "amplitude",
        "amplitude_high",
        "bin",
        "pixels",
        "unet",
        "physics",
        "astroscrappy",
    ]
    assert {row["bin"]: row["pixels"] for row in amplitude}["3-5e"] == "25"
    assert {row["bin"]: float(row["unet"]) for row in amplitude}["20-50e"] == 1.0
    for name in ("pr.png", "recall_amplitude.png"):
        assert (tmp_path / "plots" / "eval" / name).stat().st_size > 1000

    runs = mlflow.search_runs(experiment_names=["slewdark"], filter_string="tags.`dvc.stage` = 'evaluate'")
    assert len(runs) == 1
    assert runs.loc[0, "metrics.unet.f1"] == pytest.approx(3000 / 3036)
    assert runs.loc[0, "metrics.unet.tpr_at_clean_fpr_0.0001"] == 1.0
    assert runs.loc[0, "metrics.unet.object_recall_by_previous.unknown"] == 0.5
    assert runs.loc[0, "metrics.unet.object_recall_by_amplitude.ge50e"] == 0.0
    assert "metrics.physics.precision_at_recall_0.95" not in runs.columns  # None is not logged
    artifacts = mlflow.MlflowClient().list_artifacts(runs.loc[0, "run_id"], "evaluate")
    assert {Path(a.path).name for a in artifacts} >= {
        "eval.json",
        "eval_table.md",
        "recall_amplitude.csv",
        "pr.png",
    }


def test_missing_truth_model_is_named(heldout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = heldout / "models" / "unet_truth.pt"
    params = params_file(heldout, [], ("unet_truth",), truth_model=str(missing))
    assert main(["--params", str(params), "evaluate", "--ablation"]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not (heldout / "metrics" / "ablation.json").exists()


def test_missing_prediction_is_named(heldout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (heldout / "predictions" / "exp1.mask.fits").unlink()
    assert main(["--params", str(params_file(heldout, ["astroscrappy"])), "evaluate"]) == 2
    assert "exp1.mask.fits (run `slewdark predict`" in capsys.readouterr().err


def test_read_mask_product_requires_the_detector(heldout: Path) -> None:
    product = heldout / "predictions" / "exp1.mask.fits"
    mask, prob = read_mask_product(product, "11")
    assert mask.dtype == bool and int(mask.sum()) == 1511
    assert prob is not None and prob.dtype == np.float32
    with pytest.raises(SlewdarkError, match=r"no DET22\.MASK extension"):
        read_mask_product(product, "22")


def test_truth_model_in_memory_matches_slewdark_predict(heldout: Path) -> None:
    """unet_truth runs in memory exactly as `slewdark predict` writes: scored on the product, same figures."""
    model = write_tiny_model(heldout / "unet_truth.pt")
    params_path = params_file(heldout, ["physics"], ("unet_truth",), truth_model=str(model))
    raw = yaml.safe_load(params_path.read_text())
    raw["predict"]["out"] = str(heldout / "tiny_predictions")
    params_path.write_text(yaml.safe_dump(raw))
    cfg = raw["predict"]
    options = PredictOptions(cfg["batch_size"], True, False, cfg["num_threads"], cfg["autocast"])
    report = predict_files(
        [heldout / "heldout" / "exp1.fits"],
        heldout / "tiny_predictions",
        load_unet(model, torch.device("cpu")),
        options,
    )
    assert not report.failed

    assert main(["--params", str(params_path), "-q", "evaluate", "--ablation"]) == 0
    assert not (heldout / "metrics" / "eval.json").exists()
    methods = json.loads((heldout / "metrics" / "ablation.json").read_text())["methods"]
    assert list(methods) == ["unet", "unet_truth"]
    assert (heldout / "metrics" / "ablation_table.md").read_text().count("| unet") == 2
    assert (heldout / "plots" / "ablation" / "pr" / "unet_truth.csv").is_file()
    assert methods["unet"]["tp"] + methods["unet"]["fp"] > 0
    assert methods["unet_truth"] == methods["unet"]


def test_heuristic_and_physics_baselines_keep_only_bright_previous_pixels(heldout: Path) -> None:
    from slewdark.config import load_params
    from slewdark.evaluation.baselines import heuristic_segmentation_method, physics_method
    from slewdark.io.fits import read_detector, read_info

    tmp_path = heldout
    params = load_params(REPO / "params.yaml")
    path = tmp_path / "heldout" / "exp1.fits"
    detector = read_detector(path, "11")
    method = heuristic_segmentation_method(params)

    alone, prob = method(path, read_info(path), detector)
    assert prob is None
    assert alone[STREAK].mean() > 0.9  # 20 e- over 9 e- read noise: found after smoothing
    assert alone[~detector.usable].sum() == 0

    fluence = np.zeros((SIDE, SIDE), np.float32)
    fluence[1000:1003, 300:500] = 50000.0  # only the first 200 columns of the streak were bright
    fluence[CR_ROW, CR_COLS] = 60000.0  # a cosmic ray in the previous exposure: thin, never bright
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(fluence, name="DET11.SCI")]).writeto(
        tmp_path / "heldout" / "exp1.prev.fits"
    )
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["PREVFILE"] = "exp1.prev.fits"
    restricted, _ = method(path, read_info(path), detector)
    assert restricted[1000:1003, 300:500].mean() > 0.9
    assert restricted[:, 510:].sum() == 0  # beyond the bright region (+1 px dilation) nothing is kept
    assert restricted.sum() < alone.sum()

    physics, prob = physics_method(params.evaluate.physics)(path, read_info(path), detector)
    assert prob is None
    assert physics[1000:1003, 300:500].all() and not physics[:, 510:].any()  # not the cosmic ray
    assert physics.sum() == 5 * 202 - 4  # half well, grown by 1 px; the 3 px median rounds the corners


@pytest.mark.parametrize(("gwa", "kind"), [("RGS180", "grism"), ("H", "photometric"), (None, "unknown")])
def test_previous_kind_reads_prevgwa(heldout: Path, gwa: str | None, kind: str) -> None:
    path = heldout / "heldout" / "exp1.fits"
    if gwa is not None:
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["PREVGWA"] = gwa
    assert previous_kind(read_info(path).prev_gwa) == kind
