"""Purity and adjusted Rand index against simulation truth, on hand-made cases."""

import numpy as np
import pytest

from slewdark.evaluation.diagnostics import cluster_composition, clustering_scores


def test_purity_and_ari_on_a_hand_made_clustering() -> None:
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    truth = np.array(["persistence"] * 3 + ["clean"] + ["clean"] * 4 + ["cosmic_ray", "hot_pixel"])
    composition = cluster_composition(clusters, truth)
    assert composition[0]["majority"] == "persistence"
    assert composition[0]["purity"] == pytest.approx(0.75)
    assert composition[0]["clean"] == pytest.approx(0.25)
    assert composition[1] == pytest.approx(
        {
            "size": 4,
            "persistence": 0.0,
            "cosmic_ray": 0.0,
            "hot_pixel": 0.0,
            "clean": 1.0,
            "majority": "clean",
            "purity": 1.0,
        }
    )
    assert composition[2]["purity"] == pytest.approx(0.5)

    scores = clustering_scores(clusters, truth)
    assert scores["purity"] == pytest.approx((3 + 4 + 1) / 10)
    assert scores["persistence_purity_max"] == pytest.approx(0.75)
    assert scores["persistence_recall"] == pytest.approx(1.0)
    assert -1.0 < scores["ari"] < 1.0


def test_identical_partition_has_ari_one_and_purity_one() -> None:
    truth = np.array(["clean", "clean", "persistence", "persistence", "hot_pixel"])
    scores = clustering_scores(np.array([5, 5, 7, 7, 9]), truth)
    assert scores["ari"] == pytest.approx(1.0)
    assert scores["purity"] == pytest.approx(1.0)


def test_no_persistence_patches_gives_zero_recall() -> None:
    scores = clustering_scores(np.array([0, 1]), np.array(["clean", "cosmic_ray"]))
    assert scores["persistence_recall"] == 0.0
    assert scores["persistence_purity_max"] == 0.0
