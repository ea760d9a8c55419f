"""The ``train_ae`` stage: train the autoencoder, tuned by an Optuna study, tracked in MLflow.

One training (:func:`train_autoencoder`) streams seeded subsamples of the train
and validation splits from the patch memmaps, minimises the configured loss
over usable pixels with Adam, and is driven by the validation **MSE** (the
same measure for every trial, whatever loss it trains with): reduce-LR-on-
plateau, early stopping, best weights. Its checkpoint, named by a fingerprint
of data and hyper-parameters, is written every epoch, so a killed run continues
where it stopped.

The study (:func:`run_train_ae`) is one MLflow parent run; each Optuna trial is
a nested run with its hyper-parameters and per-epoch losses. The TPE sampler is
seeded, a median pruner stops poor trials, and the study lives in SQLite, so an
interrupted study resumes: a trial killed mid-way is re-queued with the same
hyper-parameters and resumes from its checkpoint. ``n_trials: 0`` trains once
with the ``ae`` values. The best model goes to ``models/ae.pt`` and is logged as
an MLflow model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slewdark.config import AeParams, OptunaParams, TrackingParams
from slewdark.errors import SlewdarkError
from slewdark.io.atomic import atomic_path, write_text_atomic
from slewdark.io.tables import read_index, write_table
from slewdark.models.ae import Autoencoder, build_autoencoder, count_parameters
from slewdark.models.device import resolve_device
from slewdark.ops.provenance import code_fingerprint
from slewdark.ops.tracking import StageRun, stage_run
from slewdark.training.fit import EpochRecord, FitConfig, FitResult, fit, seed_everything
from slewdark.training.patch_data import (
    PatchDataset,
    data_fingerprint,
    iter_batches,
    reconstruction_error,
    select_patches,
)

log = logging.getLogger(__name__)

STAGE = "train_ae"
VALIDATION_LOSS = "mse"


@dataclass(frozen=True)
class AeHyper:
    """The hyper-parameters one training uses (those Optuna may change)."""

    arch: str
    widths: tuple[int, ...]
    latent_dim: int
    loss: str
    lr: float
    batch_size: int

    def arch_kwargs(self, patch_size: int) -> dict[str, Any]:
        """Keyword arguments of :func:`build_autoencoder` (saved in ``models/ae.pt``)."""
        return {
            "arch": self.arch,
            "patch_size": patch_size,
            "widths": list(self.widths),
            "latent_dim": self.latent_dim,
        }


@dataclass(frozen=True)
class TrainData:
    """Which patches train, validate and test a model."""

    patch_dir: Path
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    patch_size: int
    fingerprint: str


def load_train_data(patch_dir: str | Path, max_train: int, max_val: int, seed: int) -> TrainData:
    """Seeded subsamples of the train, val and test splits of a patches folder.

    Raises
    ------
    SlewdarkError
        When the train or val split has no usable patch.
    """
    patch_dir = Path(patch_dir)
    index = read_index(patch_dir)
    train = select_patches(index, "train", max_train, seed)
    val = select_patches(index, "val", max_val, seed + 1)
    test = select_patches(index, "test", max_val, seed + 2)
    if len(train) == 0 or len(val) == 0:
        raise SlewdarkError(
            f"{patch_dir}: the train or val split is empty ({len(train)}, {len(val)} patches)"
        )
    size = PatchDataset(patch_dir, train[:1]).patch_size
    return TrainData(patch_dir, train, val, test, size, data_fingerprint(patch_dir))


def fit_config(ae: AeParams) -> FitConfig:
    """The training schedule from the ``ae`` params."""
    return FitConfig(ae.epochs, ae.patience, ae.lr_patience, ae.lr_factor, ae.min_lr, ae.amp)


def base_hyper(ae: AeParams) -> AeHyper:
    """The hyper-parameters as written in ``params.yaml``."""
    return AeHyper(ae.arch, tuple(ae.widths), ae.latent_dim, ae.loss, ae.lr, ae.batch_size)


def training_fingerprint(data: TrainData, hyper: AeHyper, config: FitConfig, seed: int) -> str:
    """Identity of a training for resuming: code, data, subsamples, hyper-parameters, schedule but epochs."""
    schedule = asdict(config)
    schedule.pop("epochs")
    identity = {
        "code": code_fingerprint(__name__),
        "data": data.fingerprint,
        "hyper": asdict(hyper),
        "schedule": schedule,
        "seed": seed,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
    for indices in (data.train, data.val):
        digest.update(indices.tobytes())
    return digest.hexdigest()


def train_autoencoder(
    data: TrainData,
    hyper: AeHyper,
    config: FitConfig,
    device: torch.device,
    seed: int,
    checkpoint_dir: str | Path | None,
    on_epoch: Any = None,
) -> tuple[Autoencoder, FitResult]:
    """Train one autoencoder (resuming from its checkpoint) and return it with its best weights.

    Parameters
    ----------
    data
        Patches of the train and val splits.
    hyper
        Architecture, loss, learning rate, batch size.
    config
        Epochs, patience and schedule.
    device
        Where to train.
    seed
        Seeds the weights and the per-epoch shuffling.
    checkpoint_dir
        Folder of resumable checkpoints (``ae-<fingerprint>.pt``); None: no checkpoint.
    on_epoch
        Callback per epoch record (see :func:`slewdark.training.fit.fit`).

    Returns
    -------
    model : Autoencoder
        With the best validation weights, in evaluation mode.
    result : FitResult
    """
    fingerprint = training_fingerprint(data, hyper, config, seed)
    checkpoint = None if checkpoint_dir is None else Path(checkpoint_dir) / f"ae-{fingerprint[:16]}.pt"
    seed_everything(seed)
    model = build_autoencoder(**hyper.arch_kwargs(data.patch_size)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hyper.lr)
    train_set = PatchDataset(data.patch_dir, data.train)
    val_set = PatchDataset(data.patch_dir, data.val)

    def train_loss(net: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, usable = batch
        return reconstruction_error(net(x), x, usable, hyper.loss).mean()

    def val_loss(net: torch.nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x, usable = batch
        return reconstruction_error(net(x), x, usable, VALIDATION_LOSS).mean()

    result = fit(
        model,
        optimizer,
        lambda epoch: iter_batches(train_set, hyper.batch_size, shuffle_seed=seed * 1000 + epoch),
        lambda: iter_batches(val_set, max(hyper.batch_size, 256)),
        train_loss,
        val_loss,
        config,
        device,
        checkpoint=checkpoint,
        fingerprint=fingerprint,
        on_epoch=on_epoch,
    )
    model.load_state_dict(result.best_state)
    return model.eval(), result


def evaluate_loss(
    model: Autoencoder, patch_dir: str | Path, indices: np.ndarray, device: torch.device
) -> float:
    """Mean per-patch validation loss (masked MSE) of ``model`` over the given patches."""
    dataset = PatchDataset(patch_dir, indices)
    total = 0.0
    with torch.no_grad():
        for x, usable in iter_batches(dataset, 256):
            x, usable = x.to(device), usable.to(device)
            total += float(reconstruction_error(model(x), x, usable, VALIDATION_LOSS).sum())
    return total / max(len(dataset), 1)


def suggest_hyper(trial: Any, base: AeHyper, search: OptunaParams) -> AeHyper:
    """Draw one trial's hyper-parameters from the search space (one-element lists stay fixed)."""
    space = search.search
    widths = trial.suggest_categorical("widths", [",".join(map(str, w)) for w in space.widths])
    latent_dim = base.latent_dim
    if base.arch == "compact":
        latent_dim = trial.suggest_categorical("latent_dim", list(space.latent_dim))
    return AeHyper(
        arch=base.arch,
        widths=tuple(int(w) for w in widths.split(",")),
        latent_dim=latent_dim,
        loss=trial.suggest_categorical("loss", list(space.loss)),
        lr=trial.suggest_float("lr", space.lr[0], space.lr[1], log=True),
        batch_size=trial.suggest_categorical("batch_size", list(space.batch_size)),
    )


