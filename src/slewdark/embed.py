"""The ``embed`` stage: latent vector and reconstruction loss of every patch.

All patches (every split) go through the trained autoencoder in order, in
batches read from the memmap; ``latents.npy`` (N, D) float32 and
``recon_loss.npy`` (N,) float32 (masked MSE over usable pixels, the measure
training was validated with) follow the row order of ``index.csv``. The
distribution of the reconstruction loss is drawn per split and, when the
evaluation-only ``patch_truth.csv`` exists, per true patch class, and logged
to MLflow.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from slewdark.config import EmbedParams, TrackingParams
from slewdark.io.atomic import atomic_path
from slewdark.models.ae import Autoencoder, load_autoencoder
from slewdark.patch_data import PatchDataset, iter_batches, reconstruction_error
from slewdark.patches import read_index
from slewdark.tracking import stage_run
from slewdark.training import resolve_device

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


def read_truth_classes(path: str | Path, n_patches: int) -> np.ndarray | None:
    """The ``truth`` column of ``patch_truth.csv`` in patch order, or None when absent or stale."""
    path = Path(path)
    if not path.exists():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        log.info("%s: no truth (real data)", path)
        return None
    if len(rows) != n_patches:
        log.warning("%s has %d rows for %d patches: ignored (rerun patch-truth)", path, len(rows), n_patches)
        return None
    classes = np.empty(n_patches, dtype=object)
    for row in rows:
        classes[int(row["patch"])] = row["truth"]
    return classes


def run_embed(
    patch_dir: str | Path,
    model_path: str | Path,
    embed: EmbedParams,
    truth_csv: str | Path,
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
    truth_csv
        ``data/truth/patch_truth.csv``; used only to colour the figure, when present.
    device_name
        ``auto``, ``cpu`` or ``cuda``.
    tracking
        MLflow settings.

    Returns
    -------
    dict
        Median reconstruction loss per split (and per true class when known).
    """
    from slewdark.plots.recon_loss import plot_recon_loss, save_figure

    device = resolve_device(device_name)
    model, checkpoint = load_autoencoder(model_path, device)
    latents, recon_loss = embed_patches(model, patch_dir, embed.out, embed.batch_size, device)
    splits = read_index(patch_dir)["split"]
    truth = read_truth_classes(truth_csv, len(recon_loss))
    summary: dict[str, Any] = {"n_patches": len(recon_loss), "latent_dim": int(latents.shape[1])}
    for name, labels in (("split", splits), ("truth", truth)):
        if labels is None:
            continue
        for value in sorted(set(labels)):
            summary[f"recon_loss_median_{name}_{value}"] = float(np.median(recon_loss[labels == value]))
    figure = plot_recon_loss(recon_loss, splits, truth)
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
