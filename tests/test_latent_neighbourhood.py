"""Saved group models (real UMAP + GMM) classify new data deterministically and by neighbourhood."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from slewdark.errors import SlewdarkError
from slewdark.latent.mixture import assign_components, select_mixture
from slewdark.latent.neighbourhood import (
    GroupModel,
    classify_rows,
    in_labelled_neighbourhood,
    load_group_models,
    save_group_model,
)
from slewdark.latent.reduce import embed_rows, fit_reducer, transform_in_chunks

CENTRES = np.eye(3, 12) * 10.0


@pytest.fixture(scope="module")
def fitted() -> tuple[GroupModel, np.ndarray, np.ndarray]:
    latents, blob = make_blobs(n_samples=240, centers=CENTRES, cluster_std=0.6, random_state=0)
    latents = latents.astype(np.float32)
    reducer = fit_reducer(latents, n_components=2, n_neighbors=10, min_dist=0.0, metric="euclidean", seed=7)
    selection = select_mixture(
        reducer.embedding_, range(2, 6), covariance_type="full", rule="bic", n_init=1, seed=7
    )
    return GroupModel("3", reducer, selection.model, first_cluster=10), latents, blob


def test_three_latent_blobs_give_three_clusters(fitted: tuple[GroupModel, np.ndarray, np.ndarray]) -> None:
    model, _, blob = fitted
    assert model.mixture.n_components == 3
    np.testing.assert_array_equal(model.cluster_ids, [10, 11, 12])
    component, _, _ = assign_components(model.mixture, model.reducer.embedding_)
    for b in range(3):
        assert len(np.unique(component[blob == b])) == 1


def test_saved_model_transforms_new_data_deterministically(
    fitted: tuple[GroupModel, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, _, _ = fitted
    new, _ = make_blobs(n_samples=30, centers=CENTRES, cluster_std=0.6, random_state=1)
    path = save_group_model(model, tmp_path)
    assert path == tmp_path / "3.joblib"
    loaded = load_group_models(tmp_path)["3"]
    first = classify_rows(loaded, new, np.arange(30), threshold=3.0, chunk_size=16)
    second = classify_rows(loaded, new, np.arange(30), threshold=3.0, chunk_size=16)
    np.testing.assert_array_equal(first.embedding, second.embedding)
    np.testing.assert_array_equal(first.cluster, second.cluster)
    np.testing.assert_array_equal(first.embedding, transform_in_chunks(model.reducer, new, 16))


def test_new_points_of_a_known_blob_join_its_cluster(
    fitted: tuple[GroupModel, np.ndarray, np.ndarray],
) -> None:
    model, _, blob = fitted
    new, new_blob = make_blobs(n_samples=60, centers=CENTRES, cluster_std=0.6, random_state=2)
    result = classify_rows(model, new.astype(np.float32), np.arange(60), threshold=3.0, chunk_size=25)
    fitted_clusters = model.first_cluster + assign_components(model.mixture, model.reducer.embedding_)[0]
    for b in range(3):
        expected = np.unique(fitted_clusters[blob == b])
        assert np.all(result.cluster[new_blob == b] == expected[0])
    assert result.in_neighbourhood.mean() > 0.9
    assert np.all((result.probability > 0) & (result.probability <= 1))
    np.testing.assert_array_equal(result.view, result.embedding)


def test_far_points_fall_outside_every_neighbourhood(
    fitted: tuple[GroupModel, np.ndarray, np.ndarray],
) -> None:
    model, _, _ = fitted
    embedding = model.reducer.embedding_
    far = embedding.max(axis=0) + 50.0 * (embedding.max(axis=0) - embedding.min(axis=0)) + np.zeros((4, 2))
    _, _, distance = assign_components(model.mixture, far.astype(np.float32))
    assert np.all(distance > 3.0)


def test_fitted_rows_reuse_the_fit_embedding(fitted: tuple[GroupModel, np.ndarray, np.ndarray]) -> None:
    model, latents, _ = fitted
    fitted_rows = np.arange(len(latents))
    rows = np.array([0, 5, 239])
    out = embed_rows(model.reducer, latents, rows, fitted_rows, chunk_size=2)
    np.testing.assert_array_equal(out, model.reducer.embedding_[rows])


def test_a_folder_without_models_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SlewdarkError, match="no fitted cluster models"):
        load_group_models(tmp_path)


def test_the_neighbourhood_rule_takes_patches_near_any_labelled_cluster(
    fitted: tuple[GroupModel, np.ndarray, np.ndarray],
) -> None:
    model, _, blob = fitted
    embedding = model.reducer.embedding_
    clusters = model.first_cluster + assign_components(model.mixture, embedding)[0]
    labelled = int(clusters[blob == 0][0])
    centre = model.mixture.means_[labelled - model.first_cluster]
    edge = centre + 0.01 * (embedding[blob == 1].mean(axis=0) - centre)  # a point just off the centre
    points = np.vstack([embedding, edge, embedding.max(axis=0) + 1e3])
    groups = np.array(["3"] * len(points))

    inside = in_labelled_neighbourhood({"3": model}, groups, points, {labelled}, threshold=3.0)

    assert inside[: len(embedding)][blob == 0].mean() > 0.95  # the labelled blob
    assert not inside[: len(embedding)][blob != 0].any()  # the other blobs are far
    assert inside[-2] and not inside[-1]
    assert not in_labelled_neighbourhood({"3": model}, groups, points, set(), threshold=3.0).any()
    with pytest.raises(SlewdarkError, match="group 3: no fitted cluster model"):
        in_labelled_neighbourhood({}, groups, points, {labelled}, threshold=3.0)