def hyper_from_params(params: dict[str, Any], base: AeHyper) -> AeHyper:
    """Rebuild a trial's hyper-parameters from its Optuna params."""
    return AeHyper(
        arch=base.arch,
        widths=tuple(int(w) for w in str(params["widths"]).split(",")),
        latent_dim=int(params.get("latent_dim", base.latent_dim)),
        loss=str(params["loss"]),
        lr=float(params["lr"]),
        batch_size=int(params["batch_size"]),
    )


class _Trainer:
    """Everything one stage run shares between its trainings."""

    def __init__(
        self, data: TrainData, ae: AeParams, seed: int, device: torch.device, tracking: TrackingParams
    ) -> None:
        self.data, self.ae, self.seed, self.device, self.tracking = data, ae, seed, device, tracking
        self.config = fit_config(ae)

    def train(self, hyper: AeHyper, on_epoch: Any = None) -> tuple[Autoencoder, FitResult]:
        return train_autoencoder(
            self.data, hyper, self.config, self.device, self.seed, self.ae.checkpoint_dir, on_epoch
        )

    def logging_epochs(self, run: StageRun, trial: Any = None) -> Any:
        """Per-epoch callback: log the losses to ``run`` and report to an Optuna trial (may prune)."""

        def on_epoch(record: EpochRecord) -> None:
            run.log_metrics(
                {"train_loss": record.train_loss, "val_loss": record.val_loss, "lr": record.lr},
                step=record.epoch,
            )
            if trial is not None:
                import optuna

                trial.report(record.val_loss, record.epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {record.epoch}")

        return on_epoch

    def objective(self, base: AeHyper, study_params: OptunaParams) -> Any:
        """Optuna objective: one nested MLflow run per trial; returns the best validation MSE."""
        import optuna

        def objective(trial: optuna.Trial) -> float:
            hyper = suggest_hyper(trial, base, study_params)
            with stage_run(
                STAGE,
                self.tracking.uri,
                self.tracking.experiment,
                params={"trial": trial.number, **asdict(hyper)},
                run_name=f"trial-{trial.number}",
                nested=True,
            ) as run:
                trial.set_user_attr("mlflow_run_id", run.run_id)
                try:
                    _, result = self.train(hyper, self.logging_epochs(run, trial))
                except optuna.TrialPruned:
                    run.set_tags({"optuna.state": "PRUNED"})
                    raise
                run.set_tags({"optuna.state": "COMPLETE"})
                run.log_metrics({"best_val_loss": result.best_val_loss, "best_epoch": result.best_epoch})
            return result.best_val_loss

        return objective

    def study(self, base: AeHyper, study_params: OptunaParams) -> tuple[AeHyper, dict[str, Any]]:
        """Run (or resume) the Optuna study; return the best hyper-parameters and a summary."""
        import optuna

        name = f"{study_params.study}-{self._study_fingerprint(base, study_params)[:12]}"
        study = optuna.create_study(
            study_name=name,
            storage=study_params.storage,
            sampler=optuna.samplers.TPESampler(seed=self.seed),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=study_params.pruner_startup_trials,
                n_warmup_steps=study_params.pruner_warmup_epochs,
            ),
            direction="minimize",
            load_if_exists=True,
        )
        _requeue_interrupted(study)
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        remaining = study_params.n_trials - len(study.get_trials(deepcopy=False, states=finished))
        log.info("Optuna study %s: %d trial(s) to run", name, max(remaining, 0))
        if remaining > 0:
            study.optimize(self.objective(base, study_params), n_trials=remaining)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not complete:
            raise SlewdarkError(f"Optuna study {name}: no trial completed")
        best = study.best_trial
        summary = {
            "study": name,
            "best_trial": best.number,
            "n_trials_complete": len(complete),
            "n_trials_pruned": len(
                study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
            ),
        }
        return hyper_from_params(best.params, base), summary

    def _study_fingerprint(self, base: AeHyper, study_params: OptunaParams) -> str:
        fixed = {
            "code": code_fingerprint(__name__),
            "data": self.data.fingerprint,
            "arch": base.arch,
            "schedule": asdict(self.config),
            "seed": self.seed,
            "n_train": len(self.data.train),
            "n_val": len(self.data.val),
            "search": study_params.search.model_dump(),
            "pruner": [study_params.pruner_startup_trials, study_params.pruner_warmup_epochs],
        }
        if base.arch == "seed":
            fixed["latent_dim"] = base.latent_dim
        return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()


