"""Cluster-count selection and component assignment with real scikit-learn mixtures."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture

from slewdark.errors import SlewdarkError
from slewdark.latent.mixture import (
    assign_components,
    choose_count,
    elbow_index,
    kmeans_scores,
    select_mixture,
    usable_counts,
)


@pytest.fixture(scope="module")
def four_blobs() -> np.ndarray:
    centres = [(0, 0), (12, 0), (0, 12), (12, 12)]
    points, _ = make_blobs(n_samples=400, centers=centres, cluster_std=1.0, random_state=3)
    return points


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_bic_selects_the_number_of_blobs(four_blobs: np.ndarray, covariance_type: str) -> None:
    selection = select_mixture(
        four_blobs, range(2, 9), covariance_type=covariance_type, rule="bic", n_init=1, seed=0
    )
    assert selection.chosen == 4
    assert selection.model.n_components == 4
    assert list(selection.counts) == list(range(2, 9))
    assert np.argmin(selection.bic) == 2


def test_selection_is_reproducible_for_a_seed(four_blobs: np.ndarray) -> None:
    first = select_mixture(four_blobs, range(2, 6), covariance_type="full", rule="aic", n_init=1, seed=5)
    second = select_mixture(four_blobs, range(2, 6), covariance_type="full", rule="aic", n_init=1, seed=5)
    np.testing.assert_array_equal(first.bic, second.bic)
    np.testing.assert_array_equal(first.model.means_, second.model.means_)


def test_elbow_finds_the_knee_of_a_hand_made_curve() -> None:
    curve = np.array([100.0, 40.0, 12.0, 10.0, 9.0, 8.5, 8.0])
    assert elbow_index(curve) == 2
    counts = np.arange(2, 9)
    assert choose_count(counts, curve, curve, "elbow") == 4
    assert choose_count(counts, curve, curve[::-1], "aic") == 2
    assert elbow_index(np.array([3.0, 1.0])) == 0


def test_counts_the_data_cannot_support_are_dropped() -> None:
    assert list(usable_counts(range(2, 10), 5)) == [2, 3, 4]
    with pytest.raises(SlewdarkError, match="no cluster count"):
        usable_counts(range(5, 8), 4)


def test_kmeans_silhouette_peaks_at_the_true_count(four_blobs: np.ndarray) -> None:
    scores = kmeans_scores(four_blobs, np.arange(2, 7), silhouette_max_points=300, seed=0)
    assert scores.counts[np.argmax(scores.silhouette)] == 4
    assert np.all(np.diff(scores.inertia) < 0)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_mahalanobis_distance_matches_the_component_covariance(covariance_type: str) -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate(
        [rng.normal((0, 0), (1.0, 2.0), (500, 2)), rng.normal((30, 30), (1.0, 2.0), (500, 2))]
    )
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(points)
    component, probability, distance = assign_components(model, model.means_)
    np.testing.assert_array_equal(component, [0, 1])
    np.testing.assert_allclose(distance, 0.0, atol=1e-6)
    assert np.all(probability > 0.99)
    # three standard deviations along the first axis (std about 1 for every covariance type but spherical)
    shifted = model.means_[:1] + np.array([[3.0, 0.0]])
    _, _, far = assign_components(model, shifted)
    expected = 3.0 / np.sqrt(model.covariances_.mean()) if covariance_type == "spherical" else 3.0
    assert far[0] == pytest.approx(expected, rel=0.15)


def test_a_count_whose_components_collapse_is_skipped_and_none_left_is_one_clear_error() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 2)).astype(np.float32) * 10 + 20
    noise = rng.normal(size=(20, 2)).astype(np.float32) + 20
    points = np.vstack([np.repeat(centres, 50, axis=0), noise])
    selection = select_mixture(points, range(2, 6), covariance_type="full", rule="bic", n_init=1, seed=0)
    assert list(selection.counts) == [3, 4, 5]
    assert selection.chosen in (3, 4, 5) and len(selection.bic) == 3
    with pytest.raises(SlewdarkError, match="components collapse"):
        select_mixture(points, [2], covariance_type="full", rule="bic", n_init=1, seed=0)
