"""The ``train_unet`` stage: a UNet learns the pseudo-masks (or, for the ceiling, the truth).

:func:`run_train_unet` cuts seeded training tiles from the training exposures
(:mod:`slewdark.training.unet_data`; whole exposures are held out for validation),
trains :func:`slewdark.models.unet.build_unet` with the shared loop of
:mod:`slewdark.training.fit` (Adam, reduce-LR-on-plateau, early stopping on the
validation loss, a checkpoint every epoch so a killed run resumes, float16
autocast on CUDA), and writes ``models/unet.pt`` (``docs/products.md``).

The loss is weighted by the label confidence (``DETxy.WEIGHT`` of the
pseudo-masks; 0 = unknown or unusable pixel): ``dice_bce`` is weighted binary
cross-entropy plus a weighted soft Dice (Dice fights the imbalance of a few
persistence pixels in a sea of background), ``focal`` the weighted focal loss,
``bce`` weighted binary cross-entropy alone (``metrics/experiments/law_labels`` compares them).

``labels: truth`` trains the same network on the simulator's truth
(``models/unet_truth.pt``): the supervised ceiling of the evaluation, never a
product. The ablation's label sources, ``heuristic`` (the cluster-free
heuristic's masks, :mod:`slewdark.stages.heuristic_masks`) and ``neighbourhood``
(pseudo-masks of the study's neighbourhood rule), train the same network
with the same settings into ``models/unet_heuristic.pt`` and
``models/unet_neighbourhood.pt`` (:func:`slewdark.training.variants.outputs_for`), so the evaluation shows
what the clusters add. With ``n_trials > 0`` an Optuna study (seeded TPE, one
nested MLflow run per trial) searches the learning rate and the loss for the
best validation F1 against the labels. The MLflow run holds per-epoch losses, a
picture of sample predictions, the checkpoint, and (pseudo labels only) the
network, registered as ``tracking.registered_model``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from slewdark.config import Params, UnetLoss, UnetParams, params_sha256
from slewdark.core.instrument import previous_kind
from slewdark.core.law_fit import LawFitSettings, law_fit_settings, persistence_model
from slewdark.core.normalisation import BrightVeto, Normalisation
from slewdark.core.persistence_law import PersistenceModel
from slewdark.core.scaling import Scaling
from slewdark.errors import SlewdarkError
from slewdark.io.atomic import atomic_path, write_text_atomic
from slewdark.io.exposures import exposure_files
from slewdark.io.fits import exposure_stem, read_info
from slewdark.io.tables import write_table
from slewdark.models.checkpoint import UnetModel, checkpoint_payload
from slewdark.models.device import resolve_device
from slewdark.models.unet import build_unet, count_parameters
from slewdark.ops.provenance import code_fingerprint
from slewdark.ops.tracking import CHECKPOINT_ARTIFACT, StageRun, stage_run
from slewdark.training.fit import EpochRecord, FitConfig, fit, seed_everything
from slewdark.training.unet_data import (
    LabelSource,
    TileSet,
    build_tile_set,
    iter_training_batches,
    pseudo_mask_labels,
    truth_labels,
)
from slewdark.training.variants import Labels, TrainOutputs, masks_for, outputs_for

log = logging.getLogger(__name__)

EPS = 1.0


def weighted_loss(
    kind: UnetLoss, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Per-pixel weighted segmentation loss.

    Parameters
    ----------
    kind
        ``dice_bce``: weighted BCE + weighted soft Dice; ``focal``: weighted focal loss;
        ``bce``: weighted BCE alone, whose optimum puts the 0.5 contour on the labels' edge
        (Dice's gradient pushes harder on missed than on extra pixels, so it moves the
        contour outwards where the labels are not fully predictable).
    logits
        ``(B, 1, H, W)`` or ``(B, H, W)`` network output.
    target
        ``(B, H, W)`` labels in {0, 1} (float).
    weight
        ``(B, H, W)`` label confidence in [0, 1]; 0 excludes a pixel.
    gamma
        Focusing exponent of the focal loss.

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    logits = logits.reshape(target.shape).float()
    total_weight = weight.sum().clamp_min(EPS)
    bce = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if kind == "focal":
        p_true = torch.exp(-bce)
        return ((1.0 - p_true) ** gamma * bce * weight).sum() / total_weight
    if kind == "bce":
        return (bce * weight).sum() / total_weight
    prob = torch.sigmoid(logits)
    intersection = (weight * prob * target).sum()
    dice = 1.0 - (2.0 * intersection + EPS) / ((weight * prob).sum() + (weight * target).sum() + EPS)
    return (bce * weight).sum() / total_weight + dice


@dataclass(frozen=True)
class UnetHyper:
    """What one training may vary (Optuna searches ``lr`` and ``loss``)."""

    lr: float
    loss: UnetLoss


def arch_kwargs(unet: UnetParams) -> dict[str, Any]:
    """Keyword arguments of :func:`build_unet` (saved in the checkpoint)."""
    return {
        "encoder_name": unet.encoder_name,
        "encoder_depth": unet.encoder_depth,
        "decoder_channels": list(unet.decoder_channels),
        "in_channels": unet.in_channels,
        "encoder_width": unet.encoder_width,
    }


def input_law(params: Params) -> tuple[PersistenceModel | None, LawFitSettings | None]:
    """Law and fit of a three-channel model's third channel (:mod:`slewdark.core.law_fit`), or None."""
    if params.unet.in_channels != 3:
        return None, None
    return persistence_model(params), law_fit_settings(params)