def _requeue_interrupted(study: Any) -> None:
    """Mark trials left running by a killed process as failed and queue their hyper-parameters again."""
    import optuna

    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        log.info("trial %d was interrupted: re-queued, it resumes from its checkpoint", trial.number)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params)


def run_train_ae(
    patch_dir: str | Path,
    ae: AeParams,
    study_params: OptunaParams,
    seed: int,
    device_name: str,
    tracking: TrackingParams,
) -> dict[str, Any]:
    """Run the ``train_ae`` stage.

    Writes ``ae.model`` (``models/ae.pt``), ``ae.metrics`` (``metrics/ae.json``)
    and ``ae.loss_curve`` (``plots/ae/loss.csv``: epoch, train_loss, val_loss
    of the final model), and logs the study to MLflow.

    Parameters
    ----------
    patch_dir
        The ``patches`` stage's folder.
    ae, study_params
        The ``ae`` and ``optuna`` params sections.
    seed
        Global seed.
    device_name
        ``auto``, ``cpu`` or ``cuda``.
    tracking
        MLflow settings.

    Returns
    -------
    dict
        The metrics written to ``ae.metrics``.
    """
    device = resolve_device(device_name)
    data = load_train_data(patch_dir, ae.max_train_patches, ae.max_val_patches, seed)
    trainer = _Trainer(data, ae, seed, device, tracking)
    base = base_hyper(ae)
    log.info(
        "training on %s: %d train, %d val, %d test patches of %d px",
        device, len(data.train), len(data.val), len(data.test), data.patch_size,
    )  # fmt: skip
    run_params = {
        "ae": ae.model_dump(),
        "optuna": study_params.model_dump(),
        "seed": seed,
        "device": str(device),
    }
    with stage_run(STAGE, tracking.uri, tracking.experiment, params=run_params) as run:
        if study_params.n_trials == 0:
            hyper, summary = base, {"n_trials_complete": 0}
            model, result = trainer.train(hyper, trainer.logging_epochs(run))
        else:
            hyper, summary = trainer.study(base, study_params)
            model, result = trainer.train(hyper)
            for record in result.history:
                trainer.logging_epochs(run)(record)
        metrics = _final_metrics(model, data, hyper, result, summary, device)
        run.log_params({"best": asdict(hyper)})
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        _write_products(model.cpu(), hyper, data, result, metrics, ae, run.run_id)
        run.log_artifact(ae.metrics)
        run.log_artifact(ae.loss_curve)
        example = np.zeros(
            (2, 1, data.patch_size, data.patch_size), dtype=np.float32
        )  # 2: batch dim stays dynamic
        run.log_torch_model(model, "ae", input_example=example)
    return metrics


