"""The autoencoders: the study's architecture exactly, the compact variant, saving and loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from slewdark.errors import SlewdarkError
from slewdark.models.ae import build_autoencoder, count_parameters, load_autoencoder

# The study's layer table for 136x136x1: (layer, output shape (H, W, C), parameters).
SEED_TABLE = [
    ("Conv2D", (136, 136, 16), 160),
    ("MaxPool", (68, 68, 16), 0),
    ("Conv2D", (68, 68, 32), 4640),
    ("MaxPool", (34, 34, 32), 0),
    ("Conv2D", (34, 34, 64), 18496),
    ("Conv2D", (34, 34, 64), 36928),
    ("UpSample", (68, 68, 64), 0),
    ("Conv2D", (68, 68, 32), 18464),
    ("UpSample", (136, 136, 32), 0),
    ("Conv2D", (136, 136, 1), 289),
]
KIND = {nn.Conv2d: "Conv2D", nn.MaxPool2d: "MaxPool", nn.Upsample: "UpSample"}


def test_seed_architecture_matches_the_study_table() -> None:
    model = build_autoencoder("seed", 136, [16, 32, 64], latent_dim=0)
    assert count_parameters(model) == 78_977
    layers = [m for m in [*model.encoder, *model.decoder] if type(m) in KIND]
    x = torch.zeros(1, 1, 136, 136)
    seen = []
    for layer in [*model.encoder, *model.decoder]:
        x = layer(x)
        if layer in layers:
            params = sum(p.numel() for p in layer.parameters())
            seen.append((KIND[type(layer)], (x.shape[2], x.shape[3], x.shape[1]), params))
    assert seen == SEED_TABLE
    assert isinstance(model.decoder[-1], nn.Sigmoid)
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 5


@pytest.mark.parametrize("size", [136, 68, 34])
def test_seed_latent_is_mean_and_max_of_the_bottleneck(size: int) -> None:
    model = build_autoencoder("seed", size, [16, 32, 64], latent_dim=0).eval()
    x = torch.rand(3, 1, size, size)
    with torch.no_grad():
        latent, reconstruction = model.encode_and_reconstruct(x)
        bottleneck = model.encoder(model._pad(x))
    assert latent.shape == (3, 128)
    assert torch.equal(latent[:, :64], bottleneck.mean(dim=(2, 3)))
    assert torch.equal(latent[:, 64:], bottleneck.amax(dim=(2, 3)))
    assert reconstruction.shape == x.shape
    assert float(reconstruction.min()) >= 0 and float(reconstruction.max()) <= 1
    assert torch.equal(model(x), reconstruction)


@pytest.mark.parametrize("size", [68, 34])
def test_compact_latent_has_latent_dim_numbers(size: int) -> None:
    model = build_autoencoder("compact", size, [8, 16, 32], latent_dim=24).eval()
    x = torch.rand(2, 1, size, size)
    assert model.encode(x).shape == (2, 24)
    assert model(x).shape == x.shape


@pytest.mark.parametrize(
    ("arch", "widths", "latent_dim", "fragment"),
    [
        ("seed", [16, 32, 256], 0, "256"),
        ("compact", [8, 16, 32], 300, "latent_dim"),
        ("vae", [8, 16, 32], 8, "unknown ae.arch"),
        ("seed", [8, 16], 8, "three"),
    ],
)
def test_bad_settings_are_clear_errors(arch: str, widths: list[int], latent_dim: int, fragment: str) -> None:
    with pytest.raises(SlewdarkError, match=fragment):
        build_autoencoder(arch, 68, widths, latent_dim)


def test_a_few_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    model = build_autoencoder("seed", 32, [8, 16, 32], latent_dim=0)
    x = torch.full((8, 1, 32, 32), 0.1)
    x[:, :, 10:14, :] = 0.9
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = nn.functional.mse_loss(model(x), x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_saved_model_loads_with_the_same_outputs(tmp_path: Path) -> None:
    arch = {"arch": "compact", "patch_size": 20, "widths": [4, 8, 8], "latent_dim": 6}
    model = build_autoencoder(**arch).eval()
    torch.save(
        {"state_dict": model.state_dict(), "arch": arch, "patch_size": 20, "mlflow_run_id": "r"},
        tmp_path / "ae.pt",
    )
    loaded, checkpoint = load_autoencoder(tmp_path / "ae.pt")
    x = torch.rand(2, 1, 20, 20)
    assert checkpoint["mlflow_run_id"] == "r"
    assert not loaded.training
    assert torch.equal(loaded(x), model(x))


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SlewdarkError, match="train-ae"):
        load_autoencoder(tmp_path / "nothing.pt")
