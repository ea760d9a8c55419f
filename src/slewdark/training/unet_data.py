"""Training tiles for the UNet: inputs, labels and label weights, with physical augmentations.

Tiles are cut from the detectors of the training exposures one detector at a
time (memory holds the tiles, never all detectors). Labels come from one of two
sources:

- ``pseudo``: the pseudo-masks of the ``pseudomask`` stage
  (``data/masks/<stem>.pseudo.fits``: ``DETxy.MASK`` and the confidence
  ``DETxy.WEIGHT``), the project's real training signal;
- ``truth``: the simulator's persistence above ``evaluate.truth_threshold`` e-
  (weight 1 on usable pixels, truth files in ``data.train_truth``), only for the
  supervised ceiling of the evaluation.

Tile positions are seeded: a share ``positive_fraction`` is centred on random
labelled pixels (persistence is sparse, and a uniform draw would show the
network almost only background), the rest is uniform over the detector.

Augmentations
-------------
The detectors are not mounted alike in the focal plane: on a given detector a
grism's traces may run along either pixel axis, in either direction, tilted by
0 or ±4 deg. So every one of the 8 orientations of a square tile (flips in x
and y, and the transpose, which with the flips gives the 90 deg turns) shows
physics that exists. The readout structure (64-column output channels, row
noise) is fixed to the detector and is removed by the scaling
(:mod:`slewdark.core.scaling`) before the network sees it, so turning it does not
teach the network an impossible texture.

- Not used: rotations by arbitrary angles (interpolation would smooth the
  noise whose texture tells persistence from noise) and intensity
  augmentation (the input is in noise units: the amplitude of persistence
  relative to the noise is the signal; the simulator already draws exposure
  times, persistence amplitudes and noise levels over their real ranges).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from slewdark.core.normalisation import Normalisation
from slewdark.core.tiling import Origin
from slewdark.errors import ContractError
from slewdark.evaluation.truth import read_truth, truth_file
from slewdark.inference.unet_input import detector_input
from slewdark.io.fits import exposure_stem, iter_detectors, read_info
from slewdark.io.previous import optional_previous_exposure
from slewdark.io.pseudomasks import pseudo_mask_path, read_pseudo_mask

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
        mask, weight = read_pseudo_mask(pseudo_mask_path(folder, exposure_stem(exposure)), detector)
        return mask.astype(np.uint8), np.where(usable, weight, 0.0).astype(np.float32)

    return labels


def truth_labels(threshold: float, truth_dir: str | Path | None) -> LabelSource:
    """Labels from the simulator's truth: persistence above ``threshold`` electrons, weight 1 where usable.

    Parameters
    ----------
    threshold
        Electrons of true persistence above which a pixel is labelled.
    truth_dir
        Folder of the ``<stem>.truth.fits``; None: beside the exposures.
    """

    def labels(exposure: Path, detector: str, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        truth = read_truth(truth_file(exposure, truth_dir), detector)
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
        The network input (:func:`slewdark.inference.unet_input.detector_input`).
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
        prev = optional_previous_exposure(info) if in_channels >= 2 else None
        for detector in iter_detectors(exposure):
            timing = (info.tsince, info.exptime)
            image = detector_input(exposure, detector, normalisation, in_channels, prev, timing)
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
    x: torch.Tensor,
    y: torch.Tensor,
    w: torch.Tensor,
    moves: tuple[bool, bool, bool],
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random flips and transposes per sample: the 8 orientations of a square tile.

    Parameters
    ----------
    x
        ``(B, C, H, W)`` inputs, ``H == W`` when transposes are allowed.
    y, w
        ``(B, H, W)`` labels and weights, moved with their input.
    moves
        Whether horizontal flips, vertical flips and transposes are allowed.
    generator
        Seeded torch generator.

    Returns
    -------
    x, y, w
        Moved copies.
    """
    x, y, w = x.clone(), y.clone(), w.clone()
    steps = (
        (moves[0], lambda t: t.flip(-1)),
        (moves[1], lambda t: t.flip(-2)),
        (moves[2], lambda t: t.transpose(-1, -2)),
    )
    for allowed, move in steps:
        if not allowed:
            continue
        chosen = torch.rand(len(x), generator=generator) < 0.5
        if chosen.any():
            x[chosen] = move(x[chosen])
            y[chosen] = move(y[chosen])
            w[chosen] = move(w[chosen])
    return x, y, w


def blank_previous(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """Zero the channels made from the previous exposure (1 and on) of a random share of the samples.

    A two- or three-channel model must also work where ``PREVFILE`` is unknown
    (the data contract makes it optional), when those channels are empty.
    """
    if x.shape[1] < 2 or probability <= 0:
        return x
    chosen = torch.rand(len(x), generator=generator) < probability
    x = x.clone()
    x[chosen, 1:] = 0.0
    return x


def iter_training_batches(
    tiles: TileSet,
    batch_size: int,
    seed: int | None,
    moves: tuple[bool, bool, bool] = (False, False, False),
    prev_dropout: float = 0.0,
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
            x, y, w = augment(x, y, w, moves, generator)
            x = blank_previous(x, prev_dropout, generator)
        yield x, y, w
