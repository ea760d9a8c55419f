"""The ``embed`` stage: latent vector and reconstruction loss of every patch.

All patches (every split) go through the trained autoencoder in order, in
batches read from the memmap; ``latents.npy`` (N, D) float32 and
``recon_loss.npy`` (N,) float32 (masked MSE over usable pixels, the measure
training was validated with) follow the row order of ``index.csv``. The
distribution of the reconstruction loss is drawn per split and logged to
MLflow. Truth is never read here: its median per true patch class is an
evaluation figure of :mod:`slewdark.stages.pseudomask_quality`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from slewdark.config import EmbedParams, TrackingParams
from slewdark.io.atomic import atomic_path
from slewdark.io.tables import read_index
from slewdark.models.ae import Autoencoder, load_autoencoder
from slewdark.models.device import resolve_device
from slewdark.ops.tracking import stage_run
from slewdark.training.patch_data import PatchDataset, iter_batches, reconstruction_error

log = logging.getLogger(__name__)

STAGE = "embed"


def embed_patches(
    model: Autoencoder, patch_dir: str | Path, out_dir: str | Path, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Write ``latents.npy`` and ``recon_loss.npy`` for every patch, streaming.

    Parameters
    ----------
    model
        Trained autoencoder in evaluation mode, on ``device``.
    patch_dir
        The ``patches`` stage's folder.
    out_dir
        Output folder (``data/latents``).
    batch_size
        Patches per forward pass.
    device
        Where to run the model.

    Returns
    -------
    latents : ndarray
        (N, D) float32, memory-mapped from the written file.
    recon_loss : ndarray
        (N,) float32.
    """
    out_dir = Path(out_dir)
    dataset = PatchDataset(patch_dir)
    size = dataset.patch_size
    with torch.no_grad():
        dim = int(model.encode(torch.zeros(1, 1, size, size, device=device)).shape[1])
    recon_loss = np.empty(len(dataset), dtype=np.float32)
    with atomic_path(out_dir / "latents.npy") as tmp:
        latents = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(len(dataset), dim))
        start = 0
        with torch.no_grad():
            for x, usable in tqdm(iter_batches(dataset, batch_size), desc="embed", unit="batch",
                                  total=-(-len(dataset) // batch_size)):  # fmt: skip
                x, usable = x.to(device), usable.to(device)
                latent, reconstruction = model.encode_and_reconstruct(x)
                stop = start + len(x)
                latents[start:stop] = latent.float().cpu().numpy()
                recon_loss[start:stop] = reconstruction_error(reconstruction, x, usable, "mse").cpu().numpy()
                start = stop
        latents.flush()
        del latents
    with atomic_path(out_dir / "recon_loss.npy") as tmp, tmp.open("wb") as handle:
        np.save(handle, recon_loss)
    return np.load(out_dir / "latents.npy", mmap_mode="r"), recon_loss


def run_embed(
    patch_dir: str | Path,
    model_path: str | Path,
    embed: EmbedParams,
    device_name: str,
    tracking: TrackingParams,
) -> dict[str, Any]:
    """Run the ``embed`` stage: latents, reconstruction losses, their figure, an MLflow run.

    Parameters
    ----------
    patch_dir
        The ``patches`` stage's folder.
    model_path
        ``models/ae.pt``.
    embed
        The ``embed`` params section (output folder, batch size, figure path).
    device_name
        ``auto``, ``cpu`` or ``cuda``.
    tracking
        MLflow settings.

    Returns
    -------
    dict
        Median reconstruction loss per split, number of patches and latent size.
    """
    from slewdark.plots.figures import save_figure
    from slewdark.plots.recon_loss import plot_recon_loss

    device = resolve_device(device_name)
    model, checkpoint = load_autoencoder(model_path, device)
    latents, recon_loss = embed_patches(model, patch_dir, embed.out, embed.batch_size, device)
    splits = read_index(patch_dir)["split"]
    summary: dict[str, Any] = {"n_patches": len(recon_loss), "latent_dim": int(latents.shape[1])}
    for split in sorted(set(splits)):
        summary[f"recon_loss_median_split_{split}"] = float(np.median(recon_loss[splits == split]))
    figure = plot_recon_loss(recon_loss, splits)
    save_figure(figure, embed.plot)
    run_params = {
        "embed": embed.model_dump(),
        "ae_run_id": checkpoint.get("mlflow_run_id"),
        "device": str(device),
    }
    with stage_run(STAGE, tracking.uri, tracking.experiment, params=run_params) as run:
        run.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
        run.log_artifact(embed.plot)
    return summary
