"""embed: latents and reconstruction losses of every patch, their figure and MLflow run."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from slewdark.config import load_params
from slewdark.models.ae import build_autoencoder
from slewdark.stages.embed import embed_patches, run_embed
from slewdark.training.patch_data import PatchDataset, reconstruction_error

REPO = Path(__file__).resolve().parents[1]


def test_every_patch_gets_its_latent_and_loss(tiny_patch_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_autoencoder("seed", 16, [4, 8, 8], latent_dim=0).eval()
    latents, recon_loss = embed_patches(model, tiny_patch_dir, tmp_path / "latents", 40, torch.device("cpu"))
    assert latents.shape == (96, 16) and latents.dtype == np.float32
    assert recon_loss.shape == (96,)
    x, usable = PatchDataset(tiny_patch_dir, np.array([5, 50])).batch(np.array([0, 1]))
    with torch.no_grad():
        assert np.allclose(latents[[5, 50]], model.encode(x).numpy(), atol=1e-6)
        expected = reconstruction_error(model(x), x, usable, "mse").numpy()
    assert np.allclose(recon_loss[[5, 50]], expected, atol=1e-7)
    assert np.array_equal(np.load(tmp_path / "latents/recon_loss.npy"), recon_loss)


def test_stage_writes_products_figure_and_run(
    tiny_patch_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    arch = {"arch": "compact", "patch_size": 16, "widths": [4, 8, 8], "latent_dim": 6}
    model = build_autoencoder(**arch)
    torch.save(
        {"state_dict": model.state_dict(), "arch": arch, "patch_size": 16, "mlflow_run_id": "r0"}, "ae.pt"
    )
    params = load_params(
        REPO / "params.yaml",
        {"embed.out": "latents", "embed.plot": "plots/recon_loss.png", "embed.batch_size": 32},
    )
    summary = run_embed(tiny_patch_dir, "ae.pt", params.embed, "cpu", params.tracking)
    assert np.load(tmp_path / "latents/latents.npy").shape == (96, 6)
    assert (tmp_path / "plots/recon_loss.png").stat().st_size > 0
    assert {"recon_loss_median_split_train", "recon_loss_median_split_test"} <= set(summary)
    assert not any("truth" in key for key in summary)  # embed never reads truth
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(params.tracking.experiment).experiment_id])
    assert run.data.tags["dvc.stage"] == "embed"
    assert run.data.params["ae_run_id"] == "r0"
    assert "recon_loss.png" in [a.path for a in client.list_artifacts(run.info.run_id)]
