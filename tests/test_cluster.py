"""The ``cluster`` stage end to end on a tiny synthetic products folder, real UMAP/GMM/MLflow/torch."""

import csv
import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from astropy.io import fits
from sklearn.datasets import make_blobs

from slewdark.cli import main
from slewdark.config import Params, load_params
from slewdark.evaluation.diagnostics import clustering_scores
from slewdark.evaluation.truth import read_truth_classes
from slewdark.io.tables import INDEX_COLUMNS, write_table
from slewdark.latent.fitting import fit_groups
from slewdark.models.ae import build_autoencoder
from slewdark.stages.cluster import classify_patches, run_cluster

REPO = Path(__file__).resolve().parents[1]
SIZE = 8  # patch side in pixels
GRID = 6  # patches per detector side
CLASSES = ("clean", "persistence", "cosmic_ray")


def write_products(root: Path) -> int:
    """Two exposures of one detector, 6 x 6 patches each, latents in three blobs by true class."""
    records, truth = [], []
    for e, (exposure, split) in enumerate((("exp0", "train"), ("exp1", "test"))):
        for i in range(GRID):
            for j in range(GRID):
                patch = len(records)
                records.append(
                    {
                        "patch": patch,
                        "exposure": exposure,
                        "file": f"data/raw/{exposure}.fits",
                        "detector": "11",
                        "channel": i // 3,
                        "row": i * SIZE,
                        "col": j * SIZE,
                        "split": split,
                        "usable_fraction": 1.0,
                    }
                )
                truth.append(CLASSES[(i + j + e) % 3])
    n = len(records)
    write_table(root / "patches" / "index.csv", records, INDEX_COLUMNS)
    (root / "data" / "raw").mkdir(parents=True)
    for exposure, gwa in (("exp0", "RGS000"), ("exp1", "H")):  # headers only: the maps per previous kind
        header = fits.Header({"OBS_ID": exposure, "PREVGWA": gwa, "PREVTILT": 4.0})
        fits.HDUList(
            [
                fits.PrimaryHDU(header=header),
                fits.ImageHDU(np.zeros((2040, 2040), np.float32), name="DET11.SCI"),
            ]
        ).writeto(root / "data" / "raw" / f"{exposure}.fits")
    rng = np.random.default_rng(0)
    patches = rng.uniform(0, 0.2, size=(n, SIZE, SIZE)).astype(np.float32)
    labels = np.array([CLASSES.index(t) for t in truth])
    patches[labels == 1, 2:5, :] = 0.98
    np.save(root / "patches" / "patches.npy", patches)
    np.save(root / "patches" / "usable.npy", np.ones_like(patches, dtype=bool))
    centres = np.eye(3, 6) * 8.0
    latents = np.empty((n, 6), dtype=np.float32)
    for k in range(3):
        rows = np.flatnonzero(labels == k)
        latents[rows] = make_blobs(len(rows), centers=centres[k : k + 1], cluster_std=0.5, random_state=k)[0]
    (root / "latents").mkdir()
    np.save(root / "latents" / "latents.npy", latents)
    write_table(
        root / "truth" / "patch_truth.csv",
        [
            {"patch": p, "truth": t, "persistence_pixels": 0, "persistence_max": 0.0}
            for p, t in enumerate(truth)
        ],
        ["patch", "truth", "persistence_pixels", "persistence_max"],
    )
    arch = {"arch": "seed", "patch_size": SIZE, "widths": [2, 2, 3], "latent_dim": 6}
    torch.manual_seed(0)
    model = build_autoencoder(**arch)
    (root / "models").mkdir()
    torch.save(
        {"state_dict": model.state_dict(), "arch": arch, "patch_size": SIZE, "mlflow_run_id": ""},
        root / "models" / "ae.pt",
    )
    return n


def tiny_params(root: Path, mode: str) -> tuple[Params, dict[str, object]]:
    overrides: dict[str, object] = {
        "patches.out": str(root / "patches"),
        "embed.out": str(root / "latents"),
        "ae.model": str(root / "models" / "ae.pt"),
        "cluster.out": str(root / "clusters"),
        "cluster.metrics": str(root / "metrics" / "cluster.json"),
        "cluster.plots.out": str(root / "plots"),
        "cluster.mode": mode,
        "cluster.n_components.max": 5,
        "cluster.diversity_max_patches": 30,
        "cluster.plots.saliency_samples": 3,
        "cluster.plots.gallery_samples": 3,
        "umap.n_neighbors": 8,
        "umap.transform_chunk": 7,
    }
    return load_params(REPO / "params.yaml", overrides), overrides


