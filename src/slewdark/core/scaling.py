"""Detector images in physical units: background removed, divided by the noise, squashed.

Every network input (the autoencoder's patches and the UNet's detectors, in
training and in prediction) is built by :func:`scale_detector`, so a model never
sees data scaled differently from what it was trained on, and the settings
(:class:`Scaling`) travel in the model's checkpoint.

Why the noise, not the content
------------------------------
A slew dark is read noise (about 9 e-) plus faint persistence (a few e-) plus
rare, very bright pixels (cosmic rays, snowballs, hot pixels). A stretch set by
statistics of the image (percentiles, min-max) moves when 1 % of the pixels
become cosmic rays or persistence: the same faint trace then looks brighter or
fainter depending on what else is on the detector, and a model trained on one
simulator's content mistakes noise for signal on another's. Here the image is
measured in units of its own noise instead:

1. the background is removed: the median of each output channel (64 columns),
   then of each row (1/f row noise), then a coarse 2-D median map of blocks
   (amplifier glow near the corners), all over usable pixels, all robust to a
   minority of bright pixels;
2. the noise ``sigma`` is 1.4826 x the median absolute deviation of the
   differences between horizontal neighbours, divided by sqrt 2: differences
   cancel every smooth structure (persistence, glow, offsets), and a median
   ignores the few pixels that cosmic rays hit;
3. with ``source_sigma`` set, both are made again without the pixels that stand
   ``source_sigma`` above the background and a ``source_grow``-pixel margin
   around them, as SExtractor and photutils mask sources before a background.
   A median shrugs off the cosmic-ray cores but not their faint halos
   (diffusion, inter-pixel capacitance): when cosmic rays hit 15 % of the
   pixels, the unmasked median rises by a fifth of the noise and the faint
   persistence beside them sinks by as much;
4. ``z = residual / sigma`` is squashed by a fixed ``asinh(z / softening)`` and
   mapped linearly so that ``z = low_sigma`` is 0 and ``z = high_sigma`` is 1
   (clipped): faint persistence keeps its resolution, cosmic rays saturate.

Unusable pixels (NaN, flagged) get the value of ``z = 0`` (background), so they
carry no structure; losses ignore them through the usable mask.

The evaluation runs several methods on each detector, and each scales it: the
last :data:`RECENT` results are kept, keyed by a digest of the pixels, the
usable mask and the settings, so the same detector is scaled once (2 s of work
against 20 ms of hashing). Their arrays are read-only.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage

MAD_TO_SIGMA = 1.4826
CHANNEL_COLUMNS = 64
"""Columns per output channel of the H2RG (32 channels over 2048 columns)."""
NOISE_ROW_STEP = 2
"""Every second row is enough for the noise estimate (a million differences per detector)."""
NOISE_CLIP = 4.0
"""Sigma beyond which a pixel is left out of the noise estimate's second pass."""
ROW_WINDOW = 31
"""px: running mean along a row that finds extended signal to leave out of the row median."""
ROW_CLIP = 3.0
"""Noise units of that running mean above which a pixel is extended signal."""
REFERENCE_BORDER = 4
"""Reference pixels stripped on each side: active column 0 is column 4 of its channel's readout."""
Background = Literal["none", "channel", "channel_row", "channel_row_block"]
RECENT = 2
"""Scaled detectors kept for callers that scale the same detector again."""


