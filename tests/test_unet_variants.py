"""Each label source of the UNet trains from its own masks into its own files."""

from __future__ import annotations

from pathlib import Path

from slewdark.config import load_params
from slewdark.training.variants import masks_for, outputs_for

REPO = Path(__file__).resolve().parents[1]


def test_every_variant_has_its_own_masks_and_outputs() -> None:
    params = load_params(REPO / "params.yaml")
    unet = params.unet
    product = outputs_for(unet, "pseudo")
    assert product.model == Path(unet.model) and product.metrics == Path(unet.metrics)
    assert outputs_for(unet, "truth").model == Path(unet.truth_model)
    heuristic = outputs_for(unet, "heuristic")
    assert heuristic.model == Path("models/unet_heuristic.pt")
    assert heuristic.metrics == Path("metrics/unet_heuristic.json")
    assert heuristic.loss_curve == Path("plots/unet_heuristic/loss.csv")
    every = [outputs_for(unet, labels) for labels in ("pseudo", "truth", "heuristic", "neighbourhood")]
    paths = [path for out in every for path in (out.model, out.metrics, out.loss_curve)]
    assert len(set(paths)) == len(paths)  # no two variants write the same file
    assert masks_for(params, "pseudo") == Path(unet.masks)
    assert masks_for(params, "heuristic") == Path(params.ablation.heuristic_masks)
    assert masks_for(params, "neighbourhood") == Path(params.ablation.neighbourhood_masks)