def _final_metrics(
    model: Autoencoder,
    data: TrainData,
    hyper: AeHyper,
    result: FitResult,
    summary: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    test_loss = evaluate_loss(model, data.patch_dir, data.test, device) if len(data.test) else None
    latent_dim = int(
        model.encode(torch.zeros(1, 1, data.patch_size, data.patch_size, device=device)).shape[1]
    )
    return {
        "best_val_loss": result.best_val_loss,
        "test_loss": test_loss,
        "best_epoch": result.best_epoch,
        "epochs_trained": len(result.history),
        "stopped_early": result.stopped_early,
        "parameters": count_parameters(model),
        "latent_dim": latent_dim,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "n_test": len(data.test),
        **{
            f"hp_{k}": (",".join(map(str, v)) if isinstance(v, tuple) else v)
            for k, v in asdict(hyper).items()
        },
        **summary,
    }


def _write_products(
    model: Autoencoder,
    hyper: AeHyper,
    data: TrainData,
    result: FitResult,
    metrics: dict[str, Any],
    ae: AeParams,
    run_id: str,
) -> None:
    checkpoint = {
        "state_dict": model.state_dict(),
        "arch": hyper.arch_kwargs(data.patch_size),
        "patch_size": data.patch_size,
        "mlflow_run_id": run_id,
        "loss": hyper.loss,
        "validation_loss": VALIDATION_LOSS,
    }
    with atomic_path(ae.model) as tmp:
        torch.save(checkpoint, tmp)
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
    write_text_atomic(ae.metrics, json.dumps(clean, indent=2) + "\n")
    rows = [{"epoch": r.epoch, "train_loss": r.train_loss, "val_loss": r.val_loss} for r in result.history]
    write_table(ae.loss_curve, rows, ("epoch", "train_loss", "val_loss"))
