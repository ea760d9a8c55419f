"""A small, readable training loop shared by the autoencoder and the UNet.

:func:`fit` trains a model with Adam-style optimizers, a reduce-LR-on-plateau
schedule and early stopping on the validation loss, keeps the best weights,
and writes a checkpoint after every epoch (model, optimizer, scheduler, AMP
scaler, early-stopping state, history, RNG states). Called again with the same
checkpoint path and fingerprint, it continues where a killed run stopped;
called on a finished checkpoint it returns at once. Batches are tuples of
tensors (first dimension = batch size); what a loss means is the caller's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slewdark.errors import SlewdarkError
from slewdark.io.atomic import atomic_path
from slewdark.models.precision import autocast_dtype

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, ...]
LossFn = Callable[[nn.Module, Batch], torch.Tensor]


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA) and ask for deterministic kernels where they exist."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass(frozen=True)
class FitConfig:
    """Schedule of one training.

    Attributes
    ----------
    epochs
        Maximum number of epochs.
    patience
        Early stopping: epochs without a lower validation loss before stopping.
    lr_patience, lr_factor, min_lr
        Reduce-LR-on-plateau: after ``lr_patience`` epochs without improvement
        multiply the learning rate by ``lr_factor``, not below ``min_lr``.
    amp
        Mixed precision where the hardware runs it natively
        (:func:`slewdark.models.precision.autocast_dtype`): float16 autocast with
        gradient scaling on CUDA, bfloat16 autocast on a CPU with native support
        (same exponent range as float32, no scaling); float32 elsewhere.
    """

    epochs: int
    patience: int
    lr_patience: int
    lr_factor: float
    min_lr: float
    amp: bool


@dataclass(frozen=True)
class EpochRecord:
    """Losses of one epoch (1-based) and the learning rate it used."""

    epoch: int
    train_loss: float
    val_loss: float
    lr: float


@dataclass
class FitResult:
    """Outcome of :func:`fit`: the history, and the best epoch and its weights."""

    history: list[EpochRecord]
    best_epoch: int
    best_val_loss: float
    best_state: dict[str, torch.Tensor] = field(repr=False)
    stopped_early: bool


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches: Callable[[int], Iterable[Batch]],
    val_batches: Callable[[], Iterable[Batch]],
    train_loss: LossFn,
    val_loss: LossFn,
    config: FitConfig,
    device: torch.device,
    checkpoint: str | Path | None = None,
    fingerprint: str = "",
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> FitResult:
    """Train ``model``, resuming from ``checkpoint`` when it matches ``fingerprint``.

    Parameters
    ----------
    model, optimizer
        Already on ``device``; the optimizer over ``model``'s parameters.
    train_batches
        ``epoch -> batches`` (epochs count from 1): shuffle with a generator
        seeded by the epoch so that a resumed run sees the same batches.
    val_batches
        ``() -> batches`` of the validation set.
    train_loss, val_loss
        ``(model, batch) -> scalar mean loss``; the validation loss drives the
        schedule, early stopping and the best checkpoint.
    config
        Epochs, patience and schedule.
    device
        Where batches are moved.
    checkpoint
        File written after every epoch; None disables saving and resuming.
    fingerprint
        Identity of everything that must match to resume (hyper-parameters,
        data); a checkpoint with another fingerprint is ignored and overwritten.
    on_epoch
        Called with every epoch record, restored ones first: log metrics, or
        raise (e.g. ``optuna.TrialPruned``) to stop.

    Returns
    -------
    FitResult
    """
    precision = autocast_dtype(device, config.amp)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == torch.float16)
    state = _restore(checkpoint, fingerprint, model, optimizer, scheduler, scaler)
    if state["best_state"] is None:
        state["best_state"] = _copy_state(model)
    for record in state["history"]:
        if on_epoch is not None:
            on_epoch(record)
    epoch = len(state["history"])
    while epoch < config.epochs and not state["stopped_early"]:
        epoch += 1
        model.train()
        batches = train_batches(epoch)
        train_value = _run_epoch(model, batches, train_loss, device, precision, optimizer, scaler)
        model.eval()
        with torch.no_grad():
            val_value = _run_epoch(model, val_batches(), val_loss, device, precision)
        record = EpochRecord(epoch, train_value, val_value, optimizer.param_groups[0]["lr"])
        scheduler.step(val_value)
        state["history"].append(record)
        if val_value < state["best_val_loss"]:
            state.update(
                best_val_loss=val_value, best_epoch=epoch, best_state=_copy_state(model), bad_epochs=0
            )
        else:
            state["bad_epochs"] += 1
            state["stopped_early"] = state["bad_epochs"] >= config.patience
        log.info("epoch %d: train %.6g, val %.6g, lr %.3g", epoch, train_value, val_value, record.lr)
        if checkpoint is not None:
            _save(checkpoint, fingerprint, state, model, optimizer, scheduler, scaler)
        if on_epoch is not None:
            on_epoch(record)
    return FitResult(
        state["history"],
        state["best_epoch"],
        state["best_val_loss"],
        state["best_state"],
        state["stopped_early"],
    )


def _run_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: LossFn,
    device: torch.device,
    precision: torch.dtype | None,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Mean loss over the batches (weighted by batch size); a step per batch when an optimizer is given."""
    total, count = 0.0, 0
    for batch in batches:
        batch = tuple(t.to(device, non_blocking=True) for t in batch)
        with torch.autocast(device.type, dtype=precision or torch.float32, enabled=precision is not None):
            loss = loss_fn(model, batch)
        if optimizer is not None and scaler is not None:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        n = len(batch[0])
        total += float(loss.detach()) * n
        count += n
    if count == 0:
        raise SlewdarkError("an epoch had no batch: the training or validation set is empty")
    return total / count


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}


def _fresh_state() -> dict[str, Any]:
    return {
        "history": [],
        "best_epoch": 0,
        "best_val_loss": float("inf"),
        "best_state": None,
        "bad_epochs": 0,
        "stopped_early": False,
    }


def _restore(
    checkpoint: str | Path | None,
    fingerprint: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    scaler: torch.amp.GradScaler,
) -> dict[str, Any]:
    """Load a matching checkpoint into the live objects; return the loop state (fresh if none)."""
    state = _fresh_state()
    if checkpoint is None or not Path(checkpoint).exists():
        return state
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if saved.get("fingerprint") != fingerprint:
        log.info("%s belongs to another configuration: starting afresh", checkpoint)
        return state
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["rng_cpu"])
    if torch.cuda.is_available() and saved.get("rng_cuda") is not None:
        torch.cuda.set_rng_state_all(saved["rng_cuda"])
    for key in state:
        state[key] = saved[key]
    state["history"] = [EpochRecord(**record) for record in saved["history"]]
    log.info("resumed %s after epoch %d", checkpoint, len(state["history"]))
    return state


def _save(
    checkpoint: str | Path,
    fingerprint: str,
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    scaler: torch.amp.GradScaler,
) -> None:
    """Write everything needed to continue, atomically."""
    payload = dict(state)
    payload["history"] = [asdict(record) for record in state["history"]]
    payload.update(
        fingerprint=fingerprint,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict(),
        rng_cpu=torch.get_rng_state(),
        rng_cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    )
    with atomic_path(checkpoint) as tmp:
        torch.save(payload, tmp)


def load_best_state(checkpoint: str | Path, fingerprint: str) -> dict[str, torch.Tensor] | None:
    """The best weights of a finished or partial checkpoint with this fingerprint, else None."""
    if not Path(checkpoint).exists():
        return None
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return saved["best_state"] if saved.get("fingerprint") == fingerprint else None
