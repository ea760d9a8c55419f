"""train_ae: masked losses, resumable training, the Optuna study and its MLflow runs (real SQLite stores)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import optuna
import pytest
import torch

from slewdark.config import load_params
from slewdark.stages.train_ae import (
    AeHyper,
    _requeue_interrupted,
    load_train_data,
    run_train_ae,
    train_autoencoder,
)
from slewdark.training.fit import EpochRecord, FitConfig
from slewdark.training.patch_data import reconstruction_error

REPO = Path(__file__).resolve().parents[1]
HYPER = AeHyper(arch="seed", widths=(4, 8, 8), latent_dim=8, loss="mse", lr=3e-3, batch_size=16)


def config(epochs: int) -> FitConfig:
    return FitConfig(epochs=epochs, patience=10, lr_patience=1, lr_factor=0.5, min_lr=1e-5, amp=True)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def params_for(tmp_path: Path, n_trials: int, epochs: int = 2) -> object:
    out = {
        "ae.widths": [4, 8, 8],
        "ae.epochs": epochs,
        "ae.batch_size": 16,
        "ae.checkpoint_dir": str(tmp_path / "ckpt"),
        "ae.model": str(tmp_path / "models/ae.pt"),
        "ae.metrics": str(tmp_path / "metrics/ae.json"),
        "ae.loss_curve": str(tmp_path / "plots/ae/loss.csv"),
        "optuna.n_trials": n_trials,
        "optuna.storage": f"sqlite:///{tmp_path}/optuna.db",
        "optuna.search.widths": [[4, 8, 8], [8, 8, 16]],
        "optuna.search.batch_size": [16, 32],
        "device": "cpu",
    }
    return load_params(REPO / "params.yaml", out)


@pytest.mark.parametrize("kind", ["mse", "mae", "bce"])
def test_losses_ignore_unusable_pixels(kind: str) -> None:
    target = torch.full((2, 1, 8, 8), 0.5)
    reconstruction = torch.full((2, 1, 8, 8), 0.4)
    usable = torch.ones_like(target, dtype=torch.bool)
    usable[:, :, :2] = False
    clean = reconstruction_error(reconstruction, target, usable, kind)
    spoiled = target.clone()
    spoiled[~usable] = 1.0
    assert torch.allclose(reconstruction_error(reconstruction, spoiled, usable, kind), clean)
    assert not torch.allclose(
        reconstruction_error(reconstruction, spoiled, torch.ones_like(usable), kind), clean
    )


def test_killed_training_resumes_and_equals_an_uninterrupted_one(
    tiny_patch_dir: Path, tmp_path: Path
) -> None:
    data = load_train_data(tiny_patch_dir, max_train=64, max_val=16, seed=3)
    cpu = torch.device("cpu")
    straight, straight_result = train_autoencoder(data, HYPER, config(4), cpu, 3, tmp_path / "a")

    class KilledError(Exception):
        pass

    def kill_at_3(record: EpochRecord) -> None:
        if record.epoch == 3:
            raise KilledError

    with pytest.raises(KilledError):
        train_autoencoder(data, HYPER, config(4), cpu, 3, tmp_path / "b", on_epoch=kill_at_3)
    seen: list[int] = []
    resumed, resumed_result = train_autoencoder(
        data, HYPER, config(4), cpu, 3, tmp_path / "b", on_epoch=lambda r: seen.append(r.epoch)
    )
    assert seen == [1, 2, 3, 4]
    assert resumed_result.history == straight_result.history
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
    # A longer run continues from the finished 4-epoch checkpoint instead of restarting.
    _, longer = train_autoencoder(data, HYPER, config(5), cpu, 3, tmp_path / "b")
    assert longer.history[:4] == straight_result.history
    assert len(longer.history) == 5


def test_a_few_epochs_reduce_the_validation_loss(tiny_patch_dir: Path) -> None:
    data = load_train_data(tiny_patch_dir, max_train=64, max_val=16, seed=3)
    _, result = train_autoencoder(data, HYPER, config(4), torch.device("cpu"), 3, None)
    assert result.history[-1].val_loss < result.history[0].val_loss
    assert result.best_val_loss == min(r.val_loss for r in result.history)


def test_single_training_writes_products_and_logs_the_model(
    tiny_patch_dir: Path, tmp_path: Path, store: str
) -> None:
    params = params_for(tmp_path, n_trials=0)
    metrics = run_train_ae(tiny_patch_dir, params.ae, params.optuna, 5, "cpu", params.tracking)
    saved = torch.load(tmp_path / "models/ae.pt", weights_only=True)
    assert saved["arch"] == {"arch": "seed", "patch_size": 16, "widths": [4, 8, 8], "latent_dim": 64}
    assert saved["patch_size"] == 16
    written = json.loads((tmp_path / "metrics/ae.json").read_text())
    assert written["best_val_loss"] == pytest.approx(metrics["best_val_loss"])
    assert written["latent_dim"] == 16
    curve = (tmp_path / "plots/ae/loss.csv").read_text().splitlines()
    assert curve[0] == "epoch,train_loss,val_loss" and len(curve) == 3
    client = mlflow.MlflowClient(store)
    run = client.get_run(saved["mlflow_run_id"])
    assert run.data.tags["dvc.stage"] == "train_ae"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.source_run_id for m in models] == [run.info.run_id]


def test_optuna_trials_are_nested_runs_and_the_study_resumes(
    tiny_patch_dir: Path, tmp_path: Path, store: str
) -> None:
    params = params_for(tmp_path, n_trials=2)
    metrics = run_train_ae(tiny_patch_dir, params.ae, params.optuna, 5, "cpu", params.tracking)
    client = mlflow.MlflowClient(store)
    parent_id = torch.load(tmp_path / "models/ae.pt", weights_only=True)["mlflow_run_id"]
    experiment = client.get_run(parent_id).info.experiment_id
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.info.run_name for r in children) == ["trial-0", "trial-1"]
    for child in children:
        assert {"lr", "batch_size", "loss", "widths"} <= set(child.data.params)
        assert client.get_metric_history(child.info.run_id, "val_loss")
    assert metrics["n_trials_complete"] + metrics["n_trials_pruned"] == 2

    more = params_for(tmp_path, n_trials=3)
    run_train_ae(tiny_patch_dir, more.ae, more.optuna, 5, "cpu", more.tracking)
    study = optuna.load_study(study_name=metrics["study"], storage=more.optuna.storage)
    assert len(study.trials) == 3


def test_interrupted_trial_is_requeued_with_its_parameters(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/optuna.db", study_name="s")
    trial = study.ask()
    lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    _requeue_interrupted(study)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    assert study.ask().suggest_float("lr", 1e-4, 1e-2, log=True) == lr
