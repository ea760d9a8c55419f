"""train_unet: weighted losses, physical flips, and a real training with MLflow run, registry and resume."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from astropy.io import fits

from slewdark.config import load_params
from slewdark.inference.predict import load_unet
from slewdark.stages.train_unet import (
    calibrated_threshold,
    label_f1,
    label_f1_curve,
    run_train_unet,
    split_exposures,
    weighted_loss,
)
from slewdark.training.unet_data import TileSet, augment, blank_previous

REPO = Path(__file__).resolve().parents[1]
SIDE = 2040


def write_training_set(folder: Path, n: int) -> None:
    """``n`` one-detector slew darks with a faint streak, their pseudo-masks and truth files."""
    raw, masks = folder / "raw", folder / "masks"
    raw.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        sci = (9.0 * rng.standard_normal((SIDE, SIDE))).astype(np.float32)
        label = np.zeros((SIDE, SIDE), dtype=np.uint8)
        row = 200 + 150 * i
        label[row : row + 3, 100:1900] = 1
        sci[label > 0] += 40.0
        weight = np.ones((SIDE, SIDE), dtype=np.float32)
        weight[:, :50] = 0.0
        primary = fits.PrimaryHDU()
        primary.header["EXPTIME"] = 100.0
        fits.HDUList([primary, fits.ImageHDU(sci, name="DET11.SCI")]).writeto(raw / f"sd_{i}.fits")
        fits.HDUList(
            [
                fits.PrimaryHDU(),
                fits.ImageHDU(label, name="DET11.MASK"),
                fits.ImageHDU(weight, name="DET11.WEIGHT"),
            ]
        ).writeto(masks / f"sd_{i}.pseudo.fits")
        truth = [
            fits.ImageHDU(label.astype(np.float32) * 40.0, name="DET11.PERS"),
            fits.ImageHDU(np.zeros_like(label), name="DET11.CR"),
            fits.ImageHDU(np.zeros_like(label), name="DET11.HOT"),
        ]
        fits.HDUList([fits.PrimaryHDU(), *truth]).writeto(raw / f"sd_{i}.truth.fits")


@pytest.fixture
def tiny_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    write_training_set(tmp_path, 3)
    overrides = {
        "unet.encoder_depth": 3,
        "unet.encoder_width": 8,
        "unet.decoder_channels": [8, 8, 4],
        "data.train": "raw",
        "data.train_truth": None,  # the data contract's layout: truth beside the exposures
        "unet.masks": "masks",
        "unet.tile": 64,
        "unet.tiles_per_detector": 4,
        "unet.batch_size": 4,
        "unet.epochs": 1,
        "unet.inference.tile": 512,
        "unet.inference.overlap": 16,
        "unet.checkpoint_dir": "ckpt",
        "device": "cpu",
    }
    return load_params(REPO / "params.yaml", overrides)


def test_loss_ignores_zero_weight_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 16, 16)
    target = (torch.rand(2, 16, 16) > 0.8).float()
    weight = torch.ones(2, 16, 16)
    weight[:, :, :4] = 0.0
    changed = logits.clone()
    changed[..., :4] = 50.0
    other_target = target.clone()
    other_target[..., :4] = 1.0 - other_target[..., :4]
    for kind in ("dice_bce", "focal", "bce"):
        base = weighted_loss(kind, logits, target, weight, 2.0)
        assert torch.isclose(base, weighted_loss(kind, changed, other_target, weight, 2.0))
        assert float(weighted_loss(kind, 20.0 * (2 * target[:, None] - 1), target, weight, 2.0)) < 0.05


def test_bce_alone_is_calibrated_where_dice_pushes_outwards() -> None:
    target = (torch.arange(1000) < 300).float().reshape(1, 10, 100)
    weight = torch.ones_like(target)
    logits = torch.linspace(-3.0, 3.0, 601)

    def best_probability(kind: str) -> float:
        losses = [float(weighted_loss(kind, torch.full_like(target, z), target, weight, 2.0)) for z in logits]
        return float(torch.sigmoid(logits[int(np.argmin(losses))]))

    assert abs(best_probability("bce") - 0.3) < 0.01
    assert best_probability("dice_bce") > 0.35


def test_flips_move_inputs_labels_and_weights_together() -> None:
    x = torch.arange(2 * 1 * 4 * 6, dtype=torch.float32).reshape(2, 1, 4, 6)
    y, w = x[:, 0].clone(), x[:, 0].clone() * 2
    generator = torch.Generator().manual_seed(1)
    fx, fy, fw = augment(x, y, w, (True, True, False), generator)
    assert torch.equal(fx[:, 0], fy) and torch.equal(fw, 2 * fy)
    assert sorted(fx.flatten().tolist()) == sorted(x.flatten().tolist())
    same, _, _ = augment(x, y, w, (False, False, False), generator)
    assert torch.equal(same, x)


def test_flips_and_transposes_reach_all_eight_orientations() -> None:
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4).repeat(64, 1, 1, 1)
    y, w = x[:, 0].clone(), x[:, 0].clone()
    moved, my, _ = augment(x, y, w, (True, True, True), torch.Generator().manual_seed(2))
    assert torch.equal(moved[:, 0], my)
    seen = {tuple(tile.flatten().tolist()) for tile in moved[:, 0]}
    tile = x[0, 0]
    dihedral = {tuple(torch.rot90(t, k).flatten().tolist()) for t in (tile, tile.T) for k in range(4)}
    assert seen == dihedral


def test_split_holds_out_whole_exposures_of_every_kind() -> None:
    files = [Path(f"e{i}.fits") for i in range(8)]
    kinds = ["grism", "photometric"] * 4
    train, val = split_exposures(files, 0.25, seed=3, strata=kinds)
    assert len(val) == 2 and not set(train) & set(val) and len(train) + len(val) == 8
    assert sorted(kinds[files.index(path)] for path in val) == ["grism", "photometric"]
    assert split_exposures(files, 0.25, seed=3, strata=kinds) == (train, val)
    assert {split_exposures(files, 0.25, seed, kinds)[1][0] for seed in range(20)} != {val[0]}
    few = split_exposures(files[:3], 0.34, seed=1, strata=["grism", "grism", "photometric"])
    assert len(few[1]) == 1 and len(few[0]) == 2


def test_train_unet_writes_checkpoint_mlflow_run_and_registered_model(tiny_setup: object) -> None:
    params = tiny_setup
    model_path = run_train_unet(params, "pseudo")
    assert model_path == Path("models/unet.pt")
    unet = load_unet(model_path, torch.device("cpu"))
    assert unet.arch["encoder_depth"] == 3 and unet.tile == 512 and unet.overlap == 16
    assert unet.registered_version == "1"
    metrics = json.loads(Path("metrics/unet.json").read_text())
    assert metrics["labels"] == "pseudo" and metrics["epochs"] == 1 and 0.0 <= metrics["val_label_f1"] <= 1.0
    curve = Path("plots/unet/loss.csv").read_text().splitlines()
    assert curve[0] == "epoch,train_loss,val_loss,lr" and len(curve) == 2

    client = mlflow.MlflowClient()
    run = client.get_run(unet.mlflow_run_id)
    assert run.data.tags["dvc.stage"] == "train_unet"
    assert {"train_loss", "val_loss", "val_label_f1"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples.png", "checkpoint", "unet.json"} <= artifacts
    version = client.get_model_version(params.tracking.registered_model, "1")
    assert version.run_id == unet.mlflow_run_id

    client.set_registered_model_alias(params.tracking.registered_model, "production", "1")
    for uri in ("1", "@production"):
        reference = f"models:/{params.tracking.registered_model}{'/' if uri == '1' else ''}{uri}"
        from_registry = load_unet(reference, torch.device("cpu"))
        assert from_registry.source == reference
        for key, value in unet.network.state_dict().items():
            assert torch.equal(value, from_registry.network.state_dict()[key])

    # A second call finds the finished checkpoint and writes the same weights (resume).
    run_train_unet(params, "pseudo")
    again = load_unet(model_path, torch.device("cpu"))
    for key, value in unet.network.state_dict().items():
        assert torch.equal(value, again.network.state_dict()[key])


def test_truth_labels_train_the_ceiling_without_registering(tiny_setup: object) -> None:
    params = tiny_setup
    path = run_train_unet(params, "truth")
    assert path == Path("models/unet_truth.pt") and not Path("models/unet.pt").exists()
    unet = load_unet(path, torch.device("cpu"))
    assert unet.registered_version is None
    metrics = json.loads(Path("metrics/unet_truth.json").read_text())
    assert metrics["labels"] == "truth"
    assert unet.threshold == metrics["threshold"] and 0.0 < unet.threshold < 1.0  # calibrated on validation
    assert mlflow.MlflowClient().search_registered_models() == []


class InputAsProbability(torch.nn.Module):
    """A stand-in network whose probability is its first input channel (logit of it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logit(x[:, :1].clamp(1e-6, 1 - 1e-6))


def test_the_calibrated_threshold_is_the_best_validation_f1_and_ignores_unweighted_pixels() -> None:
    prob = np.array([[0.9, 0.7, 0.33, 0.33, 0.2, 0.1, 0.1, 0.9]], dtype=np.float32).reshape(1, 1, 1, 8)
    labels = np.array([[1, 1, 1, 1, 0, 0, 0, 0]], dtype=np.uint8).reshape(1, 1, 8)
    weights = np.ones((1, 1, 8), dtype=np.float32)
    weights[..., 7] = 0.0  # a confident-looking false positive nobody vouches for
    tiles = TileSet(np.repeat(prob, 2, axis=1), labels, weights)
    cpu = torch.device("cpu")
    threshold, f1 = calibrated_threshold(InputAsProbability(), tiles, grid=19, batch_size=1, device=cpu)
    assert threshold == pytest.approx(0.25) and f1 == pytest.approx(1.0)
    assert label_f1(InputAsProbability(), tiles, 0.5, 1, cpu) == pytest.approx(2 * 2 / (2 * 2 + 2))
    curve = label_f1_curve(InputAsProbability(), tiles, np.array([0.05, 0.95]), 1, cpu)
    assert curve == pytest.approx([2 * 4 / (2 * 4 + 3), 0.0])


def test_previous_channel_is_blanked_for_a_share_of_the_tiles_only() -> None:
    x = torch.ones(400, 2, 8, 8)
    blanked = blank_previous(x, 0.25, torch.Generator().manual_seed(0))
    empty = (blanked[:, 1] == 0).all(dim=(1, 2))
    assert 0.15 < float(empty.float().mean()) < 0.35
    assert torch.equal(blanked[:, 0], x[:, 0]) and (blanked[~empty, 1] == 1).all()
    assert torch.equal(blank_previous(x[:, :1], 0.5, torch.Generator()), x[:, :1])