def split_exposures(
    files: list[Path], val_fraction: float, seed: int, strata: list[str] | None = None
) -> tuple[list[Path], list[Path]]:
    """Seeded split of whole exposures into train and validation, stratified.

    Each stratum (by default the kind of previous exposure, :func:`slewdark.core.instrument.previous_kind`)
    gives ``val_fraction`` of its exposures to validation, rounded, and the
    largest strata give one more until the total is the rounded share of all:
    after a photometric exposure there is little persistence, after a grism
    exposure there are long traces, and a validation set of only one kind would
    tell little about the other (an all-photometric one holds almost no persistence).

    Parameters
    ----------
    files
        Exposure files.
    val_fraction
        Share of exposures held out.
    seed
        Seed of the choice within each stratum.
    strata
        Stratum of each file; None reads :func:`slewdark.core.instrument.previous_kind` from the headers.

    Returns
    -------
    train, val : list of Path
        Sorted; at least one of each.

    Raises
    ------
    SlewdarkError
        With fewer than two exposures.
    """
    if len(files) < 2:
        raise SlewdarkError(
            f"need at least 2 training exposures to hold one out for validation, got {len(files)}"
        )
    kinds = strata if strata is not None else [previous_kind(read_info(path).prev_gwa) for path in files]
    n_val = min(max(1, round(len(files) * val_fraction)), len(files) - 1)
    rng = np.random.default_rng(seed)
    groups = {
        kind: [files[i] for i in rng.permutation(len(files)) if kinds[i] == kind]
        for kind in sorted(set(kinds))
    }
    quota = {kind: int(len(group) * val_fraction) for kind, group in groups.items()}
    for kind in sorted(groups, key=lambda k: (-(len(groups[k]) * val_fraction - quota[k]), k)):
        if sum(quota.values()) >= n_val:
            break
        quota[kind] += 1
    val = sorted(path for kind, group in groups.items() for path in group[: quota[kind]])
    train = sorted(path for path in files if path not in val)
    return train, val


