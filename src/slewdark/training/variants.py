"""Which labels a UNet learns from, and where each variant is written.

The product learns the pseudo-masks of ``pseudomask.rule`` (``pseudo``; by
default the persistence clusters' patches); the evaluation's ceiling learns the
simulator's truth (``truth``); the ablation's variants learn the cluster-free
heuristic's masks (``heuristic``) or the pseudo-masks of the study's
neighbourhood rule, which adds the patches near a persistence cluster
(``neighbourhood``). Training
(:mod:`slewdark.stages.train_unet`) and evaluation (:mod:`slewdark.stages.evaluate`) find a
variant's files here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slewdark.config import Labels, Params, UnetParams

ABLATION_LABELS = ("heuristic", "neighbourhood")
"""Label sources of the ablation: masks in ``ablation.<labels>_masks``, models named after the product's."""


@dataclass(frozen=True)
class TrainOutputs:
    """Where a training writes: the model, its metrics JSON and its loss curve CSV."""

    model: Path
    metrics: Path
    loss_curve: Path


def outputs_for(unet: UnetParams, labels: Labels) -> TrainOutputs:
    """The output paths of a label source.

    ``pseudo`` and ``truth`` have their own keys in ``unet``; an ablation label
    source ``X`` writes beside the product with ``_X`` appended to its names:
    ``models/unet_X.pt``, ``metrics/unet_X.json``, ``plots/unet_X/loss.csv``.
    """
    if labels == "truth":
        return TrainOutputs(Path(unet.truth_model), Path(unet.truth_metrics), Path(unet.truth_loss_curve))
    product = TrainOutputs(Path(unet.model), Path(unet.metrics), Path(unet.loss_curve))
    if labels == "pseudo":
        return product
    curve = product.loss_curve
    return TrainOutputs(
        product.model.with_stem(f"{product.model.stem}_{labels}"),
        product.metrics.with_stem(f"{product.metrics.stem}_{labels}"),
        curve.parent.with_name(f"{curve.parent.name}_{labels}") / curve.name,
    )


def masks_for(params: Params, labels: Labels) -> Path:
    """The folder of ``<stem>.pseudo.fits`` a mask label source trains on."""
    if labels in ABLATION_LABELS:
        return Path(getattr(params.ablation, f"{labels}_masks"))
    return Path(params.unet.masks)
