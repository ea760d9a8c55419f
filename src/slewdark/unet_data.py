"""Training tiles for the UNet: inputs, labels and label weights, with physical augmentations.

Tiles are cut from the detectors of the training exposures one detector at a
time (memory holds the tiles, never all detectors). Labels come from one of two
sources:

- ``pseudo``: the pseudo-masks of the ``pseudomask`` stage
  (``data/masks/<stem>.pseudo.fits``: ``DETxy.MASK`` and the confidence
  ``DETxy.WEIGHT``), the project's real training signal;
- ``truth``: the simulator's persistence above ``evaluate.truth_threshold`` e-
  (weight 1 on usable pixels), only for the supervised ceiling of the evaluation.

Tile positions are seeded: a share ``positive_fraction`` is centred on random
labelled pixels (persistence is sparse, and a uniform draw would show the
network almost only background), the rest is uniform over the detector.

Augmentations, and why only these
---------------------------------
A slew dark has two physical axes. Along y (rows) lies the grism dispersion
direction (``slewdark.simulate.sky.DISPERSION_ANGLE``: RGS000 and BGS000 at +90
deg, RGS180 at 270 deg); along x (columns) the 64-column output channels and
the row-correlated readout noise. Traces follow the dispersion direction,
tilted by 0 or ±4 deg.

- Vertical flip (y -> -y): reverses the dispersion direction, which turns an
  RGS000-like trace (and its zeroth-order spot on one side) into an
  RGS180-like one, and a +4 deg tilt into -4 deg. Both exist, so it is allowed.
- Horizontal flip (x -> -x): mirrors the tilt (+4 <-> -4 deg, both exist) and
  keeps the dispersion along y; rows stay rows and the output channels only
  swap places. Allowed, and so is their product, the 180 deg rotation.
- Not allowed: 90 deg rotations and transposes (traces along x and
  column-correlated noise along rows never occur), and rotations by arbitrary
  angles (the tilt is physical and quantised at 0, ±4 deg; interpolation would
  also smooth the noise whose texture tells persistence from noise).
- No intensity augmentation: the percentile stretch already fixes the scale,
  and the amplitude of persistence relative to the read noise is the signal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from slewdark.errors import ContractError
from slewdark.io.fits import iter_detectors, read_info, read_truth
from slewdark.patches import exposure_stem
from slewdark.pseudomask import output_path, read_pseudo_mask
from slewdark.tiling import Origin
from slewdark.truth import truth_file
from slewdark.unet_input import Normalisation, detector_input, previous_exposure_path

log = logging.getLogger(__name__)

# (exposure file, detector id, usable mask) -> (label uint8, weight float32)
LabelSource = Callable[[Path, str, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class TileSet:
    """Training tiles.

    Attributes
    ----------
    inputs
        float32 ``(N, C, T, T)`` network inputs.
    labels
        uint8 ``(N, T, T)``, 1 = persistence.
    weights
        float32 ``(N, T, T)`` in [0, 1]; 0 = ignored by the loss.
    """

    inputs: np.ndarray
    labels: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def pseudo_mask_labels(masks_dir: str | Path) -> LabelSource:
    """Labels from ``masks_dir/<stem>.pseudo.fits`` (``DETxy.MASK``, ``DETxy.WEIGHT``)."""
    folder = Path(masks_dir)

    def labels(exposure: Path, detector: str, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask, weight = read_pseudo_mask(output_path(folder, exposure_stem(exposure)), detector)
        return mask.astype(np.uint8), np.where(usable, weight, 0.0).astype(np.float32)

    return labels


def truth_labels(threshold: float) -> LabelSource:
    """Labels from the simulator's truth: persistence above ``threshold`` electrons, weight 1 where usable."""

    def labels(exposure: Path, detector: str, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        truth = read_truth(truth_file(exposure), detector)
        return (truth.pers > threshold).astype(np.uint8), usable.astype(np.float32)

    return labels


def sample_origins(
    label: np.ndarray,
    weight: np.ndarray,
    n: int,
    tile: int,
    positive_fraction: float,
    rng: np.random.Generator,
) -> list[Origin]:
    """Seeded tile corners: ``positive_fraction`` centred on labelled pixels, the rest uniform.

    Parameters
    ----------
    label, weight
        Full-detector label and weight.
    n
        Number of tiles.
    tile
        Tile side.
    positive_fraction
        Share of tiles centred on a random pixel with ``label == 1`` and positive weight.
    rng
        Random generator.

    Returns
    -------
    list of (row, col)
    """
    height, width = label.shape
    positives = np.flatnonzero((label > 0) & (weight > 0))
    n_pos = min(round(n * positive_fraction), n) if positives.size else 0
    centres = rng.choice(positives, size=n_pos) if n_pos else np.empty(0, dtype=np.int64)
    rows = np.concatenate([centres // width - tile // 2, rng.integers(0, height - tile + 1, n - n_pos)])
    cols = np.concatenate([centres % width - tile // 2, rng.integers(0, width - tile + 1, n - n_pos)])
    rows = np.clip(rows, 0, height - tile)
    cols = np.clip(cols, 0, width - tile)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def build_tile_set(
    exposures: Sequence[Path],
    labels: LabelSource,
    normalisation: Normalisation,
    in_channels: int,
    tile: int,
    tiles_per_detector: int,
    positive_fraction: float,
    seed: int,
) -> TileSet:
    """Cut training tiles from every detector of the exposures, one detector in memory at a time.

    Parameters
    ----------
    exposures
        Slew-dark FITS files.
    labels
        Where labels come from (:func:`pseudo_mask_labels`, :func:`truth_labels`).
    normalisation, in_channels
        The network input (:func:`slewdark.unet_input.detector_input`).
    tile, tiles_per_detector, positive_fraction
        Tile side, tiles per detector, share centred on labelled pixels.
    seed
        Seed of the positions (the same inputs and seed give the same tiles).

    Returns
    -------
    TileSet
    """
    rng = np.random.default_rng(seed)
    inputs: list[np.ndarray] = []
    label_tiles: list[np.ndarray] = []
    weight_tiles: list[np.ndarray] = []
    for exposure in tqdm(exposures, desc="tiles", unit="exposure", leave=False):
        info = read_info(exposure)
        prev = previous_exposure_path(info) if in_channels == 2 else None
        for detector in iter_detectors(exposure):
            image = detector_input(exposure, detector, normalisation, in_channels, prev)
            label, weight = labels(exposure, detector.detector, detector.usable)
            for r, c in sample_origins(label, weight, tiles_per_detector, tile, positive_fraction, rng):
                inputs.append(image[:, r : r + tile, c : c + tile].copy())
                label_tiles.append(label[r : r + tile, c : c + tile].copy())
                weight_tiles.append(weight[r : r + tile, c : c + tile].copy())
    if not inputs:
        raise ContractError(
            exposures[0] if exposures else Path("."), "no detector to cut training tiles from"
        )
    return TileSet(np.stack(inputs), np.stack(label_tiles), np.stack(weight_tiles))


def augment(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, flips: tuple[bool, bool], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random horizontal and vertical flips per sample (see the module notes for why only these).

    Parameters
    ----------
    x
        ``(B, C, H, W)`` inputs.
    y, w
        ``(B, H, W)`` labels and weights, flipped with their input.
    flips
        Whether horizontal and vertical flips are allowed.
    generator
        Seeded torch generator.

    Returns
    -------
    x, y, w
        Flipped copies.
    """
    x, y, w = x.clone(), y.clone(), w.clone()
    for axis, allowed in ((-1, flips[0]), (-2, flips[1])):
        if not allowed:
            continue
        chosen = torch.rand(len(x), generator=generator) < 0.5
        if chosen.any():
            x[chosen] = x[chosen].flip(axis)
            y[chosen] = y[chosen].flip(axis)
            w[chosen] = w[chosen].flip(axis)
    return x, y, w


def iter_training_batches(
    tiles: TileSet,
    batch_size: int,
    seed: int | None,
    flips: tuple[bool, bool] = (False, False),
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Batches ``(inputs, labels as float, weights)``; shuffled and augmented when ``seed`` is given."""
    order = np.arange(len(tiles))
    generator = None
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(tiles))
        generator = torch.Generator().manual_seed(seed)
    for start in range(0, len(order), batch_size):
        index = np.sort(order[start : start + batch_size])
        x = torch.from_numpy(tiles.inputs[index])
        y = torch.from_numpy(tiles.labels[index].astype(np.float32))
        w = torch.from_numpy(tiles.weights[index])
        if generator is not None:
            x, y, w = augment(x, y, w, flips, generator)
        yield x, y, w