def label_f1_curve(
    network: nn.Module, tiles: TileSet, thresholds: np.ndarray, batch_size: int, device: torch.device
) -> np.ndarray:
    """Pixel F1 of the network against the tiles' labels (pixels with positive weight), per threshold.

    Parameters
    ----------
    network
        The UNet (put in eval mode here).
    tiles
        Tiles with their labels and weights.
    thresholds
        Probabilities at and above which a pixel is flagged.
    batch_size
        Tiles per forward pass.
    device
        Where the network runs.

    Returns
    -------
    np.ndarray
        F1 for every threshold (0 where nothing is labelled or flagged).
    """
    counts = np.zeros((len(thresholds), 3), dtype=np.int64)
    levels = torch.as_tensor(thresholds, dtype=torch.float32)[:, None]
    network.eval()
    with torch.inference_mode():
        for x, y, w in iter_training_batches(tiles, batch_size, seed=None):
            known = w > 0
            prob = torch.sigmoid(network(x.to(device))).cpu()[:, 0][known]
            truth = y[known] > 0.5
            pred = prob[None, :] >= levels
            counts[:, 0] += (pred & truth).sum(dim=1).numpy()
            counts[:, 1] += (pred & ~truth).sum(dim=1).numpy()
            counts[:, 2] += (~pred & truth).sum(dim=1).numpy()
    tp, fp, fn = counts.T
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def label_f1(
    network: nn.Module, tiles: TileSet, threshold: float, batch_size: int, device: torch.device
) -> float:
    """Pixel F1 of the network against the tiles' labels at one threshold (:func:`label_f1_curve`)."""
    return float(label_f1_curve(network, tiles, np.array([threshold]), batch_size, device)[0])


