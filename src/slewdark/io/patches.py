"""The patch arrays of a patches folder (``patches.npy``, ``usable.npy``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from slewdark.errors import SlewdarkError


def open_patches(patch_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``patches.npy`` and ``usable.npy`` of a patches folder, memory-mapped read-only."""
    patch_dir = Path(patch_dir)
    try:
        patches = np.load(patch_dir / "patches.npy", mmap_mode="r")
        usable = np.load(patch_dir / "usable.npy", mmap_mode="r")
    except FileNotFoundError as error:
        raise SlewdarkError(f"{error.filename}: missing (run 'slewdark patches' first)") from None
    if patches.shape != usable.shape or patches.ndim != 3:
        raise SlewdarkError(
            f"{patch_dir}: patches.npy {patches.shape} and usable.npy {usable.shape} disagree"
        )
    return patches, usable
