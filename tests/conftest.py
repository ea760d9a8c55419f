"""Shared fixtures: tiny data sets built in tmp_path; the number of test processes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from slewdark.io.tables import INDEX_COLUMNS, write_table
from slewdark.stages.patches import assign_splits

MAX_TEST_PROCESSES = 4
"""More gains little: the end-to-end module alone takes most of the suite's time."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Processes for ``-n auto``: one per usable CPU (hyperthreads count), at most ``MAX_TEST_PROCESSES``."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_TEST_PROCESSES))


@pytest.fixture
def tiny_patch_dir(tmp_path: Path) -> Path:
    """A ``patches`` folder of 96 patches of 16 px from 6 exposures: noise, some with a bright streak.

    A few pixels per patch are unusable and hold garbage (NaN-free but 1.0),
    so a loss that forgot the mask would notice.
    """
    rng = np.random.default_rng(0)
    n, size = 96, 16
    patches = np.clip(0.3 + 0.05 * rng.standard_normal((n, size, size)), 0, 1).astype(np.float32)
    patches[::3, 6:9, :] = 0.9
    usable = np.ones((n, size, size), dtype=bool)
    usable[:, 0, :3] = False
    patches[~usable] = 1.0
    out = tmp_path / "patches"
    out.mkdir()
    np.save(out / "patches.npy", patches)
    np.save(out / "usable.npy", usable)
    exposures = [f"exp{i // 16}" for i in range(n)]
    splits = assign_splits(exposures, (0.7, 0.15, 0.15), "grouped", seed=1)
    rows = [
        {
            "patch": i,
            "exposure": exposures[i],
            "file": f"data/raw/{exposures[i]}.fits",
            "detector": "11",
            "channel": (i % 16) // 2,
            "row": (i % 16) * size,
            "col": 0,
            "split": splits[i],
            "usable_fraction": float(usable[i].mean()),
        }
        for i in range(n)
    ]
    write_table(out / "index.csv", rows, INDEX_COLUMNS)
    return out
