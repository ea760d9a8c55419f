"""Pseudo-masks: patch labels, reassembly, the written product, and its quality against truth."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from astropy.io import fits
from scipy import ndimage

from slewdark.config import Params
from slewdark.core.patch_grid import cut_patches
from slewdark.errors import SlewdarkError
from slewdark.io.pseudomasks import pseudo_mask_path, read_pseudo_mask
from slewdark.stages.label import run_label
from slewdark.stages.pseudomask import patch_labels, patch_products, reassemble, run_pseudomask
from slewdark.stages.pseudomask_quality import label_quality, run_quality
from test_label import N_PER_CLUSTER, PERSISTENT_ROWS, SIZE, make_world


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Params:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return make_world(tmp_path)


def test_reassembly_round_trip_on_a_full_grid() -> None:
    rng = np.random.default_rng(0)
    size = 68
    grid = np.arange(0, 2040, size)
    rows, cols = (g.ravel() for g in np.meshgrid(grid, grid, indexing="ij"))
    detector = rng.random((2040, 2040)) > 0.7
    weights_in = rng.random((2040, 2040)).astype(np.float32)
    masks = cut_patches(detector, rows, cols, size)
    weights = cut_patches(weights_in, rows, cols, size)
    mask, weight = reassemble(masks, weights, rows, cols, (2040, 2040))
    assert mask.dtype == np.uint8 and weight.dtype == np.float32
    assert np.array_equal(mask.astype(bool), detector) and np.array_equal(weight, weights_in)
    assert np.array_equal(cut_patches(mask, rows, cols, size).astype(bool), masks)


def test_overlaps_take_max_mask_and_mean_weight_uncovered_is_zero() -> None:
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :, :] = True
    weights = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 0.5)]).astype(np.float32)
    mask, weight = reassemble(masks, weights, np.array([0, 0]), np.array([0, 2]), (4, 8))
    assert mask[:, :4].all() and not mask[:, 4:].any()
    assert weight[0, 0] == 1.0 and weight[0, 2] == pytest.approx(0.75) and weight[0, 5] == 0.5
    assert weight[0, 6] == 0.0  # no patch covers columns 6-7


def test_patch_labels_follow_decisions_and_probability() -> None:
    decisions = [
        {"cluster": 5, "persistence": True, "confident": True},
        {"cluster": 2, "persistence": True, "confident": False},
        {"cluster": 9, "persistence": False, "confident": True},
    ]
    clusters = np.array([5, 5, 2, 9, 11])
    probability = np.array([0.9, 0.1, 0.9, 0.9, 0.9])
    persistence, confident = patch_labels(clusters, probability, decisions, min_probability=0.5)
    assert persistence.tolist() == [True, True, True, False, False]
    assert confident.tolist() == [True, False, False, True, False]
    assert not patch_labels(clusters, probability, [], 0.5)[0].any()


def test_pseudomask_product_and_quality(world: Params) -> None:
    run_label(world)
    stats = run_pseudomask(world)
    assert stats["exposures"] == 1 and stats["persistence_patches"] == N_PER_CLUSTER
    path = pseudo_mask_path(world.pseudomask.out, "e0")
    with fits.open(path) as hdul:
        assert [h.name for h in hdul[1:]] == ["DET11.MASK", "DET11.WEIGHT"]
        mask = hdul["DET11.MASK"].data
        weight = hdul["DET11.WEIGHT"].data
        assert hdul[0].header["OBS_ID"] == "e0" and len(hdul[0].header["PARAMSHA"]) == 64
    assert mask.shape == weight.shape == (2040, 2040)
    assert mask.dtype == np.uint8 and weight.dtype.kind == "f" and weight.dtype.itemsize == 4
    stripe = np.zeros((2040, 2040), bool)
    for c in range(N_PER_CLUSTER):
        stripe[PERSISTENT_ROWS, c * SIZE + 4 : c * SIZE + 64] = True
    grown = ndimage.binary_dilation(stripe, np.ones((3, 3), bool))  # the smoothing blurs edges by a pixel
    assert mask[stripe].mean() > 0.9 and mask[~grown].sum() == 0
    assert weight[stripe].min() == 1.0  # confident persistence cluster
    assert weight[:, 12 * SIZE :].max() == 0.0  # no patch there
    assert set(np.unique(weight[:SIZE, : 12 * SIZE])) <= {1.0, world.pseudomask.weight.uncertain}

    metrics = run_quality(world)
    assert metrics["pixels"]["f1"] > 0.8 and metrics["pixels"]["recall_by_amplitude"]["10-20e"] == 0.0
    assert metrics["pixels"]["recall_by_amplitude"]["20-50e"] > 0.9
    written = json.loads(Path(world.pseudomask.quality.metrics).read_text())
    assert written["pixels"]["iou"] == pytest.approx(metrics["pixels"]["iou"])
    labels = json.loads(Path(world.pseudomask.quality.metrics_label).read_text())
    assert labels["clusters"]["precision"] == labels["clusters"]["recall"] == 1.0
    assert len(list(Path(world.pseudomask.quality.plots).glob("*.png"))) == 1

    # the clusters against truth, scored here rather than by the cluster stage: two pure clusters
    clusters = json.loads(Path(world.pseudomask.quality.metrics_cluster).read_text())
    assert clusters["clustering"]["purity"] == 1.0 and clusters["clustering"]["ari"] == 1.0
    assert clusters["recon_loss_median"] == {"persistence": 2.0, "clean": 1.0}
    assert metrics["clusters"] == clusters
    purity = (Path(world.pseudomask.quality.plots) / "purity.csv").read_text().splitlines()
    assert purity[0] == "cluster,size,persistence,cosmic_ray,hot_pixel,clean,majority,purity"
    assert purity[1:] == [
        f"0,{N_PER_CLUSTER},1.0,0.0,0.0,0.0,persistence,1.0",
        f"1,{N_PER_CLUSTER},0.0,0.0,0.0,1.0,clean,1.0",
    ]
    runs = mlflow.search_runs(experiment_names=[world.tracking.experiment], output_format="list")
    (run,) = [r for r in runs if r.data.tags["dvc.stage"] == "pseudomask_quality"]
    assert run.data.metrics["cluster_truth.clustering.ari"] == 1.0
    assert run.data.metrics["cluster_truth.recon_loss_median.persistence"] == 2.0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"cluster_truth.json", "purity.csv"} <= artifacts


def test_quality_needs_the_reconstruction_losses_of_every_patch(world: Params) -> None:
    run_label(world)
    run_pseudomask(world)
    np.save(Path(world.embed.out) / "recon_loss.npy", np.ones(3))
    with pytest.raises(SlewdarkError, match="does not match"):
        run_quality(world)


def test_label_quality_counts_clusters_and_patches() -> None:
    clusters = np.array([0, 0, 1, 1, 2, 2])
    truth = np.array(["persistence", "persistence", "persistence", "clean", "clean", "clean"])
    decisions = [{"cluster": c, "persistence": c in (0, 2)} for c in (0, 1, 2)]
    result = label_quality(clusters, decisions, truth, truth_fraction=0.5)
    # truly persistent: clusters 0 and 1 (half of 1's patches); labelled: 0 and 2
    assert result["clusters"]["precision"] == 0.5 and result["clusters"]["recall"] == 0.5
    assert result["patches"]["precision"] == 0.5 and result["patches"]["recall"] == pytest.approx(2 / 3)


def test_patch_weights_follow_the_confidence_rules(world: Params) -> None:
    weight_cfg = world.pseudomask.weight.model_copy(update={"uncertain": 0.25, "outside": 0.1})
    patches = np.full((3, 8, 8), 0.3, np.float32)
    usable = np.ones((3, 8, 8), bool)
    usable[:, 0, 0] = False
    bright = np.zeros((3, 8, 8), bool)
    bright[:, :4] = True  # the previous exposure was bright in the top half only
    persistence = np.array([True, True, False])
    confident = np.array([True, False, False])
    _, weights = patch_products(
        patches, usable, bright, persistence, confident, world.pseudomask.segment, weight_cfg
    )
    assert (weights[:, 4:] == 1.0).all()  # not bright: label 0 is certain in every patch
    assert (weights[0, 1:4] == 1.0).all()  # confident persistence cluster
    assert (weights[1, 1:4] == 0.25).all()  # persistence cluster, not confident
    assert (weights[2, 1:4] == 0.1).all()  # outside persistence clusters, where persistence is possible
    assert (weights[:, 0, 0] == 0.0).all()  # unusable
    _, unknown = patch_products(
        patches, usable, None, persistence, confident, world.pseudomask.segment, weight_cfg
    )
    assert unknown[2, 1, 1] == 0.1 and unknown[0, 1, 1] == 1.0


def test_law_pixels_join_the_labels_of_persistence_patches_only(world: Params) -> None:
    weight_cfg = world.pseudomask.weight.model_copy(update={"uncertain": 0.25, "outside": 0.1})
    patches = np.full((3, 8, 8), 0.3, np.float32)  # flat: the segmentation finds nothing
    usable = np.ones((3, 8, 8), bool)
    usable[:, 6, 6] = False
    bright = np.zeros((3, 8, 8), bool)
    bright[:, :4] = True
    law = np.zeros((3, 8, 8), bool)
    law[:, 2:7, 6] = True  # the scaled law reaches the noise here, inside and outside the bright map
    persistence, confident = np.array([True, True, False]), np.array([True, False, False])
    args = (patches, usable, bright, persistence, confident, world.pseudomask.segment, weight_cfg)
    plain_masks, plain_weights = patch_products(*args)
    masks, weights = patch_products(*args, law=law)
    assert not plain_masks.any() and (plain_weights[:, 5, 6] == 1.0).all()
    assert masks[0].sum() == masks[1].sum() == 4 and masks[0, 2:6, 6].all() and not masks[0, 6, 6]
    assert not masks[2].any(), "a patch outside the persistence clusters gets no law label"
    assert weights[0, 5, 6] == 1.0 and weights[1, 5, 6] == 0.25, "the patch's confidence, not certainty"
    assert weights[2, 5, 6] == 0.1, "outside: where the law expects persistence, label 0 is not certain"
    assert (weights[:, 5, 0] == 1.0).all() and (weights[:, 6, 6] == 0.0).all()
    masks, weights = patch_products(*args, law=law, law_everywhere=True)
    assert masks[2].sum() == 4 and weights[2, 5, 6] == 1.0 and weights[1, 5, 6] == 1.0, "every patch, certain"
    masks, weights = patch_products(*args, law=law, law_everywhere=True, law_only=True)
    assert (masks == (law & usable)).all(), "the law alone: no segmentation, every patch"
    assert (weights[usable] == 1.0).all() and (weights[~usable] == 0.0).all(), "its zeros are certain too"


def test_read_pseudo_mask_names_the_file_and_the_missing_layer(tmp_path: Path) -> None:
    from slewdark.errors import ContractError

    path = tmp_path / "e0.pseudo.fits"
    with pytest.raises(ContractError, match=r"e0\.pseudo\.fits: no pseudo-mask"):
        read_pseudo_mask(path, "11")
    mask = np.zeros((4, 4), np.uint8)
    mask[1, 2] = 1
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(mask, name="DET11.MASK")]).writeto(path)
    with pytest.raises(ContractError, match=r"no DET11\.WEIGHT extension"):
        read_pseudo_mask(path, "11")
    path.write_bytes(b"not a FITS file")
    with pytest.raises(ContractError, match=r"e0\.pseudo\.fits"):
        read_pseudo_mask(path, "11")


def test_pseudomask_command_names_where_the_law_labels(capsys: pytest.CaptureFixture[str]) -> None:
    from slewdark.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["pseudomask", "--rule", "neighbourhood", "--law", "clusters"])
    assert (args.rule, args.law) == ("neighbourhood", "clusters")
    assert parser.parse_args(["pseudomask"]).law is None, "unset: params.yaml's pseudomask.law"
    with pytest.raises(SystemExit):
        parser.parse_args(["pseudomask", "--law", "sometimes"])
    assert "invalid choice: 'sometimes'" in capsys.readouterr().err
