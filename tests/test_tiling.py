"""Sliding-window tiles: full coverage, normalised blending, batches in order."""

from __future__ import annotations

import numpy as np
import pytest

from slewdark.core.tiling import TileBlender, axis_starts, blend_window, iter_tile_batches, tile_origins


@pytest.mark.parametrize(("tile", "overlap"), [(1040, 32), (512, 64), (2040, 0), (96, 16)])
def test_tiles_cover_the_detector_and_overlap_enough(tile: int, overlap: int) -> None:
    starts = axis_starts(2040, tile, overlap)
    assert starts[0] == 0
    assert starts[-1] == 2040 - tile
    assert np.all(np.diff(starts) <= tile - overlap)
    covered = np.zeros((2040, 2040), dtype=np.int32)
    for r, c in tile_origins(2040, 2040, tile, overlap):
        covered[r : r + tile, c : c + tile] += 1
    assert covered.min() >= 1


@pytest.mark.parametrize(("tile", "overlap"), [(1040, 32), (512, 64), (96, 16), (2040, 0)])
def test_blending_weights_sum_to_one_and_keep_a_constant(tile: int, overlap: int) -> None:
    origins = tile_origins(2040, 2040, tile, overlap)
    blender = TileBlender(2040, 2040, tile, overlap)
    blender.add(origins, np.full((len(origins), tile, tile), 0.25, dtype=np.float32))
    assert np.allclose(blender.result(), 0.25, atol=1e-6)
    # Each pixel's normalised weights, summed over the tiles that cover it, are exactly 1.
    window = blend_window(tile, overlap)
    total = np.zeros((2040, 2040), dtype=np.float64)
    for r, c in origins:
        total[r : r + tile, c : c + tile] += window
    share = np.zeros_like(total)
    for r, c in origins:
        share[r : r + tile, c : c + tile] += window / total[r : r + tile, c : c + tile]
    assert np.allclose(share, 1.0)


def test_blending_reassembles_an_image_cut_into_tiles() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((1, 300, 260), dtype=np.float32)
    origins = tile_origins(300, 260, 96, 16)
    blender = TileBlender(300, 260, 96, 16)
    seen = []
    for chunk, batch in iter_tile_batches(image, origins, 96, batch_size=4):
        assert batch.shape[1:] == (1, 96, 96) and batch.dtype == np.float32 and len(batch) <= 4
        seen.extend(chunk)
        blender.add(chunk, batch[:, 0])
    assert seen == origins
    assert np.allclose(blender.result(), image[0], atol=1e-6)


def test_blend_window_ramps_at_the_edges_only() -> None:
    window = blend_window(64, 8)
    assert window.min() > 0
    assert np.all(window[8:-8, 8:-8] == 1.0)
    assert window[0, 32] < window[4, 32] < window[8, 32]


def test_uncovered_pixels_and_bad_geometry_are_errors() -> None:
    blender = TileBlender(100, 100, 64, 8)
    blender.add([(0, 0)], np.ones((1, 64, 64), dtype=np.float32))
    with pytest.raises(ValueError, match="not covered"):
        blender.result()
    with pytest.raises(ValueError, match="tile side"):
        axis_starts(100, 128, 8)
    with pytest.raises(ValueError, match="overlap"):
        axis_starts(100, 64, 64)
