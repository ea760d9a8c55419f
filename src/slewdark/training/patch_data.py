"""Streaming access to the patch products for torch: datasets, batches, masked losses.

``patches.npy`` and ``usable.npy`` are opened memory-mapped; a batch reads only
its own rows (sorted, so the reads are sequential-ish), so training and
embedding never hold the whole set in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.nn import functional
from torch.utils.data import Dataset

from slewdark.errors import SlewdarkError
from slewdark.io.patches import open_patches

LossKind = Literal["mse", "mae", "bce"]


class PatchDataset(Dataset):
    """Patches (1, P, P) float32 and their usable masks (1, P, P) bool, read from the memmaps.

    Parameters
    ----------
    patch_dir
        The ``patches`` stage's folder.
    indices
        Patch numbers (rows of ``index.csv``) in this dataset; all when None.
    """

    def __init__(self, patch_dir: str | Path, indices: np.ndarray | None = None) -> None:
        self.patches, self.usable = open_patches(patch_dir)
        self.indices = (
            np.arange(len(self.patches)) if indices is None else np.asarray(indices, dtype=np.int64)
        )

    @property
    def patch_size(self) -> int:
        """Side of the patches in pixels."""
        return int(self.patches.shape[1])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batch(np.array([position]))

    def batch(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack the dataset items at ``positions`` (reads sorted rows of the memmaps)."""
        rows = self.indices[np.sort(positions)]
        x = torch.from_numpy(np.ascontiguousarray(self.patches[rows]))[:, None]
        mask = torch.from_numpy(np.ascontiguousarray(self.usable[rows]))[:, None]
        return x, mask


def iter_batches(
    dataset: PatchDataset, batch_size: int, shuffle_seed: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of a dataset, in order or shuffled by a seeded generator.

    Parameters
    ----------
    dataset
        The patches.
    batch_size
        Patches per batch (the last one may be smaller).
    shuffle_seed
        None keeps the dataset order; a seed fixes the permutation (use a
        different seed per epoch).
    """
    order = np.arange(len(dataset))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(dataset))
    for start in range(0, len(order), batch_size):
        yield dataset.batch(order[start : start + batch_size])


def reconstruction_error(
    reconstruction: torch.Tensor, target: torch.Tensor, usable: torch.Tensor, kind: LossKind
) -> torch.Tensor:
    """Per-patch loss over usable pixels only: (B,).

    Parameters
    ----------
    reconstruction, target
        (B, 1, P, P) in [0, 1].
    usable
        (B, 1, P, P) bool; pixels outside it do not count. A patch without
        usable pixels has loss 0.
    kind
        ``mse``, ``mae`` or ``bce`` (binary cross-entropy against the
        normalised intensity), computed in float32 outside autocast.
    """
    with torch.autocast(reconstruction.device.type, enabled=False):
        reconstruction, target = reconstruction.float(), target.float()
        if kind == "mse":
            error = (reconstruction - target) ** 2
        elif kind == "mae":
            error = (reconstruction - target).abs()
        elif kind == "bce":
            error = functional.binary_cross_entropy(
                reconstruction.clamp(1e-6, 1 - 1e-6), target, reduction="none"
            )
        else:
            raise SlewdarkError(f"unknown loss {kind!r} (mse, mae or bce)")
        weight = usable.float()
        return (error * weight).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3)).clamp_min(1.0)


def select_patches(index: dict[str, np.ndarray], split: str, max_patches: int, seed: int) -> np.ndarray:
    """Sorted patch numbers of a split with usable pixels, a seeded subsample of at most ``max_patches``."""
    candidates = index["patch"][(index["split"] == split) & (index["usable_fraction"] > 0)]
    if len(candidates) > max_patches:
        candidates = np.random.default_rng(seed).choice(candidates, size=max_patches, replace=False)
    return np.sort(candidates)


def data_fingerprint(patch_dir: str | Path) -> str:
    """SHA-256 of the index, the normalisation and a strided sample of the patches: identity of the data."""
    patch_dir = Path(patch_dir)
    digest = hashlib.sha256()
    for name in ("index.csv", "normalisation.csv"):
        path = patch_dir / name
        if path.exists():
            digest.update(path.read_bytes())
    patches, usable = open_patches(patch_dir)
    step = max(1, len(patches) // 64)
    digest.update(np.ascontiguousarray(patches[::step]).tobytes())
    digest.update(np.ascontiguousarray(usable[::step]).tobytes())
    return digest.hexdigest()