@pytest.fixture
def products(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path, write_products(tmp_path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_channelwise_stage_writes_products_metrics_plots_and_mlflow_run(products: tuple[Path, int]) -> None:
    root, n = products
    params, _ = tiny_params(root, "channelwise")
    metrics = run_cluster(params)

    rows = read_csv(root / "clusters" / "assignments.csv")
    assert [int(r["patch"]) for r in rows] == list(range(n))
    assert {r["group"] for r in rows} == {"0", "1"}
    clusters = json.loads((root / "clusters" / "clusters.json").read_text())
    by_group = {g: {int(r["cluster"]) for r in rows if r["group"] == g} for g in ("0", "1")}
    assert not by_group["0"] & by_group["1"], "cluster ids must be unique over groups"
    assert {int(c) for c in clusters} == set(range(len(clusters)))
    assert sum(c["size"] for c in clusters.values()) == n
    assert all(clusters[r["cluster"]]["group"] == r["group"] for r in rows)
    assert all(0 < float(r["probability"]) <= 1 and float(r["distance"]) >= 0 for r in rows)
    assert sorted(p.name for p in (root / "clusters" / "models").iterdir()) == ["0.joblib", "1.joblib"]

    written = json.loads((root / "metrics" / "cluster.json").read_text())
    assert written["n_clusters"] == len(clusters) == metrics["n_clusters"]
    assert set(written["groups"]) == {"0", "1"}
    assert written["groups"]["0"]["n_fit"] == n // 4  # the train exposure's half of channel 0
    assert "truth" not in written  # the cluster stage never reads truth
    # three well-separated latent blobs, one per class: every cluster is pure; with 18 vectors per
    # group the BIC may split a blob in two, which keeps the purity and roughly halves the ARI.
    # Scored as the evaluation-only pseudomask_quality stage scores it, on the same data.
    truth = read_truth_classes(root / "truth" / "patch_truth.csv", n)
    scores = clustering_scores(np.array([int(r["cluster"]) for r in rows]), truth)
    assert scores["purity"] == 1.0 and scores["ari"] > 0.3
    assert written["diversity"]["background_removed"]["mean"] < written["diversity"]["raw"]["mean"]

    plots = {p.name for p in (root / "plots").iterdir()}
    expected = {"umap.png", "selection.png", "diversity.png", "gallery.png", "saliency.png", "selection.csv"}
    expected |= {"map_exp0_DET11.png", "kmeans_map_exp0_DET11.png", "maps_by_previous.png"}
    assert expected <= plots and "purity.csv" not in plots
    selection = read_csv(root / "plots" / "selection.csv")
    assert {r["group"] for r in selection} == {"0", "1"}
    assert sum(int(r["chosen"]) for r in selection) == 2

    run = mlflow.MlflowClient().get_run(metrics["mlflow_run_id"])
    assert run.data.tags["dvc.stage"] == "cluster"
    assert run.data.params["cluster.mode"] == "channelwise"
    assert run.data.metrics["n_clusters"] == len(clusters)
    assert "groups.0.bic" in run.data.metrics and not any("truth" in k for k in run.data.metrics)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "bic.0")
    assert [m.step for m in history] == list(range(2, 6))
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert "plots/umap.png" in artifacts and "plots/saliency.png" in artifacts


def test_merged_mode_is_reproducible_and_classifies_new_exposures(products: tuple[Path, int]) -> None:
    root, n = products
    params, _ = tiny_params(root, "merged")
    params = params.model_copy(
        update={
            "cluster": params.cluster.model_copy(
                update={"plots": params.cluster.plots.model_copy(update={"saliency_samples": 0})}
            )
        }
    )
    run_cluster(params)
    first = (root / "clusters" / "assignments.csv").read_bytes()
    run_cluster(params)
    assert (root / "clusters" / "assignments.csv").read_bytes() == first
    rows = read_csv(root / "clusters" / "assignments.csv")
    assert {r["group"] for r in rows} == {"all"}

    new = classify_patches(
        root / "patches", root / "latents", root / "clusters" / "models", root / "new.csv", params
    )
    assert len(new["patch"]) == n
    stage_clusters = np.array([int(r["cluster"]) for r in rows])
    assert np.mean(new["cluster"] == stage_clusters) > 0.9
    assert read_csv(root / "new.csv")[0].keys() == rows[0].keys()

    tiny_yaml = root / "params.yaml"
    tiny_yaml.write_text(yaml.safe_dump(params.model_dump(), sort_keys=False))
    args = ["--params", str(tiny_yaml), "classify", "--patches", str(root / "patches")]
    args += [
        "--latents",
        str(root / "latents"),
        "--out",
        str(root / "cli.csv"),
        "--models",
        str(root / "clusters" / "models"),
    ]
    assert main(args) == 0
    assert (root / "cli.csv").read_bytes() == (root / "new.csv").read_bytes()
    assert (
        main(
            [
                "--params",
                str(REPO / "params.yaml"),
                "classify",
                "--patches",
                str(root / "nowhere"),
                "--latents",
                "x",
                "--out",
                "y",
            ]
        )
        == 2
    )


def test_group_fits_are_the_same_with_one_or_two_workers() -> None:
    params = load_params(REPO / "params.yaml")
    latents, _ = make_blobs(n_samples=600, centers=np.eye(3, 12) * 10.0, cluster_std=0.6, random_state=0)
    latents = latents.astype(np.float32)
    groups = {"0": np.arange(0, 600, 2), "1": np.arange(1, 600, 2)}
    counts = params.cluster.n_components.model_copy(update={"min": 2, "max": 5})
    cluster = params.cluster.model_copy(update={"n_components": counts})
    umap = params.umap.model_copy(update={"n_neighbors": 10})
    one = fit_groups(latents, groups, umap, cluster, 7, workers=1)
    two = fit_groups(latents, groups, umap, cluster, 7, workers=2)
    assert list(two) == ["0", "1"]
    for group in groups:
        np.testing.assert_array_equal(one[group].fitted_rows, two[group].fitted_rows)
        np.testing.assert_array_equal(one[group].reducer.embedding_, two[group].reducer.embedding_)
        np.testing.assert_array_equal(one[group].selection.bic, two[group].selection.bic)
        assert one[group].selection.chosen == two[group].selection.chosen == 3
