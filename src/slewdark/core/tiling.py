"""Sliding-window tiles over a detector frame, and blending of per-tile predictions.

A 2040x2040 detector is cut into square tiles that overlap by at least
``overlap`` pixels (the starts are spread evenly, so the last tile ends exactly
at the edge); the network sees each tile, and the per-tile outputs are blended
back with a window that is 1 in the tile's interior and ramps down linearly over
the outermost ``overlap`` pixels, where the convolutions saw zero padding
instead of the neighbouring pixels. The blended value is
``sum(w * p) / sum(w)``: every pixel is covered by at least one tile with a
positive weight, so the weights normalise to exactly 1 and a constant input
comes back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

Origin = tuple[int, int]


def axis_starts(length: int, tile: int, overlap: int) -> np.ndarray:
    """Start offsets of tiles along one axis, overlapping by at least ``overlap``.

    Parameters
    ----------
    length
        Image size along the axis (pixels).
    tile
        Tile side (pixels), at most ``length``.
    overlap
        Minimum overlap of neighbouring tiles (pixels), ``0 <= overlap < tile``.

    Returns
    -------
    ndarray
        int64 starts, first 0 and last ``length - tile``, evenly spread.

    Raises
    ------
    ValueError
        When the tile does not fit or the overlap is out of range.
    """
    if not 0 < tile <= length:
        raise ValueError(f"tile side must be in 1..{length}, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in 0..{tile - 1}, got {overlap}")
    if tile == length:
        return np.zeros(1, dtype=np.int64)
    n = int(np.ceil((length - overlap) / (tile - overlap)))
    n = max(n, 2)
    return np.round(np.linspace(0, length - tile, n)).astype(np.int64)


def tile_origins(height: int, width: int, tile: int, overlap: int) -> list[Origin]:
    """Top-left corners ``(row, col)`` of the tiles covering a ``height x width`` frame, row-major."""
    return [
        (int(r), int(c))
        for r in axis_starts(height, tile, overlap)
        for c in axis_starts(width, tile, overlap)
    ]


def blend_window(tile: int, overlap: int) -> np.ndarray:
    """Blending weights of one tile: 1 inside, a linear ramp over the outer ``overlap`` pixels.

    Parameters
    ----------
    tile
        Tile side (pixels).
    overlap
        Ramp width (pixels); 0 gives a flat window.

    Returns
    -------
    ndarray
        float32 (tile, tile), strictly positive: the ramp runs from
        ``0.5 / overlap`` at the edge to 1.
    """
    ramp = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        rise = (np.arange(overlap) + 0.5) / overlap
        ramp[:overlap] = np.minimum(ramp[:overlap], rise)
        ramp[tile - overlap :] = np.minimum(ramp[tile - overlap :], rise[::-1])
    return np.outer(ramp, ramp).astype(np.float32)


def iter_tile_batches(
    image: np.ndarray, origins: Sequence[Origin], tile: int, batch_size: int
) -> Iterator[tuple[list[Origin], np.ndarray]]:
    """Stack tiles of a ``(C, H, W)`` image into batches.

    Parameters
    ----------
    image
        Channels-first image.
    origins
        Tile corners, as from :func:`tile_origins`.
    tile
        Tile side.
    batch_size
        Tiles per batch (the last batch may be smaller).

    Yields
    ------
    origins : list of (row, col)
        The corners of the tiles in this batch.
    batch : ndarray
        float32 ``(B, C, tile, tile)``, contiguous.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    for start in range(0, len(origins), batch_size):
        chunk = list(origins[start : start + batch_size])
        batch = np.stack([image[:, r : r + tile, c : c + tile] for r, c in chunk]).astype(
            np.float32, copy=False
        )
        yield chunk, batch


class TileBlender:
    """Accumulates weighted tile predictions into a full frame.

    Parameters
    ----------
    height, width
        Frame shape.
    tile, overlap
        Tile side and ramp width of :func:`blend_window`.
    """

    def __init__(self, height: int, width: int, tile: int, overlap: int) -> None:
        self.tile = tile
        self.window = blend_window(tile, overlap)
        self._sum = np.zeros((height, width), dtype=np.float32)
        self._weight = np.zeros((height, width), dtype=np.float32)

    def add(self, origins: Sequence[Origin], values: np.ndarray) -> None:
        """Add tile values ``(B, tile, tile)`` at their corners."""
        t = self.tile
        for (r, c), value in zip(origins, values, strict=True):
            self._sum[r : r + t, c : c + t] += value * self.window
            self._weight[r : r + t, c : c + t] += self.window

    def result(self) -> np.ndarray:
        """The blended frame (float32); raises if a pixel was never covered."""
        if not np.all(self._weight > 0):
            raise ValueError(f"{int(np.sum(self._weight <= 0))} pixels were not covered by any tile")
        return self._sum / self._weight