def calibrated_threshold(
    network: nn.Module, tiles: TileSet, grid: int, batch_size: int, device: torch.device
) -> tuple[float, float]:
    """The decision threshold with the best F1 against the validation tiles' own labels.

    Parameters
    ----------
    network, tiles, batch_size, device
        As for :func:`label_f1_curve`; ``tiles`` are the validation tiles.
    grid
        Thresholds tried, evenly spaced strictly inside (0, 1).

    Returns
    -------
    tuple of float
        The threshold (the lowest of equal best ones) and its F1.
    """
    thresholds = np.linspace(0.0, 1.0, grid + 2)[1:-1]
    f1 = label_f1_curve(network, tiles, thresholds, batch_size, device)
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def train_network(
    unet: UnetParams,
    hyper: UnetHyper,
    train_tiles: TileSet,
    val_tiles: TileSet,
    device: torch.device,
    seed: int,
    checkpoint: Path | None,
    fingerprint: str,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> tuple[nn.Module, list[EpochRecord]]:
    """One training of the UNet; returns the best network (on ``device``) and the epoch history.

    Parameters
    ----------
    unet
        The ``unet`` params (architecture, schedule, batch size, augmentation).
    hyper
        Learning rate and loss.
    train_tiles, val_tiles
        Tiles of the training and validation exposures.
    device
        Torch device.
    seed
        Seed of the initialisation, shuffling and augmentation.
    checkpoint, fingerprint
        Resumable checkpoint of :func:`slewdark.training.fit.fit`.
    on_epoch
        Called with every epoch record.
    """
    seed_everything(seed)
    network = build_unet(**arch_kwargs(unet)).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=hyper.lr)
    moves = (unet.augment.horizontal_flip, unet.augment.vertical_flip, unet.augment.rotate90)

    def loss(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, y, w = batch
        return weighted_loss(
            hyper.loss, net(x.contiguous(memory_format=torch.channels_last)), y, w, unet.focal_gamma
        )

    config = FitConfig(unet.epochs, unet.patience, unet.lr_patience, unet.lr_factor, unet.min_lr, unet.amp)
    result = fit(
        network,
        optimizer,
        lambda epoch: iter_training_batches(
            train_tiles, unet.batch_size, seed + epoch, moves, unet.prev_dropout
        ),
        lambda: iter_training_batches(val_tiles, unet.batch_size, seed=None),
        loss,
        loss,
        config,
        device,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
        on_epoch=on_epoch,
    )
    network.load_state_dict(result.best_state)
    return network.eval(), result.history


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tile_fingerprint(tiles: TileSet) -> str:
    digest = hashlib.sha256()
    for array in (tiles.inputs, tiles.labels, tiles.weights):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def run_train_unet(params: Params, labels: Labels = "pseudo") -> Path:
    """The ``train_unet`` stage: tiles, (optional Optuna study), training, MLflow, ``models/unet.pt``.

    Parameters
    ----------
    params
        Validated params (sections ``unet``, ``patches`` percentiles, ``evaluate.truth_threshold``
        for truth labels, ``tracking``, ``seed``, ``device``).
    labels
        ``pseudo`` (the product) or ``truth`` (the evaluation's supervised ceiling).

    Returns
    -------
    Path
        The checkpoint written.
    """
    unet = params.unet
    device = resolve_device(params.device)
    outputs = outputs_for(unet, labels)
    normalisation = Normalisation(
        Scaling(**params.scaling.model_dump()), unet.prev_full_scale, *input_law(params)
    )
    source: LabelSource
    if labels == "truth":
        source = truth_labels(params.evaluate.truth_threshold, params.data.train_truth)
        files = exposure_files(params.data.train)
    else:
        masks = masks_for(params, labels)
        source = pseudo_mask_labels(masks)
        stems = {p.name.removesuffix(".pseudo.fits") for p in masks.glob("*.pseudo.fits")}
        files = [p for p in exposure_files(params.data.train) if exposure_stem(p) in stems]
        if not files:
            raise SlewdarkError(
                f"{masks}: no {labels} mask matches an exposure of {params.data.train} (run its stage first)"
            )
    train_files, val_files = split_exposures(files, unet.val_fraction, params.seed)
    log.info("%d training and %d validation exposures (%s labels)", len(train_files), len(val_files), labels)
    tile_args = (normalisation, unet.in_channels, unet.tile, unet.tiles_per_detector, unet.positive_fraction)
    train_tiles = build_tile_set(train_files, source, *tile_args, seed=params.seed)
    val_tiles = build_tile_set(val_files, source, *tile_args, seed=params.seed + 1)
    data_id = _fingerprint(_tile_fingerprint(train_tiles), _tile_fingerprint(val_tiles))
    code_id = code_fingerprint(__name__)
    run_params = {"unet": unet.model_dump(), "labels": labels, "seed": params.seed, "device": str(device)}
    stage = "train_unet" if labels == "pseudo" else f"train_unet_{labels}"
    checkpoint_dir = Path(unet.checkpoint_dir)

    def one_training(hyper: UnetHyper, run: StageRun) -> tuple[nn.Module, list[EpochRecord], float]:
        fingerprint = _fingerprint(code_id, data_id, arch_kwargs(unet), hyper, unet.model_dump(), params.seed)
        network, history = train_network(
            unet,
            hyper,
            train_tiles,
            val_tiles,
            device,
            params.seed,
            checkpoint_dir / f"{labels}-{fingerprint}.pt",
            fingerprint,
            on_epoch=lambda r: run.log_metrics(
                {"train_loss": r.train_loss, "val_loss": r.val_loss, "lr": r.lr}, r.epoch
            ),
        )
        f1 = label_f1(network, val_tiles, unet.threshold, unet.batch_size, device)
        run.log_metrics({"val_label_f1": f1})
        return network, history, f1

    with stage_run(stage, params.tracking.uri, params.tracking.experiment, params=run_params) as run:
        run.log_metrics({"train_tiles": len(train_tiles), "val_tiles": len(val_tiles)})
        hyper = UnetHyper(unet.lr, unet.loss)
        if unet.optuna.n_trials > 0:
            hyper = _study(unet, params, one_training)
            run.log_params({"best": {"lr": hyper.lr, "loss": hyper.loss}})
        network, history, f1 = one_training(hyper, run)
        threshold = unet.threshold
        if labels in unet.calibrate.labels:
            threshold, f1 = calibrated_threshold(
                network, val_tiles, unet.calibrate.grid, unet.batch_size, device
            )
            run.log_metrics({"calibrated_threshold": threshold, "val_label_f1_calibrated": f1})
        log.info(
            "UNet (%d parameters): validation F1 against %s labels %.3f at threshold %.3f",
            count_parameters(network),
            labels,
            f1,
            threshold,
        )
        run.log_figure(sample_figure(network, val_tiles, threshold, device), "samples.png")
        registered = params.tracking.registered_model if labels == "pseudo" else None
        version = run.log_torch_model(network.cpu(), "unet", registered_model=registered)
        model = UnetModel(
            network=network,
            arch=arch_kwargs(unet),
            normalisation=normalisation,
            tile=unet.inference.tile,
            overlap=unet.inference.overlap,
            threshold=threshold,
            veto=None if unet.veto.sigma is None else BrightVeto(**unet.veto.model_dump()),
            source=str(outputs.model),
            mlflow_run_id=run.run_id,
            registered_version=version,
            params_sha=params_sha256(params),
        )
        _write_products(outputs, model, history, f1, hyper, labels)
        _log_checkpoint(run, outputs.model)
        run.log_artifact(outputs.metrics)
    return outputs.model


def _log_checkpoint(run: StageRun, model: Path) -> None:
    """Store the checkpoint as the run artifact :data:`~slewdark.ops.tracking.CHECKPOINT_ARTIFACT`.

    ``slewdark predict --model models:/...`` downloads it under that name,
    whatever the local file is called.
    """
    artifact = Path(CHECKPOINT_ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / artifact.name
        shutil.copyfile(model, copy)
        run.log_artifact(copy, artifact_path=str(artifact.parent))


def _study(
    unet: UnetParams, params: Params, one_training: Callable[[UnetHyper, StageRun], tuple[Any, Any, float]]
) -> UnetHyper:
    """Optuna search of the learning rate and loss for the best validation F1 (nested MLflow runs)."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        hyper = UnetHyper(
            lr=trial.suggest_float("lr", *unet.optuna.lr, log=True),
            loss=trial.suggest_categorical("loss", list(unet.optuna.loss)),
        )
        with stage_run(
            "train_unet",
            params.tracking.uri,
            params.tracking.experiment,
            run_name=f"trial-{trial.number}",
            nested=True,
        ) as trial_run:
            trial_run.log_params({"lr": hyper.lr, "loss": hyper.loss})
            return one_training(hyper, trial_run)[2]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=params.seed))
    study.optimize(objective, n_trials=unet.optuna.n_trials)
    return UnetHyper(lr=study.best_params["lr"], loss=study.best_params["loss"])


def sample_figure(
    network: nn.Module, tiles: TileSet, threshold: float, device: torch.device, n: int = 4
) -> Any:
    """Input, label and predicted probability of the ``n`` validation tiles with the most labelled pixels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = np.argsort(-tiles.labels.reshape(len(tiles), -1).sum(axis=1), kind="stable")[:n]
    with torch.inference_mode():
        x = torch.from_numpy(tiles.inputs[chosen]).to(device)
        prob = torch.sigmoid(network(x)).cpu().numpy()[:, 0]
    fig, axes = plt.subplots(len(chosen), 3, figsize=(9, 3 * len(chosen)), squeeze=False)
    for row, index in enumerate(chosen):
        panels = (tiles.inputs[index, 0], tiles.labels[index], prob[row])
        for ax, image, title in zip(
            axes[row], panels, ("input", "label", f"probability (mask >= {threshold})"), strict=True
        ):
            ax.imshow(image, origin="lower", cmap="gray", vmin=0, vmax=1 if title != "input" else None)
            ax.set_title(title, fontsize=9)
            ax.set_axis_off()
    fig.tight_layout()
    plt.close(fig)
    return fig


def _write_products(
    outputs: TrainOutputs,
    model: UnetModel,
    history: list[EpochRecord],
    f1: float,
    hyper: UnetHyper,
    labels: Labels,
) -> None:
    """``models/unet.pt``, the metrics JSON and the per-epoch loss CSV, atomically."""
    with atomic_path(outputs.model) as tmp:
        torch.save(checkpoint_payload(model), tmp)
    best = min(history, key=lambda r: r.val_loss)
    metrics = {
        "labels": labels,
        "epochs": len(history),
        "best_epoch": best.epoch,
        "best_val_loss": best.val_loss,
        "val_label_f1": f1,
        "threshold": model.threshold,
        "lr": hyper.lr,
        "loss": hyper.loss,
        "parameters": count_parameters(model.network),
    }
    write_text_atomic(outputs.metrics, json.dumps(metrics, indent=2) + "\n")
    rows = [
        {"epoch": r.epoch, "train_loss": r.train_loss, "val_loss": r.val_loss, "lr": r.lr} for r in history
    ]
    write_table(outputs.loss_curve, rows, ("epoch", "train_loss", "val_loss", "lr"))
