"""Grouping patches by channel and numbering clusters uniquely over groups."""

import numpy as np
import pytest

from slewdark.errors import SlewdarkError
from slewdark.latent.channels import MERGED_GROUP, cluster_offsets, patch_groups


def test_channelwise_groups_cover_every_patch_exactly_once() -> None:
    channels = np.random.default_rng(0).integers(0, 10, size=997)
    groups = patch_groups(channels, "channelwise")
    assert list(groups) == [str(c) for c in range(10)]
    every = np.concatenate(list(groups.values()))
    assert len(every) == len(channels)
    np.testing.assert_array_equal(np.sort(every), np.arange(len(channels)))
    for name, rows in groups.items():
        assert np.all(channels[rows] == int(name))
        assert np.all(np.diff(rows) > 0)


def test_merged_mode_is_one_group_of_all_patches() -> None:
    groups = patch_groups(np.array([3, 1, 1, 0]), "merged")
    assert list(groups) == [MERGED_GROUP]
    np.testing.assert_array_equal(groups[MERGED_GROUP], [0, 1, 2, 3])


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(SlewdarkError, match="channelwise or merged"):
        patch_groups(np.zeros(3, dtype=int), "bands")  # type: ignore[arg-type]


def test_cluster_ids_are_consecutive_blocks_in_group_order() -> None:
    offsets = cluster_offsets({"0": 3, "1": 5, "2": 2})
    assert offsets == {"0": 0, "1": 3, "2": 8}
    ids = np.concatenate([offsets[g] + np.arange(n) for g, n in {"0": 3, "1": 5, "2": 2}.items()])
    np.testing.assert_array_equal(ids, np.arange(10))
