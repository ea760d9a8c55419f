"""Pairwise patch distances, background removal per patch, and gradient saliency with a tiny encoder."""

import numpy as np
import pytest
import torch
from torch import nn

from slewdark.latent.diversity import distance_summary, pairwise_distances, remove_patch_backgrounds
from slewdark.latent.saliency import latent_saliency
from slewdark.latent.sampling import sample_rows


def test_pairwise_distances_of_hand_made_patches() -> None:
    patches = np.zeros((3, 2, 2), dtype=np.float32)
    patches[1, 0, 0] = 3.0
    patches[2, 0, 0], patches[2, 1, 1] = 3.0, 4.0
    np.testing.assert_allclose(pairwise_distances(patches), [3.0, 5.0, 4.0])
    summary = distance_summary(pairwise_distances(patches))
    assert summary["mean"] == pytest.approx(4.0)
    assert summary["median"] == pytest.approx(4.0)


def test_background_removal_keeps_bright_structure_and_zeroes_the_rest() -> None:
    rng = np.random.default_rng(1)
    patches = rng.uniform(0.0, 0.3, size=(2, 16, 16)).astype(np.float32)
    patches[0, 5:8, 5:8] = 0.99
    patches[1, 2, 2] = 0.99  # a single bright pixel: smaller than min_neighbor
    usable = np.ones_like(patches, dtype=bool)
    cleaned = remove_patch_backgrounds(patches, usable, threshold=0.95, mad_factor=0.5, min_neighbor=2)
    assert cleaned.shape == patches.shape
    assert np.all(cleaned[0, 5:8, 5:8] == pytest.approx(0.99))
    assert np.count_nonzero(cleaned[0]) == 9
    assert np.count_nonzero(cleaned[1]) == 0


def test_sample_rows_is_seeded_sorted_and_bounded() -> None:
    rows = np.arange(100, 200)
    first = sample_rows(rows, 10, seed=4)
    np.testing.assert_array_equal(first, sample_rows(rows, 10, seed=4))
    assert len(first) == 10 and np.all(np.diff(first) > 0) and np.isin(first, rows).all()
    np.testing.assert_array_equal(sample_rows(rows[::-1], 500, seed=4), rows)


class PixelEncoder(nn.Module):
    """Latent = (2 * x[0, 0], x[1, 1]): saliency is known in closed form."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([2.0 * x[:, 0, 0, 0], x[:, 0, 1, 1]], dim=1)


def test_saliency_of_one_unit_and_of_the_norm() -> None:
    patches = np.zeros((2, 3, 3), dtype=np.float32)
    patches[0, 0, 0], patches[0, 1, 1] = 1.0, 1.0
    patches[1, 1, 1] = 0.5
    unit = latent_saliency(PixelEncoder(), patches, unit=1)
    expected = np.zeros((3, 3))
    expected[1, 1] = 1.0
    np.testing.assert_allclose(unit[0], expected)
    norm = latent_saliency(PixelEncoder(), patches)
    # d||z||/dx00 = 4 x00 / ||z||, d||z||/dx11 = x11 / ||z||: ratio 4 for the first patch
    assert norm[0, 0, 0] == pytest.approx(1.0)
    assert norm[0, 1, 1] == pytest.approx(0.25)
    assert norm[1, 1, 1] == pytest.approx(1.0) and norm[1, 0, 0] == 0.0
    assert norm.dtype == np.float32