@dataclass(frozen=True)
class Scaling:
    """How a detector in electrons becomes a network input in [0, 1].

    Attributes
    ----------
    background
        Which background terms are removed (cumulative, in this order):
        ``channel`` medians, ``row`` medians, ``block`` 2-D median map.
    block
        Side in pixels of the blocks of the 2-D background map.
    softening
        ``z`` (in sigma) where the asinh squashing turns from linear to logarithmic.
    low_sigma, high_sigma
        ``z`` mapped to 0 and to 1.
    source_sigma
        ``z`` above which a pixel is left out, with its margin, of the second
        background and noise estimate; None: one estimate from every pixel (the
        scaling of checkpoints written before this option).
    source_grow
        Margin in pixels (square) around those pixels.
    """

    background: Background
    block: int
    softening: float
    low_sigma: float
    high_sigma: float
    source_sigma: float | None = None
    source_grow: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as stored in a model checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Scaling:
        """From a checkpoint's ``scaling`` entry."""
        return cls(**values)

    def squash(self, z: np.ndarray | float) -> np.ndarray:
        """``z`` (noise units) to [0, 1]: fixed asinh squashing, linear map, clip."""
        low, high = np.arcsinh(np.array([self.low_sigma, self.high_sigma]) / self.softening)
        squashed = (np.arcsinh(np.asarray(z, dtype=np.float32) / self.softening) - low) / (high - low)
        return np.clip(squashed, 0.0, 1.0).astype(np.float32)

    def squash_positive(self, z: np.ndarray | float) -> np.ndarray:
        """Non-negative ``z`` (noise units) to [0, 1] with the same softening: 0 stays 0, ``high_sigma`` is 1.

        The law channel's scale (:func:`slewdark.inference.unet_input.law_channel`).
        """
        positive = np.maximum(np.asarray(z, dtype=np.float32), 0.0)
        squashed = np.arcsinh(positive / self.softening) / np.arcsinh(self.high_sigma / self.softening)
        return np.clip(squashed, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class ScaledDetector:
    """A detector in noise units, the two numbers that took it there, and its background-free electrons.

    Attributes
    ----------
    image
        float32 network input in [0, 1].
    background
        The median level (e-) removed first.
    sigma
        The noise (e-) that one unit of ``z`` is.
    residual
        float32 electrons with every background term removed; 0 where unusable.
    """

    image: np.ndarray
    background: float
    sigma: float
    residual: np.ndarray


_recent: OrderedDict[tuple[str, Scaling], ScaledDetector] = OrderedDict()
"""The last :data:`RECENT` results of :func:`scale_detector`, by digest and settings."""
_recent_lock = threading.Lock()


def _difference_sigma(image: np.ndarray, usable: np.ndarray) -> float:
    """Sigma from the MAD of differences of horizontal neighbours that are both usable; 0 if none."""
    image, usable = image[::NOISE_ROW_STEP], usable[::NOISE_ROW_STEP]
    pairs = usable[:, 1:] & usable[:, :-1]
    differences = (image[:, 1:] - image[:, :-1])[pairs]
    if differences.size == 0:
        return 0.0
    mad = np.median(np.abs(differences - np.median(differences)))
    return float(MAD_TO_SIGMA * mad / np.sqrt(2.0))


def noise_sigma(image: np.ndarray, usable: np.ndarray, clip: float = NOISE_CLIP) -> float:
    """Per-pixel white-noise sigma from the MAD of horizontal neighbour differences.

    The first estimate uses every usable pair; then pixels further than
    ``clip`` sigma from the median (cosmic rays, hot pixels, bright persistence)
    are left out and the estimate is made again, so the few bright pixels do not
    widen it.

    Parameters
    ----------
    image
        2-D image in electrons, background removed.
    usable
        Pixels that hold data; a difference is used only when both pixels are usable.
    clip
        Sigma beyond which a pixel is left out of the second estimate.

    Returns
    -------
    float
        Sigma in electrons; 1.0 for an image without two usable neighbours or without noise.
    """
    sigma = _difference_sigma(image, usable)
    if sigma > 0:
        centre = np.median(image[::NOISE_ROW_STEP][usable[::NOISE_ROW_STEP]])
        quiet = usable & (np.abs(image - centre) < clip * sigma)
        sigma = _difference_sigma(image, quiet) or sigma
    return sigma if sigma > 0 else 1.0


def _column_groups(n_columns: int) -> np.ndarray:
    """Output channel of each active column (the reference border shifts the first channel)."""
    return (np.arange(n_columns) + REFERENCE_BORDER) // CHANNEL_COLUMNS


def _masked_median(values: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Median over the last axis of the usable values; 0 where none is usable.

    A sort with the unusable values as NaN (sorted last) and a pick at half the
    usable count: several times faster than ``numpy.nanmedian`` along an axis.
    """
    ordered = np.sort(np.where(usable, values, np.nan), axis=-1)
    count = usable.sum(axis=-1)
    low = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    high = np.take_along_axis(ordered, np.maximum(count // 2, 0)[..., None], axis=-1)[..., 0]
    return np.where(count > 0, 0.5 * (low + high), 0.0)


def _channel_background(residual: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Median of each output channel, broadcast to the image."""
    groups = _column_groups(residual.shape[1])
    level = np.zeros(residual.shape[1], dtype=np.float64)
    for group in np.unique(groups):
        columns = groups == group
        level[columns] = _masked_median(residual[:, columns].ravel(), usable[:, columns].ravel())
    return np.broadcast_to(level[None, :], residual.shape)


def _row_background(residual: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Median of each row over the pixels outside extended signal, broadcast to the image.

    A trace along x can cover a quarter of a row, which would pull a plain row
    median up by almost half a sigma; so pixels where a running mean of
    ``ROW_WINDOW`` pixels along the row (after a first row median) stands
    ``ROW_CLIP`` of its own noise above zero are left out of the second median.
    """
    first = _masked_median(residual, usable)[:, None]
    sigma = noise_sigma(residual - first, usable)
    running = ndimage.uniform_filter1d(np.where(usable, residual - first, 0.0), ROW_WINDOW, axis=1)
    quiet = usable & (running < ROW_CLIP * sigma / np.sqrt(ROW_WINDOW))
    return np.broadcast_to(_masked_median(residual, quiet)[:, None], residual.shape)


def _block_background(residual: np.ndarray, usable: np.ndarray, block: int) -> np.ndarray:
    """A smooth 2-D background: block medians, bilinearly interpolated between block centres."""
    rows, cols = residual.shape
    n_rows, n_cols = -(-rows // block), -(-cols // block)
    padded = np.full((n_rows * block, n_cols * block), np.nan)
    padded[:rows, :cols] = np.where(usable, residual, np.nan)
    blocks = padded.reshape(n_rows, block, n_cols, block).transpose(0, 2, 1, 3).reshape(n_rows, n_cols, -1)
    grid = _masked_median(blocks, np.isfinite(blocks))
    return _interpolation(rows, n_rows, block) @ grid @ _interpolation(cols, n_cols, block).T


def _interpolation(n_pixels: int, n_blocks: int, block: int) -> np.ndarray:
    """``(n_pixels, n_blocks)`` weights of linear interpolation between block centres (flat beyond)."""
    centres = (np.arange(n_pixels) + 0.5) / block - 0.5
    return np.stack([np.interp(centres, np.arange(n_blocks), unit) for unit in np.eye(n_blocks)], axis=1)


def remove_background(
    image: np.ndarray,
    usable: np.ndarray,
    background: Background,
    block: int,
    quiet: np.ndarray | None = None,
) -> np.ndarray:
    """The image minus its channel, row and block background terms (see the module docstring).

    Parameters
    ----------
    image, usable
        Image and the pixels that hold data.
    background, block
        As :class:`Scaling`.
    quiet
        Pixels the terms are estimated from (default ``usable``); they are removed from every pixel.

    Returns
    -------
    ndarray
        float64 residual; unusable pixels keep their (meaningless) values.
    """
    estimate = usable if quiet is None else quiet & usable
    residual = np.where(usable, image, 0.0).astype(np.float64)
    steps = {"none": 0, "channel": 1, "channel_row": 2, "channel_row_block": 3}[background]
    if steps >= 1:
        residual = residual - _channel_background(residual, estimate)
    if steps >= 2:
        residual = residual - _row_background(residual, estimate)
    if steps >= 3:
        residual = residual - _block_background(residual, estimate, block)
    return residual


def source_free(residual: np.ndarray, usable: np.ndarray, sigma: float, scaling: Scaling) -> np.ndarray:
    """Usable pixels below ``scaling.source_sigma`` x ``sigma`` and outside the margin of those above."""
    bright = usable & (residual > scaling.source_sigma * sigma)
    margin = np.ones((2 * scaling.source_grow + 1,) * 2, dtype=bool)
    return usable & ~ndimage.binary_dilation(bright, structure=margin)


def scale_detector(image: np.ndarray, usable: np.ndarray, scaling: Scaling) -> ScaledDetector:
    """A detector in electrons as the network sees it: background-free, in noise units, in [0, 1].

    Parameters
    ----------
    image
        2-D detector image in electrons; NaN where there is no data.
    usable
        Pixels that are finite and not flagged.
    scaling
        Background terms, squashing and range.

    Returns
    -------
    ScaledDetector
        The input in [0, 1], and the background, noise and residual it was made from;
        their arrays are read-only and shared with any caller that scales the same
        detector with the same settings while it is among the :data:`RECENT` ones.

    Raises
    ------
    ValueError
        When no pixel is usable.
    """
    usable = usable & np.isfinite(image)
    if not usable.any():
        raise ValueError("no usable pixel to scale")
    key = (_digest(image, usable), scaling)
    with _recent_lock:
        if key in _recent:
            _recent.move_to_end(key)
            return _recent[key]
    scaled = _scale(image, usable, scaling)
    with _recent_lock:
        _recent[key] = scaled
        while len(_recent) > RECENT:
            _recent.popitem(last=False)
    return scaled


def forget_scaled() -> None:
    """Drop the kept results of :func:`scale_detector` (benchmarks time the work, not the lookup)."""
    with _recent_lock:
        _recent.clear()


def _digest(image: np.ndarray, usable: np.ndarray) -> str:
    """A digest of the pixels (dtype and shape included) and of the usable mask."""
    digest = hashlib.blake2b(f"{image.dtype}{image.shape}".encode(), digest_size=20)
    digest.update(np.ascontiguousarray(image).view(np.uint8))
    digest.update(np.packbits(usable))
    return digest.hexdigest()


def _scale(image: np.ndarray, usable: np.ndarray, scaling: Scaling) -> ScaledDetector:
    """:func:`scale_detector` without the cache, ``usable`` already finite; arrays read-only."""
    level = float(np.median(image[usable]))
    residual = remove_background(image - level, usable, scaling.background, scaling.block)
    sigma = noise_sigma(residual, usable)
    if scaling.source_sigma is not None:
        quiet = source_free(residual, usable, sigma, scaling)
        residual = remove_background(image - level, usable, scaling.background, scaling.block, quiet)
        sigma = noise_sigma(residual, quiet)
    residual = np.where(usable, residual, 0.0)
    image = scaling.squash(residual / sigma)
    electrons = residual.astype(np.float32)
    image.flags.writeable = False
    electrons.flags.writeable = False
    return ScaledDetector(image=image, background=level, sigma=sigma, residual=electrons)
